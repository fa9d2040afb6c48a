// Turning analytics.js call arguments into Segment-shaped events.

import { baseContext } from './context.js';
import { uuid } from './uuid.js';

const asDate = (value) => {
  const date = new Date(value);
  return isNaN(date) ? new Date() : date;
};

const isObject = (value) => value !== null && typeof value === 'object';

/** analytics.js lets a trailing function stand in for any missing arguments. */
export function splitCallback(args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  return [args, callback];
}

/** page([category], [name], [properties], [options]): the leading strings
 * (or nulls) are name, or category then name; then the objects. */
export function pageArgs(args) {
  let lead = args.findIndex(isObject);
  if (lead < 0) lead = args.length;
  const names = args.slice(0, lead);
  const [category, name] = names.length > 1 ? names : [undefined, names[0]];
  return [category ?? undefined, name ?? undefined, ...args.slice(lead)];
}

/** identify([userId], [traits], [options]) and group(...) alike: the id may be left out. */
export function idArgs(args) {
  return isObject(args[0]) ? [undefined, ...args] : args;
}

/**
 * An event ready to queue. `call` is when and on which page the call was
 * made (it may be replayed later, after consent); `who` is the identity.
 * Options other than the reserved ones are merged into context, as in analytics.js.
 */
export function buildEvent(type, fields, options, call, who, consent) {
  const { integrations, timestamp, anonymousId, context, ...extra } = isObject(options) ? options : {};
  const page = { ...call.page, ...context?.page };
  if (type === 'page') {
    fields.properties = { ...page, name: fields.name, ...fields.properties };
  }
  return {
    type,
    messageId: uuid(),
    timestamp: asDate(timestamp ?? call.at).toISOString(),
    anonymousId: anonymousId ?? who.anonymousId ?? undefined,
    userId: who.userId ?? undefined,
    ...fields,
    context: { ...baseContext(page), consent, ...extra, ...context, page },
    integrations,
  };
}
