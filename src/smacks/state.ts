// The state of stream management on a session, and smacks' small face for
// other modules: smState (read it), addCheckpoint (after everything queued so
// far), watchDelivery (per stanza queued), and the typed payloads of its events.
import type { Element } from "@xmpp/xml";
import { type Session, type SessionSink, SessionSlot } from "../core/session.js";
import { NS_STANZAS, xml } from "../xmpp/stanza.js";
import { H_MOD, type SmQueue } from "./queue.js";
import type { Timer } from "../core/module.js";

export const NS_SM = "urn:xmpp:sm:3";
export const STATE = new SessionSlot<State>("smacks: stream management state");

/** Stream-management state of a session (read it with `smState(session)`). */
export interface SmState {
  /** The resumption id given in <enabled/>. */
  readonly id: string;
  readonly resumable: boolean;
  readonly queue: SmQueue;
}

/** The module's own view of that state. */
export interface State extends SmState {
  sink: SmSink;
  watches: Set<DeliveryWatch>;
  awaitingAck: boolean;
  requestTimer: Timer | undefined;
  immediate: NodeJS.Immediate | undefined;
  hibernationTimer: Timer | undefined;
}

declare module "../core/event-payloads.js" {
  interface EventPayloads {
    "smacks-enabled": { session: Session };
    "smacks-hibernation-start": { session: Session; queue: readonly Element[] };
    "smacks-hibernation-end": { session: Session; resumed: boolean };
    /** A stanza the client never acknowledged, at the end of its session: a handler may take it. */
    "delivery/failure": { session: Session; stanza: Element };
  }
}

/** The session's stream-management state, if it enabled stream management. */
export function smState(session: Session): SmState | undefined {
  return session.get(STATE);
}

/**
 * Adds a delivery checkpoint after everything queued so far for `session`:
 * `fn` runs once the client acknowledged all of it, and never if the session
 * ends unresumed. Returns false (and never runs `fn`) without stream management.
 */
export function addCheckpoint(session: Session, fn: () => void): boolean {
  const st = smState(session);
  if (!st || session.closed) return false;
  st.queue.addCheckpoint(fn);
  return true;
}

/** Given a stanza just queued for the client: what to run once the client acknowledged it, if anything. */
export type DeliveryWatch = (stanza: Element) => (() => void) | undefined;

/**
 * The delivery watch: for each stanza queued to `session` from now on, `watch`
 * may return a callback; it runs once, when the client acknowledged that stanza
 * (and all before it), and never if the session ends unresumed. Returns false
 * (and watches nothing) without stream management.
 */
export function watchDelivery(session: Session, watch: DeliveryWatch): boolean {
  const st = session.get(STATE);
  if (!st) return false;
  st.watches.add(watch);
  return true;
}

/** Sits between a session and its connection: counts and queues stanzas. */
export class SmSink implements SessionSink {
  constructor(
    public transport: SessionSink | undefined,
    private readonly onStanza: (stanza: Element, session: Session) => void,
  ) {}
  deliver(stanza: Element, session: Session): void {
    this.onStanza(stanza, session);
  }
  deliverNonza(el: Element, session: Session): void {
    this.transport?.deliverNonza?.(el, session);
  }
  close(reason: string | undefined, session: Session): void {
    this.transport?.close?.(reason, session);
  }
}

export function smElement(name: string, attrs: Record<string, string> = {}, ...children: Element[]): Element {
  return xml(name, { xmlns: NS_SM, ...attrs }, ...children);
}

export function failed(condition: string, h?: number): Element {
  return smElement("failed", h === undefined ? {} : { h: String(h % H_MOD) }, xml(condition, { xmlns: NS_STANZAS }));
}
