/** Wrap a function so that it can never throw into the host page: a broken
 * tag must cost the site its analytics, never its functionality. */
export const guard =
  (fn) =>
  (...args) => {
    try {
      return fn(...args);
    } catch {
      // ignored on purpose (see above)
    }
  };
