/// <reference path="../types/xmpp-xml.d.ts" preserve="true" />
// The public test kit (`mamkit/testing`): an in-memory server, fake client
// sessions, a manual clock, captured logs and scheduled tasks on demand.
// No sockets, no files.
import type { Element } from "@xmpp/xml";
import { ManualClock } from "../core/clock.js";
import { parseConfig } from "../core/config.js";
import type { Host } from "../core/host.js";
import { createLogger, type LogLevel } from "../core/logger.js";
import type { ModuleDefinition } from "../core/module.js";
import { Server } from "../server.js";
import { parseXml } from "../storage/codec.js";
import { MemoryDriver } from "../storage/memory/driver.js";
import { SqliteDriver } from "../storage/sqlite/driver.js";
import type { StorageDriver } from "../storage/types.js";
import type { Session } from "../core/session.js";
import { xml } from "../xmpp/stanza.js";
import { parseJid } from "../xmpp/jid.js";

const NS_SM = "urn:xmpp:sm:3";

export { ManualClock, xml };

export interface TestServerOptions {
  /** Config in the JSON file's shape. Defaults: one host "localhost", no modules. */
  config?: Record<string, unknown>;
  /** Modules of your own, loaded on every host. */
  modules?: readonly ModuleDefinition[];
  /** The host's clock; a ManualClock at 2026-01-01T00:00:00Z unless given. */
  clock?: ManualClock;
  /** "memory" (default), "sqlite" (an in-memory SQLite database), or a driver. */
  storage?: "memory" | "sqlite" | StorageDriver;
  /** Level of the captured log (default "debug"). */
  logLevel?: LogLevel;
}

export interface LogRecord {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

export interface ConnectOptions {
  /** Stable client id (as a SASL2 user-agent id would give). */
  clientId?: string;
  /**
   * Send initial presence (default true, priority 0). A number sends that
   * priority; false leaves the session unavailable.
   */
  presence?: boolean | number;
  /** Enable XEP-0198 stream management (needs a module that handles it, e.g. smacks). */
  streamManagement?: boolean;
}

/** Creates a server on the in-memory driver with a manual clock. */
export function createTestServer(opts: TestServerOptions = {}): TestServer {
  return new TestServer(opts);
}

export class TestServer {
  readonly server: Server;
  readonly clock: ManualClock;
  /** Every log line, parsed (pino's numeric levels: 30 info, 40 warn, 50 error). */
  readonly logs: LogRecord[] = [];
  private readonly clients = new Set<FakeClient>();

  constructor(opts: TestServerOptions = {}) {
    this.clock = opts.clock ?? new ManualClock();
    // no account store by default: every user of a served host exists
    const config = parseConfig({ hosts: { localhost: {} }, authentication: "none", ...opts.config, storage: "memory" });
    const storage =
      typeof opts.storage === "object"
        ? opts.storage
        : opts.storage === "sqlite"
          ? new SqliteDriver(":memory:")
          : new MemoryDriver();
    const logger = createLogger({
      level: opts.logLevel ?? "debug",
      destination: { write: (line: string) => void this.logs.push(JSON.parse(line) as LogRecord) },
    });
    this.server = new Server({
      config,
      modules: opts.modules ?? [],
      clock: this.clock,
      logger,
      storage,
      timers: false,
    });
  }

  /** A host by name (the first configured one by default). */
  host(name?: string): Host {
    return name === undefined ? this.server.hosts.values().next().value! : this.server.host(name);
  }

  /** Connects a fake client as `user@host[/resource]`. */
  connect(jid: string, opts: ConnectOptions = {}): FakeClient {
    const j = parseJid(jid);
    if (j.local === undefined) throw new Error(`connect: ${jid} is not user@host[/resource]`);
    const host = this.server.host(j.domain);
    const client = new FakeClient();
    const sessionOpts: { username: string; resource?: string; clientId?: string } = { username: j.local };
    if (j.resource !== undefined) sessionOpts.resource = j.resource;
    if (opts.clientId !== undefined) sessionOpts.clientId = opts.clientId;
    client.session = host.openSession(client.sink, sessionOpts);
    this.clients.add(client);
    if (opts.streamManagement) {
      const handled = host.server.router.fromSession(client.session, xml("enable", { xmlns: NS_SM, resume: "true" }));
      if (!handled) throw new Error("streamManagement: no module handles <enable xmlns='urn:xmpp:sm:3'/> (load smacks)");
      const enabled = client.nonzas.find((n) => n.name === "enabled");
      client.smId = enabled?.attrs.id as string | undefined;
    }
    if (opts.presence !== false) {
      const p = xml("presence");
      if (typeof opts.presence === "number") p.c("priority").t(String(opts.presence));
      void client.send(p);
    }
    return client;
  }

  /**
   * Resumes the stream-management session of `old` (dropped with `drop()`) on
   * a new fake connection, as a client reconnecting would: `<resume previd h>`
   * with `h` = what `old` handled unless given. Throws with the server's
   * `<failed/>` when the server refuses. Resolves once the server answered
   * (it waits until what the old connection sent is durable).
   */
  async resume(old: FakeClient, opts: { h?: number; previd?: string } = {}): Promise<FakeClient> {
    const previd = opts.previd ?? old.smId;
    if (previd === undefined) throw new Error("resume: the client has no stream-management id");
    const username = old.session.jid?.local ?? old.session.authUser!;
    const host = old.session.host as Host;
    const client = new FakeClient();
    const o: { username: string; clientId?: string } = { username };
    if (old.session.clientId !== undefined) o.clientId = old.session.clientId;
    client.session = host.openUnboundSession(client.sink, o);
    const h = opts.h ?? old.handled;
    client.handled = h;
    client.smId = previd;
    void host.server.router.fromSession(client.session, xml("resume", { xmlns: NS_SM, previd, h: String(h % 2 ** 32) }));
    // (the server answers once what the old connection sent is durable)
    const answered = () => client.nonzas.find((n) => n.name === "resumed" || n.name === "failed");
    const until = Date.now() + 10_000;
    // (setImmediate, not setTimeout: tests may fake timeouts)
    while (answered() === undefined && Date.now() < until) await new Promise((r) => setImmediate(r));
    const answer = answered();
    if (answer?.name !== "resumed") throw new Error(`resume refused: ${answer?.toString() ?? "no answer"}`);
    this.clients.add(client);
    return client;
  }

  /** Runs scheduled tasks now (those named `name`, or all); resolves with how many ran. */
  runScheduled(name?: string): Promise<number> {
    return this.server.scheduler.run(name);
  }

  /** Log records at or above a pino level (e.g. 50 for errors). */
  logsAtLeast(level: number): LogRecord[] {
    return this.logs.filter((r) => r.level >= level);
  }

  /** Resolves once every client's stanzas were handled and what they stored is durable. */
  async settle(): Promise<void> {
    for (const c of this.clients) await c.session.idle();
    await this.server.storage.durable();
  }

  /** Closes every client and the server; resolves once the storage is closed. */
  stop(): Promise<void> {
    for (const c of this.clients) c.close();
    return this.server.stop();
  }
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
    if (this.disconnected) throw new Error(`${this.session.jid?.full ?? "client"}: the connection is closed`);
    const session = this.session;
    const host = session.host as Host;
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
