// One object per client connection (or fake test client). Outbound:
// send() → `stanzas/out` filters → sink. Inbound: receive() → `stanzas/in`
// filters → router. Nothing here knows about sockets or modules.
import { randomBytes } from "node:crypto";
import { overTurnBudget } from "./turn.js";
import { Element } from "@xmpp/xml";
import type { Logger } from "./logger.js";
import type { Jid } from "../xmpp/jid.js";

/**
 * A stanza filter: return the stanza (or a replacement) to pass it on, `null`
 * to drop it. Returning `undefined` passes the stanza on unchanged.
 */
export type StanzaFilter = (stanza: Element, session: Session) => Element | null | undefined;
export type FilterDirection = "stanzas/in" | "stanzas/out";

interface FilterEntry {
  fn: StanzaFilter;
  priority: number;
}

export class FilterChain {
  private list: FilterEntry[] = [];

  get size(): number {
    return this.list.length;
  }

  /** Higher priority runs first; equal priorities in the order added. */
  add(fn: StanzaFilter, priority = 0): void {
    const next = this.list.slice();
    let i = next.length;
    while (i > 0 && next[i - 1]!.priority < priority) i--;
    next.splice(i, 0, { fn, priority });
    this.list = next;
  }

  remove(fn: StanzaFilter): boolean {
    const i = this.list.findIndex((e) => e.fn === fn);
    if (i < 0) return false;
    this.list = this.list.filter((_, j) => j !== i);
    return true;
  }

  run(stanza: Element, session: Session): Element | null {
    const list = this.list;
    let s = stanza;
    for (let i = 0; i < list.length; i++) {
      const out = list[i]!.fn(s, session);
      if (out === null) return null;
      if (out !== undefined) s = out;
    }
    return s;
  }
}

/** Where a session's outgoing stanzas end up: a transport, or a fake client's inbox. */
export interface SessionSink {
  deliver(stanza: Element, session: Session): void;
  /** Stream-level elements (stream management, stream errors): not stanzas, never counted or queued. */
  deliverNonza?(element: Element, session: Session): void;
  /** Ends the connection (the session is already marked closed, or it hibernates). */
  close?(reason: string | undefined, session: Session): void;
}

/** What a session needs from its host (kept narrow so sessions do not import the host). */
export interface SessionOwner {
  readonly name: string;
  /** Handles an element; a promise when a handler is asynchronous. */
  receiveFrom(session: Session, stanza: Element): boolean | Promise<boolean>;
  /** The storage's write mark and durability barrier (StorageDriver.mark / durable). */
  writeMark(): number;
  durable(mark: number): Promise<void>;
  detach(session: Session, reason: string | undefined): void;
  /** True when a module keeps the session after its connection is lost. */
  transportLost(session: Session, reason: string): boolean;
}

/**
 * The stream under a session, as the modules that authenticate and bind it
 * see it (saslauth, sasl2, bind2): what the connection knows of itself, and
 * the few things they may ask of it. Stanzas never need it.
 */
export interface StreamControl {
  readonly kind: "tcp" | "websocket";
  /** The connection is encrypted (TLS, or a WebSocket considered secure). */
  readonly secure: boolean;
  readonly remoteAddress: string;
  readonly authenticated: boolean;
  readonly closed: boolean;
  /** From now on the stream is authenticated: stanzas and binding are allowed. */
  markAuthenticated(): void;
  /** The client opens a new stream next (RFC 6120 §6.4.6): a fresh parser, a new header. */
  restartStream(): void;
  /** Sends `<stream:features/>` for where the stream is now. */
  sendFeatures(): void;
  /**
   * Holds what is delivered to the session from now on (SASL2: it must follow
   * `<success/>`, which is not written yet). Held stanzas are already filtered.
   */
  holdOutput(): void;
  /** Ends holding; returns what was held, in order. */
  releaseOutput(): Element[];
  /**
   * Writes elements (a nonza and the stanzas that must follow it): in one write
   * on TCP, one message each on WebSocket (RFC 7395 §3.3.3).
   */
  writeTogether(elements: readonly Element[]): void;
  streamError(condition: string, text?: string): void;
  /** This stream now carries `session` (an XEP-0198 resumption took it over). */
  carry(session: Session): void;
}

