// Entry point: replaces the snippet's stub (an array of [method, ...args]
// calls, plus _writeKey, _loadOptions and _host) with the real API and
// replays what was queued. Existing Segment snippets work the same way.

import { createAnalytics } from './api.js';

(() => {
  try {
    const stub = window.analytics;
    if (stub?.initialized) return; // the tag was included twice
    const api = createAnalytics(document.currentScript ? new URL(document.currentScript.src).origin : '');
    const replay = (call) => Array.isArray(call) && api[call[0]]?.(...call.slice(1));
    window.analytics = api;
    if (Array.isArray(stub)) {
      stub.forEach(replay);
      // Code that kept a reference to the stub keeps pushing to it.
      stub.push = replay;
    }
    if (stub?._writeKey) api._load(stub._writeKey, stub._loadOptions, stub._host);
  } catch {
    // never throw into the host page
  }
})();
