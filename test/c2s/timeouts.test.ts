// Silent peers, on a connection with a stand-in transport and fake timers so
// that time is exact: what counts as an answer to a probe, what a whitespace
// keepalive leads to, stream management without resumption. (The same rules
// over real sockets: conformance-stanzas.test.ts.)
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { C2sConnection } from "../../src/c2s/connection.js";
import type { C2sTransport } from "../../src/c2s/transport.js";
import { createLogger } from "../../src/core/logger.js";
import { Server } from "../../src/server.js";
import { b64, header } from "./raw.js";

class StandInTransport implements C2sTransport {
  readonly kind = "tcp" as const;
  readonly remoteAddress = "127.0.0.1";
  readonly secure = false;
  written = "";
  ended = false;
  canStartTls(): boolean {
    return false;
  }
  write(data: string): void {
    this.written += data;
  }
  end(): void {
    this.ended = true;
  }
  abort(): void {
    this.ended = true;
  }
  keepalive(): boolean {
    this.write(" ");
    return false;
  }
}

const READ_TIMEOUT_S = 10;
let server: Server;

function boot(modules: string[]) {
  server = new Server({
    config: {
      storage: "memory",
      c2s_require_encryption: false,
      allow_unencrypted_plain_auth: true,
      c2s_read_timeout: READ_TIMEOUT_S,
      modules_enabled: modules,
      hosts: { localhost: {} },
    },
    logger: createLogger({ level: "silent" }),
  });
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
});
afterEach(async () => {
  const stopped = server.stop();
  vi.useRealTimers();
  await stopped;
});

/** Lets the connection handle what it was given (stanzas are handled asynchronously); faked time does not move. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Lets real asynchronous work (the password hash) finish; time here is real, not faked. */
async function settle(until: () => boolean): Promise<void> {
  const start = performance.now();
  while (!until() && performance.now() - start < 5000) await new Promise<void>((r) => setImmediate(r));
  expect(until()).toBe(true);
}

async function boundConnection(after = "") {
  await server.accounts("localhost").create("alice", "secret");
  const t = new StandInTransport();
  const conn = new C2sConnection(server, t, { maxStanzaSize: 65536 });
  conn.onData(header());
  conn.onData(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0secret")}</auth>`);
  await settle(() => t.written.includes("<success"));
  conn.onData(header());
  conn.onData("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
  await settle(() => t.written.includes("</jid>"));
  if (after) {
    conn.onData(after);
    await flush();
  }
  t.written = "";
  return { t, conn };
}

const seconds = (n: number) => vi.advanceTimersByTime(n * 1000);

describe("silent peers", () => {
  it("an answer in the very millisecond of the ping counts: the stream stays", async () => {
    boot(["saslauth", "ping"]);
    const { t, conn } = await boundConnection();
    seconds(READ_TIMEOUT_S);
    const id = /id="(keepalive-\d+)"/.exec(t.written)?.[1];
    expect(id).toBeDefined();
    conn.onData(`<iq type='result' id='${id}' to='localhost'/>`); // Date.now() has not moved
    await flush();
    t.written = "";
    seconds(READ_TIMEOUT_S);
    expect(t.written).not.toContain("connection-timeout");
    expect(t.ended).toBe(false);
  });

  it("a bound client that never answers the ping is closed one c2s_read_timeout after it", async () => {
    boot(["saslauth", "ping"]);
    const { t } = await boundConnection();
    seconds(READ_TIMEOUT_S);
    expect(t.written).toContain("keepalive-");
    seconds(READ_TIMEOUT_S - 1);
    expect(t.ended).toBe(false);
    seconds(1);
    expect(t.written).toContain("<connection-timeout");
    expect(t.ended).toBe(true);
    expect(server.host("localhost").sessionsOf("alice")?.size ?? 0).toBe(0);
  });

  it("without a module that probes, a whitespace keepalive goes out every c2s_read_timeout and the stream stays (as Prosody)", async () => {
    boot(["saslauth"]);
    const { t } = await boundConnection();
    seconds(5 * READ_TIMEOUT_S);
    expect(t.written).toBe("     ");
    expect(t.ended).toBe(false);
  });

  it("stream management without resumption: <r/>, then connection-timeout and the session ends", async () => {
    boot(["saslauth", "ping", "smacks"]);
    const { t } = await boundConnection("<enable xmlns='urn:xmpp:sm:3'/>");
    seconds(READ_TIMEOUT_S);
    expect(t.written).toContain('<r xmlns="urn:xmpp:sm:3"/>');
    expect(t.written).not.toContain("keepalive-"); // smacks probes first; no ping goes through the SM count
    seconds(READ_TIMEOUT_S);
    expect(t.written).toContain("<connection-timeout");
    expect(server.host("localhost").sessionsOf("alice")?.size ?? 0).toBe(0);
  });
});
