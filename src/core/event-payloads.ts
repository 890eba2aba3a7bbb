// What the events carry, by name: the core's own here; a feature adds its
// events by declaration merging from its own folder, e.g.
//   declare module "../core/event-payloads.js" {
//     interface EventPayloads { "archive-message-added": ArchiveMessageAdded }
//   }
// `module.hook` and `module.fire` are typed by it for these names; any other
// name stays untyped, as before (an embedder's own events need no declaration).
import type { Element } from "@xmpp/xml";
import type { StanzaEvent } from "./delivery.js";
import type { Session } from "./session.js";

type StanzaKind = "message" | "presence" | "iq";

export interface EventPayloads {
  // stanza events (Prosody's): {origin, stanza, to_self}
  [routed: `${StanzaKind}/${string}`]: StanzaEvent;
  [pre: `pre-${StanzaKind}/${string}`]: StanzaEvent;
  [iq: `iq-${string}`]: StanzaEvent;
  [element: `stanza/${string}`]: StanzaEvent;
  /** A top-level element of a stream that has not authenticated yet (what authenticates it). */
  [unauthenticated: `stanza-unauthenticated/${string}`]: StanzaEvent;

  "resource-bind": { session: Session };
  "pre-resource-unbind": { session: Session; error: string | undefined };
  "resource-unbind": { session: Session; error: string | undefined };
  "presence-available": { session: Session; stanza: Element };
  "presence-unavailable": { session: Session; stanza: Element };
  /** A handler returning true keeps the session (hibernation). */
  "session-transport-lost": { session: Session; reason: string };
  "user-exists": { username: string };
  "user-deleted": { username: string };
  "module-loaded": { module: string; host: string };
  "module-unloaded": { module: string; host: string };
  /** Modules add to the features a connection is about to send. */
  "stream-features": { origin: Session | undefined; features: Element };
  /** A stanza of an authenticated stream before binding; unhandled, not-authorized. */
  "stanza-before-bind": { origin: Session; stanza: Element };
  /** The connection was silent for c2s_read_timeout; true: a probe that needs an answer was sent. */
  "c2s-read-timeout": { session: Session };
  "host-disco-info": { origin: Session | undefined; stanza: Element; reply: Element };
  "host-disco-items": { origin: Session | undefined; stanza: Element; reply: Element };
  "account-disco-info": { origin: Session | undefined; stanza: Element; user: string; reply: Element };
}

/** The payload of `event`: typed for a known name, untyped (`any`) for any other. */
// (an event nobody declared carries what its firer says)
export type PayloadOf<E extends string> = E extends keyof EventPayloads ? EventPayloads[E] : any;
