// Stanza helpers over @xmpp/xml (ltx): build, find children, replies, errors
// (RFC 6120 §8.3), and stanza meta that is never serialised.
import { Element, xml } from "@xmpp/xml";

export { Element, xml };

export const NS_CLIENT = "jabber:client";
export const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

export type ErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

/** RFC 6120 §8.3.3 defined conditions, with the type each usually carries. */
export const DEFAULT_ERROR_TYPES = {
  "bad-request": "modify",
  conflict: "cancel",
  "feature-not-implemented": "cancel",
  forbidden: "auth",
  gone: "cancel",
  "internal-server-error": "cancel",
  "item-not-found": "cancel",
  "jid-malformed": "modify",
  "not-acceptable": "modify",
  "not-allowed": "cancel",
  "not-authorized": "auth",
  "policy-violation": "modify",
  "recipient-unavailable": "wait",
  redirect: "modify",
  "registration-required": "auth",
  "remote-server-not-found": "cancel",
  "remote-server-timeout": "wait",
  "resource-constraint": "wait",
  "service-unavailable": "cancel",
  "subscription-required": "auth",
  "undefined-condition": "cancel",
  "unexpected-request": "wait",
} as const satisfies Record<string, ErrorType>;

export type ErrorCondition = keyof typeof DEFAULT_ERROR_TYPES;

export function isErrorCondition(s: string): s is ErrorCondition {
  return Object.hasOwn(DEFAULT_ERROR_TYPES, s);
}

/**
 * A stanza error for the client. Handlers throw it; the router turns it into
 * an error reply. `text` is shown to the user: never put internals in it.
 */
export class StanzaError extends Error {
  readonly isStanzaError = true;
  readonly type: ErrorType;
  constructor(
    readonly condition: ErrorCondition,
    readonly text?: string,
    type?: ErrorType,
    /** An application-specific condition element (RFC 6120 §8.3.4). */
    readonly appCondition?: Element,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = "StanzaError";
    this.type = type ?? DEFAULT_ERROR_TYPES[condition];
  }

  toElement(by?: string): Element {
    return errorElement(this.type, this.condition, this.text, by, this.appCondition);
  }
}

export function isStanzaError(e: unknown): e is StanzaError {
  return e instanceof StanzaError;
}

export function errorElement(
  type: ErrorType,
  condition: ErrorCondition,
  text?: string,
  by?: string,
  appCondition?: Element,
): Element {
  const error = new Element("error", by === undefined ? { type } : { type, by });
  error.cnode(new Element(condition, { xmlns: NS_STANZAS }));
  if (text) error.cnode(new Element("text", { xmlns: NS_STANZAS, "xml:lang": "en" })).t(text);
  if (appCondition) error.cnode(appCondition);
  return error;
}

/**
 * An error reply to `stanza` (RFC 6120 §8.3.1): same name and id, `to` and
 * `from` swapped, type `error`, with an `<error/>` child.
 */
export function errorReply(
  stanza: Element,
  type: ErrorType,
  condition: ErrorCondition,
  text?: string,
  by?: string,
): Element {
  const reply = replyShell(stanza, "error");
  reply.cnode(errorElement(type, condition, text, by));
  return reply;
}

/** Reply for a thrown `StanzaError`. */
export function errorReplyFrom(stanza: Element, err: StanzaError): Element {
  const reply = replyShell(stanza, "error");
  reply.cnode(err.toElement());
  return reply;
}

/** `<iq type='result'/>` answering `iq`, optionally with a payload. */
/** A stanza (RFC 6120 §8): message, presence or iq in jabber:client; anything else is a nonza. */
export function isStanza(el: Element): boolean {
  const ns = el.attrs.xmlns as string | undefined;
  return (el.name === "message" || el.name === "presence" || el.name === "iq") && (ns === undefined || ns === NS_CLIENT);
}

export function iqResult(iq: Element, payload?: Element): Element {
  const reply = replyShell(iq, "result");
  if (payload) reply.cnode(payload);
  return reply;
}

function replyShell(stanza: Element, type: string): Element {
  const attrs: Record<string, string> = { type };
  const { id, from, to } = stanza.attrs as Record<string, string | undefined>;
  if (id !== undefined) attrs.id = id;
  if (from !== undefined) attrs.to = from;
  if (to !== undefined) attrs.from = to;
  return new Element(stanza.name, attrs);
}

/** The first child with this name in this namespace (namespace inherited from ancestors counts). */
export function findChild(el: Element, name: string, ns: string): Element | undefined {
  const children = el.children;
  for (let i = 0; i < children.length; i++) {
    const c = children[i];
    if (typeof c === "object" && c.name === name && c.getNS() === ns) return c as Element;
  }
  return undefined;
}

/** All element children (text nodes skipped). */
export function childElements(el: Element): Element[] {
  return el.children.filter((c): c is Element => typeof c === "object");
}

/** Removes the children matching `pred`; returns how many were removed. */
export function removeChildren(el: Element, pred: (child: Element) => boolean): number {
  const before = el.children.length;
  el.children = el.children.filter((c) => typeof c !== "object" || !pred(c as Element));
  return before - el.children.length;
}

// ---- stanza meta ------------------------------------------------------------
// Data attached to a stanza object that is never serialised: it lives under a
// symbol, which ltx's serialiser and `clone()` do not see.

const META = Symbol("mamkit.meta");

type WithMeta = Element & { [META]?: Map<string, unknown> };

export function setMeta(stanza: Element, key: string, value: unknown): void {
  const s = stanza as WithMeta;
  let m = s[META];
  if (m === undefined) {
    m = new Map();
    s[META] = m;
  }
  m.set(key, value);
}

export function getMeta<T = unknown>(stanza: Element, key: string): T | undefined {
  return (stanza as WithMeta)[META]?.get(key) as T | undefined;
}

/** Copies the meta of `from` onto `to` (used when a stanza is cloned for another recipient). */
export function copyMeta(from: Element, to: Element): void {
  const m = (from as WithMeta)[META];
  if (m !== undefined) (to as WithMeta)[META] = new Map(m);
}

/** A deep copy of an element (meta is not copied; see copyMeta). */
export function cloneStanza(el: Element): Element {
  const copy = new Element(el.name, { ...el.attrs });
  const children = el.children;
  for (let i = 0; i < children.length; i++) {
    const c = children[i]!;
    if (typeof c === "string") copy.children.push(c);
    else {
      const cc = cloneStanza(c);
      cc.parent = copy;
      copy.children.push(cc);
    }
  }
  return copy;
}
