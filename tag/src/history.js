// Page views for single-page apps: history.pushState / replaceState and the
// back/forward buttons change the URL without loading a page.

const withoutHash = () => location.href.split('#')[0];

/** Calls `onChange(previousUrl)` when the URL (hash ignored) changes. */
export function watchHistory(onChange) {
  let last = withoutHash();

  // A task later, so that the router has had its turn to set document.title.
  const check = () =>
    setTimeout(() => {
      const url = withoutHash();
      if (url === last) return; // replaceState of state only, or a hash change
      const previous = last;
      last = url;
      onChange(previous);
    });

  for (const name of ['pushState', 'replaceState']) {
    const original = history[name];
    history[name] = function (...args) {
      const result = original.apply(this, args); // the page's own errors stay the page's
      check();
      return result;
    };
  }
  addEventListener('popstate', check);
}
