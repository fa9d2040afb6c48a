// Who the visitor is, stored where analytics.js keeps it so that a site
// moving from Segment keeps its visitors' ids (and could move back).

import { readCookie, readLocal, topDomain, writeCookie, writeLocal } from './storage.js';
import { uuid } from './uuid.js';

const ANONYMOUS_ID = 'ajs_anonymous_id';
const USER_ID = 'ajs_user_id';
const USER_TRAITS = 'ajs_user_traits';
const COOKIE_DAYS = 365;

/** Ids may have been stored as numbers (JSON `123`); anything else is junk. */
function asId(value) {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : null;
}

/** Cookie first, localStorage as the fallback analytics.js also uses when
 * the cookie expired or was cleared (e.g. Safari's 7-day cap). */
function recall(key) {
  return asId(readCookie(key)) ?? asId(readLocal(key));
}

export function createIdentity(options) {
  const domain = options.cookieDomain ?? topDomain();
  const state = {
    anonymousId: recall(ANONYMOUS_ID),
    userId: recall(USER_ID),
    traits: readLocal(USER_TRAITS) || {},
  };
  let persistent = false;

  /** Traits live in localStorage only: they can outgrow a cookie. */
  function save(key, value, inCookie = true) {
    if (!persistent) return;
    if (inCookie) writeCookie(key, value, COOKIE_DAYS, domain);
    writeLocal(key, value);
  }

  /** Start writing to cookies and localStorage: called once tracking is
   * allowed, never before consent. Refreshes the cookies' expiry too. */
  function persist() {
    persistent = true;
    state.anonymousId ||= uuid();
    save(ANONYMOUS_ID, state.anonymousId);
    save(USER_ID, state.userId);
    save(USER_TRAITS, state.traits, false);
  }

  /** Same rules as analytics.js: traits merge for the same user; a different
   * user on this device starts afresh with a new anonymous id, so two people
   * sharing a browser are not glued together. */
  function identify(userId, traits) {
    const id = asId(userId);
    if (id && state.userId && id !== state.userId) {
      state.anonymousId = uuid();
      state.traits = {};
      save(ANONYMOUS_ID, state.anonymousId);
    }
    if (id) state.userId = id;
    state.traits = { ...state.traits, ...traits };
    save(USER_ID, state.userId);
    save(USER_TRAITS, state.traits, false);
  }

  function reset() {
    state.userId = null;
    state.traits = {};
    state.anonymousId = persistent ? uuid() : null;
    save(USER_ID, null);
    save(ANONYMOUS_ID, state.anonymousId);
    save(USER_TRAITS, null, false);
  }

  /** Opt-out: forget the visitor and write nothing more. */
  function forget() {
    reset();
    save(ANONYMOUS_ID, null);
    state.anonymousId = null;
    persistent = false;
  }

  return { state, persist, identify, reset, forget };
}
