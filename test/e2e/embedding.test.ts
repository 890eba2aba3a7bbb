// Embedding the network server through the package's public API only
// (`mamkit`): listen on chosen or free ports, manage accounts, log a real
// client in over TCP and WebSocket, close; and what goes wrong says so.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "@xmpp/xml";
import { WebSocket } from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, createServer, HostError, type Server } from "mamkit";
import { freePort, portOpen } from "../helpers/net.js";
import { newClient } from "./helpers.js";

// the server's certificate is the self-signed one it generates at first start
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A server as an application would build it, its log lines kept. */
function build(extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-embed-"));
  dirs.push(dir);
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const server = createServer({
    config: {
      storage: { driver: "sqlite", database: join(dir, "db.sqlite") },
      modules_enabled: ["saslauth", "sasl2", "bind2", "roster", "presence", "ping", "smacks", "mam"],
      hosts: { localhost: {} },
      ...extra,
    },
    logger: createLogger({ level: "info", destination: { write: (l: string) => void lines.push(JSON.parse(l)) } }),
  });
  servers.push(server);
  return { server, lines };
}

async function rejection(p: Promise<unknown>): Promise<HostError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  return err as HostError;
}

describe("an embedded server", () => {
  it("listens on free ports, logs in a real client over TCP and WebSocket, and closes", async () => {
    const { server, lines } = build({ c2s_require_encryption: false });
    expect(lines.some((l) => l.msg === "server started")).toBe(false);
    const addresses = await server.listen({ interfaces: ["127.0.0.1"], c2sPorts: [0], websocketPorts: [0] });
    const started = lines.find((l) => l.msg === "server started");
    expect(started).toMatchObject({ hosts: ["localhost"], c2s: [`127.0.0.1:${addresses.c2s[0]!.port}`] });
    expect(server.addresses).toEqual(addresses);

    const accounts = server.accounts("localhost");
    await accounts.create("alice", "alice-password");
    await accounts.create("bob", "bob-password");
    expect(await accounts.list()).toEqual(expect.arrayContaining(["alice", "bob"]));
    const tcp = newClient(`xmpp://127.0.0.1:${addresses.c2s[0]!.port}`, "alice");
    const ws = newClient(`ws://127.0.0.1:${addresses.websocket[0]!.port}/xmpp-websocket`, "bob");
    await tcp.start();
    await ws.start();
    const pong = await ws.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    expect(pong.attrs.type).toBe("result");
    await tcp.stop();
    await ws.stop();

    await server.close();
    expect(await portOpen(addresses.c2s[0]!.port)).toBe(false);
    expect((await rejection(server.listen())).code).toBe("MAMKIT_ERR_STOPPED");
  });

  it("manages accounts: create, exists, change the password, delete, with clear errors", async () => {
    const { server } = build();
    const accounts = server.accounts(); // the first host
    expect(accounts.host).toBe("localhost");
    await accounts.create("Carol", "one");
    expect(await accounts.exists("carol")).toBe(true); // user names are normalised as JIDs are
    expect((await rejection(accounts.create("carol", "two"))).message).toBe("the account carol@localhost exists already");
    expect((await rejection(accounts.setPassword("dave", "x"))).message).toBe("no account dave@localhost");
    expect((await rejection(accounts.create("dave", ""))).message).toBe("an empty password is refused");
    expect((await rejection(accounts.create("dave@elsewhere", "x"))).code).toBe("MAMKIT_ERR_ACCOUNT");
    await accounts.setPassword("carol", "three");
    await accounts.delete("carol");
    expect(await accounts.exists("carol")).toBe(false);
    expect((await rejection(accounts.delete("carol"))).code).toBe("MAMKIT_ERR_ACCOUNT");
    expect(() => server.accounts("nowhere.example")).toThrow(/no host "nowhere.example"/);
  });

  it("says which address it cannot bind, keeps nothing half-open and logs no start", async () => {
    const busy = createNetServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const busyPort = (busy.address() as { port: number }).port;
    const free = await freePort();
    try {
      const { server, lines } = build();
      const err = await rejection(server.listen({ c2sPorts: [free, busyPort], websocketPorts: [] }));
      expect(err.code).toBe("MAMKIT_ERR_LISTEN");
      expect(err.message).toBe(`cannot listen on 127.0.0.1:${busyPort} (c2s_ports): the address is in use (another server, or a second mamkit?)`);
      expect(await portOpen(free)).toBe(false); // the one bound before was closed again
      expect(lines.some((l) => l.msg === "server started")).toBe(false);
      expect(lines.find((l) => l.level === 50)?.msg).toBe("server not started: a listener could not be opened");
      expect(server.addresses).toBeUndefined();
      // and it can try again
      const again = await server.listen({ c2sPorts: [free], websocketPorts: [] });
      expect(again.c2s[0]!.port).toBe(free);
    } finally {
      busy.close();
    }
  });
});

/** Opens a raw RFC 7395 stream and resolves with what the server answered until it closed. */
function wsOpen(port: number): Promise<{ text: string; code: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, "xmpp");
    let text = "";
    ws.on("open", () => ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`));
    ws.on("message", (d) => {
      text += d.toString();
    });
    ws.on("close", (code) => resolve({ text, code, ms: Date.now() - started }));
    ws.on("error", reject);
  });
}

describe("WebSocket and encryption", () => {
  it("with the example's c2s_require_encryption, a loopback WebSocket client logs in (loopback counts as secure)", async () => {
    const { server, lines } = build({ c2s_require_encryption: true });
    const a = await server.listen({ c2sPorts: [], websocketPorts: [0] });
    expect(lines.filter((l) => l.level === 40)).toEqual([]); // a loopback listener: nothing to warn about
    await server.accounts().create("bob", "bob-password");
    const ws = newClient(`ws://127.0.0.1:${a.websocket[0]!.port}/xmpp-websocket`, "bob");
    await ws.start();
    expect(ws.jid?.toString()).toMatch(/^bob@localhost\//);
    await ws.stop();
  });

  it("with consider_websocket_secure false, warns at start and ends a stream that cannot authenticate at once", async () => {
    const { server, lines } = build({ c2s_require_encryption: true, consider_websocket_secure: false });
    const a = await server.listen({ c2sPorts: [], websocketPorts: [0] });
    const warning = lines.find((l) => l.level === 40);
    expect(warning?.msg).toMatch(/^nobody can authenticate on this WebSocket listener: c2s_require_encryption is on and consider_websocket_secure is false/);
    expect(warning?.websocket).toBe(`127.0.0.1:${a.websocket[0]!.port}`);
    const r = await wsOpen(a.websocket[0]!.port);
    expect(r.text).toContain("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>".replace(/'/g, '"'));
    expect(r.text).toContain("this WebSocket connection is not encrypted and the server requires encryption (c2s_require_encryption)");
    expect(r.text).not.toContain("<stream:features");
    expect(r.ms).toBeLessThan(5000); // not the 5-minute authentication timeout
  });

  it("warns that clients of other machines cannot authenticate on a WebSocket listener on every interface", async () => {
    const { server, lines } = build({ c2s_require_encryption: true });
    await server.listen({ interfaces: ["*"], c2sPorts: [], websocketPorts: [0] });
    expect(lines.find((l) => l.level === 40)?.msg).toMatch(/^clients from other machines cannot authenticate on this WebSocket listener/);
  });
});
