// A fake client of the test kit: a session without a socket; what the server
// sends lands in its queue, and what it sends resolves once handled and durable.
import type { Element } from "@xmpp/xml";
import { HostError } from "../core/errors.js";
import type { Host } from "../core/host.js";
import type { Session } from "../core/session.js";
import { parseXml } from "../storage/codec.js";
import { xml } from "../xmpp/stanza.js";

const NS_SM = "urn:xmpp:sm:3";

export function stopped(what: string): HostError {
  return new HostError(
    "MAMKIT_ERR_STOPPED",
    `${what}: this test server is stopped (create one per test, e.g. in beforeEach, and stop it in afterEach)`,
  );
}

type Waiter = { pred: (s: Element) => boolean; resolve: (s: Element) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** A client session without a socket: what the server sends lands in `queue`. */
export class FakeClient {
  session!: Session;
  /** Stanzas received and not yet taken, oldest first. */
  readonly queue: Element[] = [];
  /** Every stanza ever received. */
  readonly received: Element[] = [];
  /** Stream-level elements received (<enabled/>, <r/>, <a/>, stream errors), in order. */
  readonly nonzas: Element[] = [];
  /** Stanzas received on this connection, counted as XEP-0198's h (starts at the resumed h). */
  handled = 0;
  /** The stream-management resumption id, once enabled. */
  smId: string | undefined;
  /** The stream error that ended the connection, if any. */
  streamError: Element | undefined;
  closeReason: string | undefined;
  /** The connection is gone (dropped or closed): nothing more arrives. */
  disconnected = false;
  private waiters: Waiter[] = [];
  private nextId = 0;

  readonly sink = {
    deliver: (stanza: Element, session: Session) => {
      if (this.disconnected) return;
      this.session = session; // after a resumption, the resumed session writes here
      this.handled++;
      this.received.push(stanza);
      const i = this.waiters.findIndex((w) => w.pred(stanza));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(stanza);
      } else this.queue.push(stanza);
    },
    deliverNonza: (el: Element, session: Session) => {
      if (this.disconnected) return;
      if (el.name === "resumed") this.session = session;
      if (el.name === "stream:error") this.streamError = el;
      this.nonzas.push(el);
    },
    close: (reason: string | undefined) => {
      this.closeReason = reason;
      this.disconnected = true;
    },
  };

  /** Sends `<a h/>` for what this connection handled (or the given h). */
  ack(h = this.handled): Promise<void> {
    return this.send(xml("a", { xmlns: NS_SM, h: String(h % 2 ** 32) }));
  }

  /** Sends `<r/>`; resolves once the server's `<a/>` (counting what is durable) is in `nonzas`. */
  async requestAck(): Promise<void> {
    await this.send(xml("r", { xmlns: NS_SM }));
    await this.session.settled();
    await new Promise<void>((r) => setImmediate(r));
  }

  /** The connection breaks: with resumable stream management the session hibernates, else it ends. */
  drop(): void {
    this.disconnected = true;
    this.session.transportLost("connection dropped (test)");
  }

  get jid(): string {
    return this.session.jid!.full;
  }

  /**
   * Sends a stanza (an element or XML text) as this client; resolves once the
   * server handled it and what it stored is durable (await it before looking
   * at what arrived).
   */
  async send(stanza: Element | string): Promise<void> {
    const session = this.session;
    const host = session.host as Host;
    if (host.server.stopped) throw stopped(`${session.jid?.full ?? "client"}: send`);
    if (this.disconnected) throw new Error(`${this.session.jid?.full ?? "client"}: the connection is closed`);
    const mark = host.writeMark();
    session.receive(typeof stanza === "string" ? parseXml(stanza) : stanza);
    await session.idle();
    await host.durable(mark);
  }

  /** Sends an iq (an id is added if missing) and resolves with its result or error reply. */
  request(iq: Element | string, timeoutMs = 2000): Promise<Element> {
    const el = typeof iq === "string" ? parseXml(iq) : iq;
    if (el.attrs.id === undefined) el.attrs.id = `test-${++this.nextId}`;
    const id = el.attrs.id as string;
    const reply = this.next((s) => s.name === "iq" && s.attrs.id === id && (s.attrs.type === "result" || s.attrs.type === "error"), timeoutMs);
    reply.catch(() => {}); // (a timeout is still the caller's: see the return)
    return this.send(el).then(() => reply);
  }

  /** The next stanza (matching `pred`): taken from the queue, or awaited. */
  next(pred: (s: Element) => boolean = () => true, timeoutMs = 2000): Promise<Element> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`${this.session.jid?.full}: no matching stanza within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({ pred, resolve, reject, timer });
    });
  }

  /** Takes every queued stanza. */
  take(): Element[] {
    return this.queue.splice(0);
  }

  close(reason?: string): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error("client closed"));
    }
    this.waiters = [];
    this.session?.close(reason);
  }
}
