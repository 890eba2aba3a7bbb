// End to end: the real server on 127.0.0.1 (ephemeral ports, SQLite file)
// and a real client library, @xmpp/client 0.14, over TCP and WebSocket.
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, Server } from "mamkit";
import { xml } from "@xmpp/xml";
import type { Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { newClient, type Running, startServer, waitFor } from "./helpers.js";

// the server's certificate is self-signed (generated at start): accept it here
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
process.removeAllListeners("warning");

let run: Running;
const clients: Client[] = [];
beforeAll(async () => {
  run = await startServer();
});
afterAll(async () => {
  for (const c of clients) await c.stop().catch(() => {});
  await run.stop();
});

function track(c: Client): Client {
  clients.push(c);
  return c;
}

function collect(c: Client): Element[] {
  const got: Element[] = [];
  c.on("stanza", (s: Element) => {
    if (s.name === "message" && s.getChild("body")) got.push(s);
  });
  return got;
}

const UA = "4d5c1ec9-8b3e-4f3c-9d6e-2f1a0b7c6d5e";

describe("end to end with @xmpp/client", () => {
  it("logs in over TCP with STARTTLS, SASL2 and Bind 2, with the user-agent id as client id", async () => {
    const alice = track(newClient(run.tcp, "alice", "localhost", { userAgent: xml("user-agent", { id: UA }, xml("software", {}, "e2e")) }));
    const jid = await alice.start();
    expect(alice.isSecure()).toBe(true);
    expect(jid.toString()).toMatch(/^alice@localhost\/.+/);
    const session = run.server.host("localhost").fullSessions.get(jid.toString())!;
    expect(session.clientId).toBe(UA);
    expect(alice.streamManagement.enabled).toBe(true); // inline in Bind 2
    await alice.stop();
  });

  it("logs in with legacy SASL and resource binding (no client id), with legacy <enable/>", async () => {
    const carol = track(newClient(run.tcp, "carol", "legacy.localhost", { resource: "desk" }));
    const jid = await carol.start();
    expect(jid.toString()).toBe("carol@legacy.localhost/desk");
    const session = run.server.host("legacy.localhost").fullSessions.get(jid.toString())!;
    expect(session.clientId).toBeUndefined();
    await waitFor(() => carol.streamManagement.enabled);
    await carol.stop();
  });

  it("refuses a wrong password with not-authorized", async () => {
    const bad = newClient(run.tcp, "alice", "localhost", { password: "wrong" });
    bad.reconnect.stop();
    const err = await bad.start().then(
      () => undefined,
      (e: { condition?: string }) => e,
    );
    expect(err?.condition).toBe("not-authorized");
    await bad.stop().catch(() => {});
  });

  it("lets two accounts chat, one over TCP and one over WebSocket, and archives it", async () => {
    const alice = track(newClient(run.tcp, "alice"));
    const bob = track(newClient(run.ws, "bob"));
    const bobGot = collect(bob);
    await alice.start();
    await bob.start();
    await bob.send(xml("presence"));
    await waitFor(() => run.server.host("localhost").sessionsOf("bob") && [...run.server.host("localhost").sessionsOf("bob")!.values()].some((s) => s.available));
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hello over the wire")));
    await waitFor(() => bobGot.length > 0);
    const m = bobGot[0]!;
    expect(m.attrs.from).toBe(alice.jid!.toString());
    const sid = m.getChild("stanza-id", "urn:xmpp:sid:0")!;
    // MAM over the wire: the message is in bob's archive under that id
    const results: Element[] = [];
    bob.on("stanza", (s: Element) => {
      if (s.getChild("result", "urn:xmpp:mam:2")) results.push(s);
    });
    const fin = await bob.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: "urn:xmpp:mam:2", queryid: "e2e" })));
    expect(fin.getChild("fin", "urn:xmpp:mam:2")!.attrs.complete).toBe("true");
    const ids = results.map((r) => r.getChild("result")!.attrs.id);
    expect(ids).toContain(sid.attrs.id);
    await alice.stop();
    await bob.stop();
  });

  it("sends carbons between two clients of one account", async () => {
    const phone = track(newClient(run.tcp, "alice", "localhost", { resource: "phone" }));
    const laptop = track(newClient(run.ws, "alice", "localhost", { resource: "laptop" }));
    const bob = track(newClient(run.tcp, "bob"));
    const carbons: Element[] = [];
    laptop.on("stanza", (s: Element) => {
      if (s.getChild("sent", "urn:xmpp:carbons:2")) carbons.push(s);
    });
    await phone.start();
    await laptop.start();
    await bob.start();
    await laptop.iqCaller.request(xml("iq", { type: "set" }, xml("enable", { xmlns: "urn:xmpp:carbons:2" })));
    await phone.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "sent from the phone")));
    await waitFor(() => carbons.length > 0);
    const inner = carbons[0]!.getChild("sent")!.getChild("forwarded")!.getChild("message")!;
    expect(inner.getChildText("body")).toBe("sent from the phone");
    expect(inner.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.by).toBe("alice@localhost");
    for (const c of [phone, laptop, bob]) await c.stop();
  });

  for (const [how, domain, user] of [
    ["inline in SASL2", "localhost", "bob"],
    ["with the legacy <resume/>", "legacy.localhost", "carol"],
  ] as const) {
    it(`resumes ${how} after the socket is killed, losing and duplicating nothing`, async () => {
      const receiver = track(newClient(run.tcp, user, domain, { resource: "mobile" }));
      receiver.reconnect.delay = 100;
      const got = collect(receiver);
      await receiver.start();
      await waitFor(() => receiver.streamManagement.enabled);
      await receiver.send(xml("presence"));
      const smId = receiver.streamManagement.id;
      const host = run.server.host(domain);
      // messages come from the server itself, so no second account is needed on either host
      const send = (body: string) =>
        host.server.routeFromHost(host, xml("message", { to: `${user}@${domain}`, type: "chat", from: host.name }, xml("body", {}, body)));
      await waitFor(() => [...(host.sessionsOf(user)?.values() ?? [])].some((s) => s.available));
      send("before 1");
      send("before 2");
      await waitFor(() => got.length === 2);
      const resumed = new Promise<void>((r) => receiver.streamManagement.once("resumed", () => r()));
      receiver.socket!.socket!.destroy(); // the connection dies without a goodbye
      await waitFor(() => [...(host.sessionsOf(user)?.values() ?? [])].some((s) => s.hibernating));
      send("while away 1");
      send("while away 2");
      await resumed;
      expect(receiver.streamManagement.id).toBe(smId);
      send("after");
      await waitFor(() => got.length >= 5);
      await new Promise((r) => setTimeout(r, 200));
      expect(got.map((m) => m.getChildText("body"))).toEqual(["before 1", "before 2", "while away 1", "while away 2", "after"]);
      await receiver.stop();
    });
  }

  it("closes the stream with policy-violation for an oversized stanza", async () => {
    const alice = newClient(run.tcp, "alice");
    alice.reconnect.stop();
    const errors: { condition?: string }[] = [];
    alice.on("error", (e: { condition?: string }) => errors.push(e));
    await alice.start();
    await alice.write(`<message to='bob@localhost'><body>${"x".repeat(300 * 1024)}</body></message>`);
    await waitFor(() => errors.find((e) => e.condition === "policy-violation"));
    // refused before it was routed: neither archive holds it
    const archive = run.server.host("localhost").openStore("archive", "archive");
    for (const user of ["alice", "bob"]) {
      const bodies = (await archive.find(user)).items.map((i) => i.stanza.getChildText("body") ?? "");
      expect(bodies.filter((b) => b.startsWith("xxxxxxxx"))).toEqual([]);
    }
    await alice.stop().catch(() => {});
  });

  it("closes the stream with not-well-formed for malformed XML", async () => {
    const alice = newClient(run.ws, "alice");
    alice.reconnect.stop();
    const errors: { condition?: string }[] = [];
    alice.on("error", (e: { condition?: string }) => errors.push(e));
    await alice.start();
    await alice.write("<message><body>oops</bod></message>");
    await waitFor(() => errors.find((e) => e.condition === "not-well-formed"));
    // nothing of the malformed stanza was archived
    const items = (await run.server.host("localhost").openStore("archive", "archive").find("alice")).items;
    expect(items.map((i) => i.stanza.getChildText("body"))).not.toContain("oops");
    await alice.stop().catch(() => {});
  });
});