export const NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams";

/**
 * A typed per-session slot a module keeps state in, instead of a string key:
 * `const ENABLED = new SessionSlot<boolean>("carbons enabled")`, then
 * `session.set(ENABLED, true)`, `session.get(ENABLED)`. The slot object is the key;
 * its name is for reading logs and debuggers.
 */
export class SessionSlot<T> {
  declare private readonly type: T;
  constructor(readonly name: string) {}
}

export class Session {
  readonly id: string;
  /** Full JID once bound. */
  jid: Jid | undefined;
  /** Stable client identity (SASL2 user-agent id); `undefined` for legacy clients. */
  clientId: string | undefined;
  /** Sent available presence (and not unavailable since). */
  available = false;
  priority = 0;
  closed = false;
  readonly filters = { in: new FilterChain(), out: new FilterChain() };
  /** Per-session state of modules, in typed slots (see SessionSlot). */
  private readonly slots = new Map<SessionSlot<unknown>, unknown>();
  readonly log: Logger;

  /** The account of a session that authenticated but has not bound a resource (yet). */
  authUser: string | undefined;
  /** The connection is gone but the session lives on (XEP-0198 hibernation). */
  hibernating = false;
  /** The stream under a client connection (none for the test kit's fake clients). */
  stream: StreamControl | undefined;

  // Inbound elements are handled one at a time, in order (RFC 6120 §10.1): while
  // one waits for its handler, the next ones wait here.
  private readonly inbox: Element[] = [];
  private busy = false;
  private inputStopped = false;
  /** Waiting for the inbox to empty (idle()). */
  private idleWaiters: (() => void)[] = [];
  /** Called for each element once it was handled and what it stored is durable, in order. */
  private readonly settledListeners = new Set<(el: Element) => void>();
  /** Settles once every element received so far is handled and durable. */
  private tail: Promise<void> = Promise.resolve();

  constructor(
    readonly host: SessionOwner,
    private sink: SessionSink,
    log: Logger,
    opts: { clientId?: string; authUser?: string } = {},
  ) {
    this.id = randomBytes(6).toString("base64url");
    this.clientId = opts.clientId;
    this.authUser = opts.authUser;
    this.log = log.child({ sid: this.id });
  }

  /** The current sink (a stream-management layer may wrap it). */
  get output(): SessionSink {
    return this.sink;
  }

  /** Replaces where output goes: a stream-management queue, or a resumed connection. */
  setOutput(sink: SessionSink): void {
    this.sink = sink;
  }

  /** What a module keeps in `slot` for this session. */
  get<T>(slot: SessionSlot<T>): T | undefined {
    return this.slots.get(slot) as T | undefined;
  }

  set<T>(slot: SessionSlot<T>, value: T): void {
    this.slots.set(slot, value);
  }

  has(slot: SessionSlot<unknown>): boolean {
    return this.slots.has(slot);
  }

  delete(slot: SessionSlot<unknown>): boolean {
    return this.slots.delete(slot);
  }

  /** Sends a stream-level element (not a stanza: no filters, no counting). */
  sendNonza(element: Element): void {
    if (this.closed) return;
    this.sink.deliverNonza?.(element, this);
  }

  /** Sends a stream error (RFC 6120 §4.9) and closes the session. */
  streamError(condition: string, text?: string, appElement?: Element): void {
    this.inbox.length = 0; // what came after the fault is not handled
    const err = new Element("stream:error", {});
    err.cnode(new Element(condition, { xmlns: NS_STREAMS }));
    if (text) err.cnode(new Element("text", { xmlns: NS_STREAMS })).t(text);
    if (appElement) err.cnode(appElement);
    this.sendNonza(err);
    this.close(condition);
  }

  /**
   * The connection was lost. A module may keep the session (stream management
   * hibernation) by answering `session-transport-lost`; otherwise it closes.
   */
  transportLost(reason = "connection lost"): void {
    if (this.closed || this.hibernating) return;
    if (this.host.transportLost(this, reason)) return;
    this.close(reason);
  }

  get username(): string | undefined {
    return this.jid?.local;
  }

  get resource(): string | undefined {
    return this.jid?.resource;
  }

