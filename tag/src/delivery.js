// Delivery: a bounded queue kept in localStorage (so events survive reloads
// and offline spells), sent in batches, retried with backoff until the
// collector answers 2xx. Events leave the queue only on a 2xx (or a 4xx that
// says retrying is pointless), and keep their messageId on every retry, so
// the collector's messageId dedupe turns at-least-once into exactly-once.

import { guard } from './guard.js';
import { readLocal, writeLocal } from './storage.js';

const QUEUE_KEY = 'magpie_queue';
const PROBE_KEY = 'magpie_probe';
const LOCK_NAME = 'magpie_send';
const HIDDEN = 1; // flush modes
const UNLOAD = 2;
// Browsers allow 64 KiB of keepalive bodies in flight per page; stay under it.
const KEEPALIVE_MAX_BYTES = 60000;
// The collector remembers messageIds for 7 days: past that a retry could double count.
const MAX_EVENT_AGE_MS = 7 * 864e5;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 60000;
const RETRYABLE_4XX = [408, 429];

const isRetryable = (status) => !status || status >= 500 || RETRYABLE_4XX.includes(status);
// Queue items are [queuedAtMs, event]: an event's own timestamp may be
// historical (set by the caller), so age is counted from queueing.
const idOf = (item) => item[1].messageId;
const isFresh = (item) => Date.now() - item[0] < MAX_EVENT_AGE_MS;

/** Retry-After is either delay-seconds or an HTTP date. */
function retryAfterMs(response) {
  const value = response.headers.get('Retry-After');
  if (!value) return 0;
  const ms = /^\d+$/.test(value) ? value * 1000 : Date.parse(value) - Date.now();
  return ms > 0 ? ms : 0;
}

/** Exponential backoff with jitter (half fixed, half random) so that many
 * browsers failing together do not retry together. */
function backoffMs(failures) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** Take events from the head of the queue until the body would outgrow a keepalive request. */
function takeBatch(items) {
  let bytes = 0;
  let count = 0;
  while (count < items.length) {
    bytes += JSON.stringify(items[count][1]).length;
    if (count && bytes > KEEPALIVE_MAX_BYTES) break;
    count++;
  }
  return items.splice(0, count).map((item) => item[1]);
}

export function createDelivery({ host, writeKey, flushAt, flushInterval, maxQueue, maxRetries }) {
  const inFlight = new Set();
  const attempts = {};
  // Probe once: with localStorage blocked the queue lives in memory only.
  const durable = writeLocal(PROBE_KEY, 1) && writeLocal(PROBE_KEY, null);
  let memory = [];
  let timer = 0;
  let retryAt = 0;
  let failures = 0;

  // Every change re-reads storage, so tabs of the same site share one queue.
  const read = () => (durable ? readLocal(QUEUE_KEY) || [] : memory);
  const write = (items) => (durable ? writeLocal(QUEUE_KEY, items.length ? items : null) : (memory = items));
  const pending = () => read().filter((item) => !inFlight.has(idOf(item)));

  function remove(ids) {
    write(read().filter((item) => !ids.includes(idOf(item))));
  }

  function schedule(delayMs) {
    clearTimeout(timer);
    timer = setTimeout(() => flush(), delayMs);
  }

  function enqueue(event) {
    const items = read();
    items.push([Date.now(), event]);
    write(items.slice(-maxQueue)); // bounded: the oldest go first
    if (pending().length >= flushAt) flush();
    else if (!timer) schedule(flushInterval);
  }

  const settle = guard((ids, status, waitMs) => {
    ids.forEach((id) => inFlight.delete(id));
    if (!isRetryable(status)) {
      failures = 0;
      remove(ids);
    } else {
      failures++;
      // Offline spells do not use up an event's attempts: only real refusals do.
      const counted = navigator.onLine !== false;
      const spent = ids.filter((id) => counted && (attempts[id] = (attempts[id] || 0) + 1) >= maxRetries);
      remove(spent);
      retryAt = Date.now() + Math.max(waitMs, backoffMs(failures));
    }
    if (pending().length) schedule(Math.max(0, retryAt - Date.now()));
  });

  /** keepalive lets the request outlive the page, but only 64 KiB may be in
   * flight that way: use it for one small request at a time. */
  function post(batch, body) {
    const ids = batch.map((e) => e.messageId);
    const keepalive = body.length < KEEPALIVE_MAX_BYTES && !inFlight.size;
    ids.forEach((id) => inFlight.add(id));
    return fetch(host + '/v1/batch', { method: 'POST', body, keepalive, headers: { 'Content-Type': 'text/plain' } }).then(
      (response) => settle(ids, response.status, retryAfterMs(response)),
      () => settle(ids, 0, 0),
    );
  }

  /** Beacons are fire-and-forget: their events stay queued and are sent again
   * on the next page (same messageIds, deduplicated by the collector). */
  function beacon(body) {
    return navigator.sendBeacon?.(`${host}/beacon/v1/batch?writeKey=${encodeURIComponent(writeKey)}`, body);
  }

  /** Fresh events not already in flight, oldest first; expired ones are dropped. */
  function sendable() {
    const all = read();
    const stale = all.filter((item) => !isFresh(item)).map(idOf);
    if (stale.length) remove(stale);
    return all.filter((item) => isFresh(item) && !inFlight.has(idOf(item)));
  }

  const bodyOf = (batch) => JSON.stringify({ batch, sentAt: new Date().toISOString(), writeKey });

  /** The normal path: one batch, by one tab at a time. Tabs of a site share
   * the queue, so without the lock two tabs would post the same events (the
   * collector would drop the copies, but why send them). The lock is held
   * until the response is in; a tab that finds it taken tries again later. */
  function sendOne() {
    const send = () => {
      const batch = takeBatch(sendable());
      return batch.length && post(batch, bodyOf(batch));
    };
    if (!navigator.locks) return send();
    navigator.locks.request(LOCK_NAME, { ifAvailable: true }, (lock) => (lock ? send() : schedule(flushInterval)));
  }

  /** The page is hiding or going away: everything, now, without waiting for
   * a lock; on unload by sendBeacon when the browser accepts it. */
  function sendAll(mode) {
    const items = sendable();
    while (items.length) {
      const batch = takeBatch(items);
      const body = bodyOf(batch);
      if (!(mode === UNLOAD && beacon(body))) post(batch, body);
    }
  }

  /** Send what is pending. `mode`: undefined (normal), HIDDEN or UNLOAD. */
  const flush = guard((mode) => {
    clearTimeout(timer);
    timer = 0;
    if (Date.now() < retryAt) {
      // Backing off (honouring Retry-After) even when the page hides: the
      // events stay queued for the next page instead.
      if (!mode) schedule(retryAt - Date.now());
    } else if (mode) sendAll(mode);
    else sendOne();
  });

  /** Drop everything queued (opt-out). */
  function clear() {
    write([]);
  }

  addEventListener('online', () => {
    retryAt = 0;
    flush();
  });
  // Last chance before the page goes away (or into the background, where it
  // may be discarded without notice).
  document.addEventListener('visibilitychange', () => document.visibilityState === 'hidden' && flush(HIDDEN));
  addEventListener('pagehide', () => flush(UNLOAD));
  if (pending().length) schedule(0);

  return { enqueue, flush, clear };
}
