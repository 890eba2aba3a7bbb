// A real server on 127.0.0.1 with ephemeral ports and a SQLite file, for
// end-to-end tests with @xmpp/client. Built through the package's public API
// (`mamkit`), as an embedding application would.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { client, type Client } from "@xmpp/client";
import { type Element, xml } from "@xmpp/xml";
import { type Addresses, createLogger, Server } from "mamkit";

// @xmpp/websocket uses the global WebSocket, which Node 20 lacks
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

export interface Running {
  server: Server;
  listening: Addresses;
  tcp: string;
  ws: string;
  stop(): Promise<void>;
}

export const MODULES = ["saslauth", "sasl2", "bind2", "roster", "presence", "disco", "ping", "smacks", "carbons", "mam"];

export async function startServer(extra: Record<string, unknown> = {}): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-e2e-"));
  try {
    return await serveIn(dir, extra);
  } catch (err) {
    // a server that could not start (a bad `ssl`, say) leaves no folder behind
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function serveIn(dir: string, extra: Record<string, unknown>): Promise<Running> {
  const server = new Server({
    config: {
      storage: { driver: "sqlite", database: join(dir, "db.sqlite") },
      interfaces: ["127.0.0.1"],
      c2s_ports: [0],
      websocket_ports: [0],
      c2s_require_encryption: false,
      modules_enabled: MODULES,
      hosts: { localhost: {}, "legacy.localhost": { modules_disabled: ["sasl2", "bind2"] } },
      ...extra,
    },
    logger: createLogger({ level: (process.env.MAMKIT_TEST_LOG as "debug") ?? "silent" }),
  });
  let listening: Addresses;
  try {
    listening = await server.listen();
  } catch (err) {
    await server.stop();
    throw err;
  }
  for (const [host, users] of [["localhost", ["alice", "bob"]], ["legacy.localhost", ["carol"]]] as const) {
    const accounts = server.accounts(host);
    for (const u of users) if (!(await accounts.exists(u))) await accounts.create(u, `${u}-password`);
  }
  return {
    server,
    listening,
    tcp: `xmpp://127.0.0.1:${listening.c2s[0]!.port}`,
    ws: `ws://127.0.0.1:${listening.websocket[0]!.port}/xmpp-websocket`,
    async stop() {
      // the folder goes even when a test closed the listeners itself or stopping fails
      try {
        await server.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export function newClient(service: string, username: string, domain = "localhost", extra: Record<string, unknown> = {}): Client {
  const c = client({ service, domain, username, password: `${username}-password`, ...extra });
  c.on("error", () => {}); // errors are asserted where they matter
  return c;
}

export function waitFor<T>(fn: () => T | undefined, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      const v = fn();
      if (v !== undefined && v !== false) return resolve(v);
      if (Date.now() - start > timeoutMs) return reject(new Error("timed out waiting"));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** Queries the whole archive (MAM) and resolves with the bodies of the results, in order. */
export async function mamBodies(c: Client): Promise<string[]> {
  const bodies: string[] = [];
  const onStanza = (s: Element) => {
    const m = s.getChild("result", "urn:xmpp:mam:2")?.getChild("forwarded")?.getChild("message");
    if (m) bodies.push(m.getChildText("body") ?? "");
  };
  c.on("stanza", onStanza);
  await c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: "urn:xmpp:mam:2" })));
  c.off("stanza", onStanza);
  return bodies;
}