  /** Sends a stanza to the client through the `stanzas/out` filters. Returns false if dropped. */
  send(stanza: Element): boolean {
    if (this.closed) return false;
    const out = this.filters.out.size === 0 ? stanza : this.filters.out.run(stanza, this);
    if (out === null) return false;
    this.sink.deliver(out, this);
    return true;
  }

  /**
   * An element from the client: `stanzas/in` filters, then the router, in the
   * order received. Returns false for a top-level element that is no stanza
   * and that nothing handled (one handled later ends the stream itself).
   */
  receive(stanza: Element): boolean {
    if (this.closed || this.inputStopped) return true;
    if (this.busy || this.inbox.length > 0) {
      this.inbox.push(stanza);
      return true;
    }
    return this.handle(stanza);
  }

  private handle(stanza: Element): boolean {
    const mark = this.settledListeners.size > 0 ? this.host.writeMark() : -1;
    const s = this.filters.in.size === 0 ? stanza : this.filters.in.run(stanza, this);
    if (s === null) {
      this.settle(stanza, undefined, mark);
      return true;
    }
    const r = this.host.receiveFrom(this, s);
    if (typeof r === "boolean") {
      this.settle(s, undefined, mark);
      return r;
    }
    this.busy = true;
    const done = r.then(
      (handled) => {
        if (!handled) this.unsupported(s);
      },
      (err: unknown) => this.log.error({ err }, "error handling an element"),
    );
    this.settle(s, done, mark);
    void done.then(() => {
      this.busy = false;
      this.drain();
    });
    return true;
  }

  private drain(): void {
    // (a session that closed still handles what it received before: the client's
    // </stream:stream> after a burst, or the connection lost; a stream error drops it)
    while (!this.busy && this.inbox.length > 0) {
      if (overTurnBudget()) {
        // the rest next turn: the event loop serves everyone else in between
        this.busy = true;
        setImmediate(() => {
          this.busy = false;
          this.drain();
        });
        return;
      }
      const el = this.inbox.shift()!;
      try {
        if (!this.handle(el)) this.unsupported(el);
      } catch (err) {
        this.log.error({ err }, "error handling an element");
      }
    }
    if (!this.busy) {
      this.inbox.length = 0;
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /** Input from the current connection is ignored from now on (it is being replaced by a resumption). */
  stopInput(): void {
    this.inputStopped = true;
  }

  /** Input is taken again (the resumption carried the session to its new connection, or failed). */
  startInput(): void {
    this.inputStopped = false;
  }

  /** Resolves once every element received so far was handled (not necessarily durable). */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private unsupported(el: Element): void {
    if (this.closed) return;
    this.streamError("unsupported-stanza-type", `<${el.name}/> in ${el.attrs.xmlns || "no namespace"} is not handled here`);
  }

  /** Once `done` and the writes since `mark` are durable, the element counts as handled. */
  private settle(el: Element, done: Promise<void> | undefined, mark: number): void {
    if (this.settledListeners.size === 0 || mark < 0) return;
    const listeners = this.settledListeners;
    const host = this.host;
    this.tail = this.tail
      .then(() => done)
      .then(() => host.durable(mark))
      .then(
        () => {
          for (const l of listeners) l(el);
        },
        (err: unknown) => {
          if (this.closed) return;
          this.log.error({ err }, "what the client sent could not be stored: ending the stream unacknowledged");
          this.settledListeners.clear();
          this.streamError("internal-server-error", "storage failed: what was not acknowledged was not stored; send it again");
        },
      );
  }

  /**
   * Calls `fn` for each element from the client, from now on, once it was
   * handled and everything it stored is durable, in the order received
   * (XEP-0198 counts a stanza as handled only then).
   */
  onSettled(fn: (el: Element) => void): void {
    this.settledListeners.add(fn);
  }

  /** Resolves once every element received before is handled and durable. */
  settled(): Promise<void> {
    return this.tail;
  }

  close(reason?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.host.detach(this, reason);
    this.sink.close?.(reason, this);
  }
}

const CLIENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A client id as XEP-0388 asks for it: a UUID. */
export function isClientId(id: string | undefined): id is string {
  return id !== undefined && CLIENT_ID.test(id);
}
