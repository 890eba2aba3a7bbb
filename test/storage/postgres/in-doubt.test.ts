// A COMMIT that got no answer is settled by looking for the batch's first appended row, by its
// key (a fresh UUID), not only its position: after a crash, PostgreSQL hands out
// again sequence values whose WAL was not flushed; another node's row then sits at that
// position, and a check by position alone would take the lost batch for committed.
//
// Set-up: the mamkit node under test reaches PostgreSQL through a small TCP proxy that holds
// back the writer's COMMIT (as if the server died before it arrived / before it flushed), the
// server is then crashed (immediate stop) and restarted, another node appends once, and only
// then may the node under test reconnect.
import { createServer, connect, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "../../../src/storage/postgres/driver.js";
import { createTestServer, type FakeClient, type TestServer } from "../../../src/testing/index.js";
import { xml } from "../../../src/xmpp/stanza.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

const NS = "urn:xmpp:sm:3";
const message = (to: string, body: string) => xml("message", { to, type: "chat", id: body }, xml("body", {}, body));
const lastAck = (c: FakeClient) => Number(c.nonzas.filter((n) => n.name === "a").at(-1)?.attrs.h ?? 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A proxy to 127.0.0.1:port that can hold back the writer's COMMIT and new connections. */
async function proxy(port: number) {
  let onCommit: (() => void) | undefined;
  let paused: Promise<void> | undefined;
  let resume = () => {};
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer(async (client) => {
    client.pause();
    if (paused !== undefined) await paused;
    const upstream = connect(port, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    let buf = Buffer.alloc(0);
    let started = false;
    let writer = false;
    let held = false;
    const kill = () => { client.destroy(); upstream.destroy(); pairs.delete(pair); };
    upstream.on("data", (d) => client.write(d));
    upstream.on("close", kill); client.on("close", kill);
    upstream.on("error", () => {}); client.on("error", () => {});
    client.on("data", (d) => {
      if (held) return; // everything after the held COMMIT is dropped
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          if (buf.length < 4) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const msg = buf.subarray(0, len);
          writer = (msg.includes(Buffer.from("mamkit writer")) || msg.includes(Buffer.from(":writer")));
          started = true;
          upstream.write(msg);
          buf = buf.subarray(len);
          continue;
        }
        if (buf.length < 5) return;
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) return;
        const msg = buf.subarray(0, len + 1);
        buf = buf.subarray(len + 1);
        if (writer && onCommit && msg[0] === 0x51 && msg.subarray(5).toString().startsWith("COMMIT")) {
          held = true;
          const f = onCommit; onCommit = undefined;
          f();
          return;
        }
        upstream.write(msg);
      }
    });
    client.resume();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as { port: number }).port,
    armCommit: () => new Promise<void>((r) => { onCommit = r; }),
    pause() { paused = new Promise((r) => { resume = r; }); },
    resume() { const p = paused; paused = undefined; resume(); return p; },
    close() { for (const [a, b] of pairs) { a.destroy(); b.destroy(); } server.close(); },
  };
}

describe.skipIf(!pgAvailable)("a COMMIT without an answer", () => {
  let cluster: PgCluster;
  let t: TestServer | undefined;
  beforeAll(async () => { cluster = await startPg(); }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(async () => { await t?.stop().catch(() => undefined); t = undefined; });

  it("a batch lost in a crash is never taken for committed", async () => {
    const url = await cluster.createDatabase();
    const px = await proxy(cluster.port);
    const viaProxy = url.replace(`:${cluster.port}/`, `:${px.port}/`);
    const storage = new PostgresDriver({ url: viaProxy });
    await storage.ready();
    t = createTestServer({ config: { modules_enabled: ["smacks", "mam", "roster"] }, storage });
    const alice = t.connect("alice@localhost/phone", { streamManagement: true });
    t.connect("bob@localhost/pc", { streamManagement: true });
    await t.settle();
    alice.session.receive(message("bob@localhost", "kept"));
    await alice.requestAck();
    const before = lastAck(alice);
    const db = url.split("/").pop()!;
    await cluster.psql("CHECKPOINT", db);
    const held = px.armCommit();
    alice.session.receive(message("bob@localhost", "lost"));
    alice.session.receive(xml("r", { xmlns: NS }));
    await held; // the writer's COMMIT never reaches the server
    px.pause(); // the node under test cannot reconnect yet
    await cluster.restart("immediate"); // the server crashes and recovers
    // another node appends once, right after the recovery
    const other = new PostgresDriver({ url });
    const ref = await other.archive("localhost", "archive").append("carol", { stanza: message("dave@localhost", "carol's"), when: Date.now(), with: "dave@localhost" });
    px.resume();
    for (let i = 0; i < 300 && lastAck(alice) === before; i++) await sleep(20);
    const bodies = async (u: string) => (await other.archive("localhost", "archive").find(u)).items.map((i) => i.stanza.getChildText("body"));
    const report = { carolsPos: ref.pos, ackBefore: before, ackAfter: lastAck(alice), streamError: alice.streamError?.toString(), alice: await bodies("alice"), bob: await bodies("bob") };
    await other.close();
    px.close();
    // acknowledged <=> stored
    if (lastAck(alice) > before) expect(report.alice).toContain("lost");
  }, 60_000);

  it("...and with smart retention, the other node's message to the same user is deleted undelivered", async () => {
    const PHONE = "0f1e2d3c-4b5a-4697-8877-665544332211";
    const url = await cluster.createDatabase();
    const px = await proxy(cluster.port);
    const storage = new PostgresDriver({ url: url.replace(`:${cluster.port}/`, `:${px.port}/`) });
    await storage.ready();
    t = createTestServer({ config: { modules_enabled: ["smacks", "mam", "roster", "mam_smart_retention"], smart_retention_strategy: "one" }, storage });
    const alice = t.connect("alice@localhost/phone", { streamManagement: true, clientId: PHONE });
    t.connect("bob@localhost/pc", { streamManagement: true });
    await t.settle();
    alice.session.receive(message("bob@localhost", "kept"));
    await alice.requestAck();
    await cluster.psql("CHECKPOINT", url.split("/").pop()!);
    const held = px.armCommit();
    alice.session.receive(message("bob@localhost", "lost"));
    alice.session.receive(xml("r", { xmlns: NS }));
    await held;
    px.pause();
    await cluster.restart("immediate");
    // another node archives a message to alice (her phone is on this node: it never gets it live)
    const other = new PostgresDriver({ url });
    await other.archive("localhost", "archive").append("alice", { stanza: message("alice@localhost", "from dave, never delivered"), when: Date.now(), with: "dave@localhost" });
    px.resume();
    await sleep(3000);
    const bodies = async (u: string) => (await other.archive("localhost", "archive").find(u)).items.map((i) => `${i.pos}:${i.stanza.getChildText("body")}`);
    expect(await bodies("alice")).toContainEqual(expect.stringMatching(/from dave, never delivered$/));
    await t.host().events.fire("smart-retention-run", {});
    const after = await bodies("alice");
    await other.close();
    px.close();
    expect(after.some((b) => b.endsWith("from dave, never delivered"))).toBe(true);
  }, 60_000);
});
