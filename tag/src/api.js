// window.analytics: the analytics.js-compatible surface. Every method is
// wrapped so that nothing we do can throw into the host page.

import { createConsent, SEND, WAIT } from './consent.js';
import { pageContext, setReferrer } from './context.js';
import { createDelivery } from './delivery.js';
import { buildEvent, idArgs, pageArgs, splitCallback } from './events.js';
import { watchHistory } from './history.js';
import { guard } from './guard.js';
import { createIdentity } from './identity.js';

export const DEFAULTS = {
  flushAt: 10, // events queued before a request is sent at once
  flushInterval: 1000, // ms to wait for more events before sending
  maxQueue: 100, // events kept in localStorage at most; the oldest go first
  maxRetries: 10, // refused attempts before an event is dropped (offline time does not count)
  pageview: true, // a page view on load (skipped when the snippet queued its own page())
  trackHistory: true, // a page view when an SPA changes the URL
};
const BUFFER_MAX = 100; // calls held while loading or waiting for consent

export function createAnalytics(defaultHost) {
  const api = { initialized: true, VERSION: __VERSION__ };
  const early = []; // calls made before load()
  const waiting = []; // calls made while consent is pending
  const readyCallbacks = [];
  let core = null;
  let current = null; // the call being run: its time and page

  const hold = (queue, call) => queue.length < BUFFER_MAX && queue.push(call);

  function run(call) {
    current = call;
    call.fn(...call.args);
  }

  function dispatch(call) {
    const state = call.gated ? core.consent.state() : SEND;
    if (state === SEND) run(call);
    else if (state === WAIT) hold(waiting, call);
  }

  /** A public method: recorded with its time and page, then run now, held
   * until load(), held until consent, or dropped (opted out). */
  function command(fn, gated = true) {
    return guard((...args) => {
      const call = { fn, args, gated, at: Date.now(), page: pageContext() };
      if (core) dispatch(call);
      else hold(early, call);
      return api;
    });
  }

  function emit(type, fields, options, callback) {
    const { identity, consent, delivery } = core;
    delivery.enqueue(buildEvent(type, fields, options, current, identity.state, consent.current()));
    if (callback) setTimeout(callback);
  }

  /** Tracking just became allowed: start storing ids, run what was held. */
  function release() {
    if (core.consent.state() !== SEND) return;
    core.identity.persist();
    waiting.splice(0).forEach(run);
  }

  const track = (...raw) => {
    const [[event, properties, options], callback] = splitCallback(raw);
    emit('track', { event, properties: properties || {} }, options, callback);
  };

  const page = (...raw) => {
    const [args, callback] = splitCallback(raw);
    const [category, name, properties, options] = pageArgs(args);
    emit('page', { category, name, properties }, options, callback);
  };

  const identify = (...raw) => {
    const [args, callback] = splitCallback(raw);
    const [userId, traits, options] = idArgs(args);
    core.identity.identify(userId, traits);
    emit('identify', { traits: core.identity.state.traits }, options, callback);
  };

  const group = (...raw) => {
    const [args, callback] = splitCallback(raw);
    const [groupId, traits, options] = idArgs(args);
    emit('group', { groupId: groupId == null ? groupId : String(groupId), traits: traits || {} }, options, callback);
  };

  const alias = (...raw) => {
    const [[userId, from, options], callback] = splitCallback(raw);
    const { state } = core.identity;
    const previousId = typeof from === 'object' ? null : from;
    const extra = typeof from === 'object' ? from : options;
    emit('alias', { userId: String(userId), previousId: previousId ?? state.userId ?? state.anonymousId }, extra, callback);
  };

  function load(writeKey, options, stubHost) {
    if (core || !writeKey) return;
    const o = { ...DEFAULTS, ...options };
    const host = String(o.host || stubHost || defaultHost).replace(/\/+$/, '');
    core = {
      identity: createIdentity(o),
      consent: createConsent(o),
      delivery: createDelivery({ ...o, host, writeKey }),
    };
    release();
    const calls = early.splice(0);
    if (o.pageview && !calls.some((c) => c.fn === page)) api.page();
    calls.forEach(dispatch);
    if (o.trackHistory) {
      watchHistory(guard((previous) => {
        setReferrer(previous);
        api.page();
      }));
    }
    readyCallbacks.splice(0).forEach((cb) => setTimeout(cb));
  }

  const consentCommand = (fn) => command((...args) => (fn(...args), release()), false);

  Object.assign(api, {
    load: guard((writeKey, options) => load(writeKey, options)),
    track: command(track),
    page: command(page),
    identify: command(identify),
    group: command(group),
    alias: command(alias),
    reset: command(() => core.identity.reset()),
    flush: command(() => core.delivery.flush(), false),
    // typeof checks: setTimeout would eval a string
    ready: guard((cb) => typeof cb === 'function' && (core ? setTimeout(cb) : readyCallbacks.push(cb))),
    consent: consentCommand((preferences) => core.consent.grant(preferences)),
    optIn: consentCommand(() => core.consent.optIn()),
    optOut: command(() => {
      core.consent.optOut();
      waiting.length = 0;
      core.delivery.clear();
      core.identity.forget();
    }, false),
    user: () => {
      const state = core?.identity.state || {};
      return { id: () => state.userId ?? null, anonymousId: () => state.anonymousId ?? null, traits: () => ({ ...state.traits }) };
    },
    _load: load, // for the boot code: takes the stub's host too
  });
  return api;
}