describe("the database Prosody 0.12.3 wrote, served to @xmpp/client", () => {
  it("logs romeo in with his Prosody password (SCRAM-SHA-1) and serves his archive", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mamkit-prosody-e2e-"));
    const db = join(dir, "prosody.sqlite");
    copyFileSync(new URL("../fixtures/prosody-0.12.3-sample.sqlite", import.meta.url), db);
    const server = new Server({
      config: {
        storage: { driver: "sqlite", database: db },
        c2s_ports: [0],
        websocket_ports: [],
        c2s_require_encryption: false,
        modules_enabled: ["saslauth", "sasl2", "bind2", "smacks", "mam"],
        archive_expires_after: "never",
        hosts: { "shakespeare.example": {} },
      },
      logger: createLogger({ level: "silent" }),
    });
    const l = await server.listen();
    try {
      const romeo = newClient(`xmpp://127.0.0.1:${l.c2s[0]!.port}`, "romeo", "shakespeare.example", { password: "o-romeo-romeo" });
      const results: Element[] = [];
      romeo.on("stanza", (s: Element) => {
        if (s.getChild("result", "urn:xmpp:mam:2")) results.push(s);
      });
      await romeo.start();
      const fin = await romeo.iqCaller.request(
        xml("iq", { type: "set" }, xml("query", { xmlns: "urn:xmpp:mam:2" }, xml("set", { xmlns: "http://jabber.org/protocol/rsm" }, xml("max", {}, "5")))),
      );
      expect(fin.getChild("fin")!.getChild("set")!.getChildText("count")).toBe("89");
      expect(results[0]!.getChild("result")!.attrs.id).toBe("cc454548-b164-4ab4-b2f8-dd464dbb776d");
      await romeo.stop();
      const wrong = newClient(`xmpp://127.0.0.1:${l.c2s[0]!.port}`, "juliet", "shakespeare.example", { password: "o-romeo-romeo" });
      wrong.reconnect.stop();
      const err = await wrong.start().then(() => undefined, (e: { condition?: string }) => e);
      expect(err?.condition).toBe("not-authorized");
      await wrong.stop().catch(() => {});
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
