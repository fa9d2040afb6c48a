// Whether we may track at all, decided on every call:
//   'drop' - opted out, or a GPC/DNT signal we were told to honour: nothing is kept;
//   'wait' - consent required but not given yet: calls are buffered in memory;
//   'send' - go ahead.
// Choices are remembered in localStorage so a return visit needs no new prompt.

import { readLocal, writeLocal } from './storage.js';

export const DROP = 'drop';
export const WAIT = 'wait';
export const SEND = 'send';

const OPT_KEY = 'magpie_opt'; // 'in' | 'out'
const CONSENT_KEY = 'magpie_consent'; // { categoryPreferences }

/** Global Privacy Control, or the older Do Not Track header's JS mirror. */
function privacySignal(options) {
  return (
    (options.respectGPC && navigator.globalPrivacyControl === true) ||
    (options.respectDNT && [navigator.doNotTrack, window.doNotTrack].includes('1'))
  );
}

export function createConsent(options) {
  let opt = readLocal(OPT_KEY);
  let given = readLocal(CONSENT_KEY) || (options.categoryPreferences && { categoryPreferences: options.categoryPreferences });

  function state() {
    if (opt === 'out' || (opt !== 'in' && privacySignal(options))) return DROP;
    if (options.requireConsent && !given && opt !== 'in') return WAIT;
    return SEND;
  }

  function setOpt(value) {
    opt = value;
    writeLocal(OPT_KEY, value);
  }

  /** Record the visitor's choice, e.g. from a consent banner. */
  function grant(preferences) {
    given = { categoryPreferences: { ...preferences?.categoryPreferences } };
    writeLocal(CONSENT_KEY, given);
  }

  /** What events carry as context.consent ({ categoryPreferences }), if anything was chosen. */
  const current = () => given;

  return { state, grant, current, optIn: () => setOpt('in'), optOut: () => setOpt('out') };
}
