// Cookie and localStorage primitives. None of them throws: storage can be
// disabled (privacy modes, sandboxed iframes, full quota) and the tag must
// carry on with whatever still works.

const SECONDS_PER_DAY = 86400;
const PROBE_COOKIE = '__magpie_tld';

let cachedDomain;

/** Parse a stored value: JSON when it is JSON, the raw text otherwise.
 * analytics.js (classic) writes JSON strings (`"abc"`), analytics-next
 * writes raw strings (`abc`); we must read both. */
export function decode(text) {
  if (text == null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function readCookie(name) {
  try {
    const prefix = name + '=';
    const hit = document.cookie.split('; ').find((c) => c.startsWith(prefix));
    return hit ? decode(decodeURIComponent(hit.slice(prefix.length))) : null;
  } catch {
    return null;
  }
}

function setCookie(name, text, maxAgeS, domain) {
  document.cookie =
    `${name}=${encodeURIComponent(text)}; max-age=${maxAgeS}; path=/; SameSite=Lax` +
    (domain ? '; domain=' + domain : '') +
    (location.protocol === 'https:' ? '; Secure' : '');
}

/** Hostname suffixes from shortest to longest ("b.com", "a.b.com"); none for
 * IP addresses and single-label hosts such as localhost, where a domain
 * attribute would make the browser reject the cookie. */
function domainCandidates(host) {
  const parts = host.split('.');
  const isIPv4 = parts.length === 4 && parts.every((p) => /^\d+$/.test(p));
  if (isIPv4 || parts.length < 2) return [];
  return parts.map((_, i) => parts.slice(i).join('.')).reverse().slice(1);
}

/** The widest domain the browser lets us set a cookie on (the registrable
 * domain), found like analytics.js does: by trying. Avoids shipping a public
 * suffix list. */
export function topDomain() {
  if (cachedDomain !== undefined) return cachedDomain;
  cachedDomain = '';
  try {
    for (const candidate of domainCandidates(location.hostname)) {
      setCookie(PROBE_COOKIE, '1', 60, candidate);
      if (readCookie(PROBE_COOKIE)) {
        setCookie(PROBE_COOKIE, '', 0, candidate);
        cachedDomain = candidate;
        break;
      }
    }
  } catch {
    // cookies blocked: host-only cookies (or none at all) it is
  }
  return cachedDomain;
}

/** Write a JSON-encoded value (classic analytics.js format, which both
 * analytics.js generations read); null removes the cookie. */
export function writeCookie(name, value, days, domain) {
  try {
    const text = value == null ? '' : JSON.stringify(value);
    setCookie(name, text, value == null ? 0 : days * SECONDS_PER_DAY, domain);
  } catch {
    // cookies disabled
  }
}

export function readLocal(key) {
  try {
    return decode(localStorage.getItem(key));
  } catch {
    return null;
  }
}

/** Returns false when localStorage is unusable, so callers can fall back to memory. */
export function writeLocal(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}
