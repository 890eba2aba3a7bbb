// Two `mamkit serve` processes on one PostgreSQL database (docs/storage.md,
// "Several nodes"): what one node archives, stores and tracks, the other
// serves at once. Clients are @xmpp/client (and raw sockets for resumption).
import { xml, type Element } from "@xmpp/xml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "mamkit";
import { b64, header, Raw } from "../c2s/raw.js";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";
import { mamBodies, newClient } from "./helpers.js";
import { createAccounts, NODE_MODULES, nodeConfig, startNode, stopNodes, until } from "./nodes.js";

// (the nodes' certificates are self-signed)
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
process.removeAllListeners("warning");

const PHONE = "0f1e2d3c-4b5a-4697-8877-665544332211";


/** Sends a message and resolves once the server acknowledged it (stream management). */
async function sendAcked(c: ReturnType<typeof newClient>, to: string, body: string): Promise<void> {
  const sm = (c as unknown as { streamManagement: { outbound: number; on(e: string, f: (s: Element) => void): void } }).streamManagement;
  const acked = new Promise<void>((r) => sm.on("ack", () => r()));
  await c.send(xml("message", { to, type: "chat" }, xml("body", {}, body)));
  await acked;
}

describe.skipIf(!pgAvailable)("two nodes on one PostgreSQL database", () => {
  let cluster: PgCluster;
  let url: string;
  const clients: ReturnType<typeof newClient>[] = [];
  beforeAll(async () => {
    cluster = await startPg();
  }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop().catch(() => undefined);
    await stopNodes();
  });
  const connect = async (port: number, user: string, extra: Record<string, unknown> = {}) => {
    const c = newClient(`xmpp://127.0.0.1:${port}`, user, "localhost", extra);
    clients.push(c);
    await c.start();
    return c;
  };

  it("archives, preferences and rosters written on one node are served by the other at once", async () => {
    url = await cluster.createDatabase();
    await createAccounts(url, ["alice", "bob"]);
    const config = nodeConfig(url);
    const [a, b] = await Promise.all([startNode("a", config), startNode("b", config)]);
    const alice = await connect(a.port, "alice");
    const bob = await connect(b.port, "bob");
    // alice on A writes to bob, whose session is on B (no live routing between nodes: it is archived for him)
    await sendAcked(alice, "bob@localhost", "hello from node A");
    expect(await mamBodies(bob)).toEqual(["hello from node A"]);
    const aliceOnB = await connect(b.port, "alice");
    expect(await mamBodies(aliceOnB)).toEqual(["hello from node A"]);
    // preferences set on B are the ones A answers with
    await bob.iqCaller.request(xml("iq", { type: "set" }, xml("prefs", { xmlns: "urn:xmpp:mam:2", default: "roster" })));
    const bobOnA = await connect(a.port, "bob");
    const prefs = await bobOnA.iqCaller.request(xml("iq", { type: "get" }, xml("prefs", { xmlns: "urn:xmpp:mam:2" })));
    expect(prefs.getChild("prefs")?.attrs.default).toBe("roster");
    // a roster item added on A is on B's roster
    await alice.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "bob@localhost", name: "Bob" }))));
    const roster = await aliceOnB.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    expect(roster.getChild("query")?.getChildren("item").map((i) => [i.attrs.jid, i.attrs.name])).toEqual([["bob@localhost", "Bob"]]);
  }, 60_000);

  it("a client tracked on one node and later on the other keeps one delivery record", async () => {
    url = await cluster.createDatabase();
    await createAccounts(url, ["alice", "bob"]);
    const config = nodeConfig(url, { modules_enabled: [...NODE_MODULES, "mam_smart_retention"] });
    const [a, b] = await Promise.all([startNode("a", config), startNode("b", config)]);
    const alice = await connect(a.port, "alice");
    await sendAcked(alice, "bob@localhost", "m1");
    const phone = await connect(a.port, "bob", { userAgent: xml("user-agent", { id: PHONE }) });
    expect(await mamBodies(phone)).toEqual(["m1"]);
    await phone.stop(); // (its last ack goes with the closing stream)
    await sendAcked(alice, "bob@localhost", "m2");
    const again = await connect(b.port, "bob", { userAgent: xml("user-agent", { id: PHONE }) });
    expect(await mamBodies(again)).toEqual(["m1", "m2"]);
    await again.stop();
    const d = new PostgresDriver({ url });
    try {
      const positions = (await d.archive("localhost", "archive").find("bob")).items.map((i) => i.pos);
      const tracked = d.map("localhost", "mam_smart_retention");
      // one record for the client, holding both deliveries (written within a second of the acks)
      await until("both deliveries in one record", async () => {
        const all = (await tracked.getAll("bob")) ?? {};
        const rec = all[PHONE] as { delivered: [number, number][] } | undefined;
        return Object.keys(all).length === 1 && rec !== undefined && positions.every((p) => rec.delivered.some(([x, y]) => x <= p && p <= y));
      });
      expect(Object.keys((await tracked.getAll("bob")) ?? {})).toEqual([PHONE]);
    } finally {
      await d.close();
    }
  }, 60_000);

  it("a session resumed on the other node fails, and the client catches up through MAM", async () => {
    url = await cluster.createDatabase();
    await createAccounts(url, ["alice", "bob"]);
    const config = nodeConfig(url);
    const [a, b] = await Promise.all([startNode("a", config), startNode("b", config)]);
    // bob on A, resumable; his connection breaks
    const raw = new Raw(a.port);
    raw.send(header());
    await raw.until(/<\/stream:features>/, 10_000);
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0bob\0bob-password")}</auth>`);
    await raw.until(/<success/);
    raw.buf = "";
    raw.send(header());
    await raw.until(/<\/stream:features>/);
    raw.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
    await raw.until(/<\/jid>/);
    raw.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    const enabled = await raw.until(/<enabled [^>]*id=['"]([^'"]+)['"]/);
    const previd = /id=['"]([^'"]+)['"]/.exec(enabled)![1]!;
    raw.end();
    // meanwhile a message for him, through B
    const alice = await connect(b.port, "alice");
    await sendAcked(alice, "bob@localhost", "while you were away");
    // he comes back on B: B knows nothing of A's session
    const back = new Raw(b.port);
    back.send(header());
    await back.until(/<\/stream:features>/, 10_000);
    back.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0bob\0bob-password")}</auth>`);
    await back.until(/<success/);
    back.buf = "";
    back.send(header());
    await back.until(/<\/stream:features>/);
    back.send(`<resume xmlns='urn:xmpp:sm:3' previd='${previd}' h='0'/>`);
    expect(await back.until(/<failed [^>]*>[\s\S]*?<\/failed>|<failed [^>]*\/>/)).toMatch(/item-not-found/);
    back.end();
    // a new session, and MAM has what came meanwhile
    const bob = await connect(b.port, "bob");
    expect(await mamBodies(bob)).toEqual(["while you were away"]);
  }, 60_000);
});
