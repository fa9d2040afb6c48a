// The `context` object every event carries: where the visitor is and with
// what, named as in Segment's spec so warehouses and destinations line up.

const LIBRARY = { name: 'magpie.js', version: __VERSION__ };
const UTM_PREFIX = 'utm_';

// After an in-app (SPA) navigation the referrer is the previous in-app URL:
// document.referrer keeps naming the page that first loaded the app.
let referrer = document.referrer;

export function setReferrer(url) {
  referrer = url;
}

export function pageContext() {
  return {
    path: location.pathname,
    referrer,
    search: location.search,
    title: document.title,
    url: location.href,
  };
}

/** utm_campaign becomes `name`, every other utm_X becomes `X` (Segment's mapping). */
export function campaign(search) {
  const out = {};
  for (const [key, value] of new URLSearchParams(search)) {
    if (!key.startsWith(UTM_PREFIX)) continue;
    const field = key.slice(UTM_PREFIX.length);
    out[field === 'campaign' ? 'name' : field] = value;
  }
  return Object.keys(out).length ? out : undefined;
}


function timezone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** `page` is passed in so that a call buffered before consent keeps the page it was made on. */
export function baseContext(page) {
  return {
    page,
    library: LIBRARY,
    locale: navigator.language,
    screen: { width: screen.width, height: screen.height, density: devicePixelRatio },
    timezone: timezone(),
    userAgent: navigator.userAgent,
    // Client hints without a promise: toJSON() gives the low-entropy ones
    // only (brands, mobile, platform).
    userAgentData: navigator.userAgentData?.toJSON(),
    campaign: campaign(page.search),
  };
}
