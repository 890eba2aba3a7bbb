/// <reference path="../types/xmpp-xml.d.ts" preserve="true" />
// The public test kit (`mamkit/testing`): an in-memory server, fake client
// sessions, a manual clock, captured logs and scheduled tasks on demand.
// No sockets, no files.
import { ManualClock } from "../core/clock.js";
import { parseConfig } from "../core/config.js";
import type { Host } from "../core/host.js";
import { createLogger, type LogLevel } from "../core/logger.js";
import type { ModuleDefinition } from "../core/module.js";
import type { PayloadOf } from "../core/event-payloads.js";
import { Server } from "../server.js";
import { MemoryDriver } from "../storage/memory/driver.js";
// (better-sqlite3 loads its native addon at the first database opened, not at import:
// a kit on the memory driver runs without the native build)
import { SqliteDriver } from "../storage/sqlite/driver.js";
import type { StorageDriver } from "../storage/types.js";
import { xml } from "../xmpp/stanza.js";
import { parseJid } from "../xmpp/jid.js";
import { FakeClient, stopped } from "./client.js";

const NS_SM = "urn:xmpp:sm:3";

export { ManualClock, xml };
export { FakeClient };

export interface TestServerOptions {
  /** Config in the JSON file's shape. Defaults: one host "localhost", no modules. */
  config?: Record<string, unknown>;
  /** Modules of your own, loaded on every host. */
  modules?: readonly ModuleDefinition[];
  /** The host's clock; a ManualClock at 2026-01-01T00:00:00Z unless given. */
  clock?: ManualClock;
  /**
   * "memory" (default), "sqlite" (an in-memory SQLite database with Prosody's
   * schema; better-sqlite3's native addon is loaded only then), or a driver.
   */
  storage?: "memory" | "sqlite" | StorageDriver;
  /**
   * When scheduled tasks run: "clock" (default) as the manual clock passes
   * their time, or "on-demand": only through `runScheduled()`.
   */
  tasks?: "clock" | "on-demand";
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
      // scheduled tasks and module timers run on the manual clock: `await clock.advance(ms)`
      scheduler: opts.tasks === "on-demand" ? "off" : "clock",
    });
  }

  /** A host by name (the first configured one by default). */
  host(name?: string): Host {
    return name === undefined ? this.server.hosts.values().next().value! : this.server.host(name);
  }

  /** Connects a fake client as `user@host[/resource]`. */
  connect(jid: string, opts: ConnectOptions = {}): FakeClient {
    if (this.server.stopped) throw stopped(`connect(${JSON.stringify(jid)})`);
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
    if (this.server.stopped) throw stopped("resume");
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

  /**
   * Runs scheduled tasks now (those named `name`, or all); resolves with how
   * many ran. A name no loaded module scheduled rejects, listing the names
   * there are (see `scheduledTasks`).
   */
  runScheduled(name?: string): Promise<number> {
    if (this.server.stopped) return Promise.reject(stopped("runScheduled"));
    return this.server.scheduler.run(name);
  }

  /** The scheduled tasks of every host: name, owning module and node-cron expression. */
  get scheduledTasks(): { name: string; module: string; expression: string }[] {
    return this.server.scheduler.list().map((j) => ({ name: j.name, module: j.owner, expression: j.expression }));
  }

  /**
   * Fires an event on a host (the first one by default), typed by the event
   * map (EventPayloads) for the names it declares; resolves with what the
   * first handler that answered returned (a HandlerFailure if one threw).
   */
  async fire<E extends string>(event: E, data: PayloadOf<E>, host?: string): Promise<unknown> {
    if (this.server.stopped) throw stopped(`fire(${JSON.stringify(event)})`);
    return this.host(host).events.fireAsync(event, data);
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
