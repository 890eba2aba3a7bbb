// One cleanup leader among nodes on one PostgreSQL database: the smart
// retention cleanup runs on one node at a time; a leader killed mid-run
// (SIGKILL) leaves a consistent archive and the other node finishes at its
// next schedule; and no node deletes on the strength of tracking another
// node has not written (its connected clients count as seen), even while
// that node's listening connection is down.
import { xml, type Element } from "@xmpp/xml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "mamkit";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";
import { newClient } from "./helpers.js";
import { createAccounts, NODE_MODULES, type Node, nodeConfig, sleep, startNode, stopNodes, until } from "./nodes.js";

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
process.removeAllListeners("warning");

const PHONE = "0f1e2d3c-4b5a-4697-8877-665544332211";
const TABLET = "a1b2c3d4-e5f6-4071-8293-a4b5c6d7e8f9";
const EVERY_SECOND = "* * * * * *";
const NEVER_SOON = "0 0 1 1 *";

/** The node id each node logged at start ("server started"). */
function nodeIdOf(n: Node): string | undefined {
  return /"node":"([0-9a-f-]+)"/.exec(n.output())?.[1];
}

describe.skipIf(!pgAvailable)("one cleanup leader", () => {
  let cluster: PgCluster;
  const clients: ReturnType<typeof newClient>[] = [];
  beforeAll(async () => {
    cluster = await startPg();
  }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop().catch(() => undefined);
    await stopNodes();
  });

  it("a leader killed mid-cleanup leaves a consistent archive, and the other node finishes at its next schedule", async () => {
    const url = await cluster.createDatabase();
    await createAccounts(url, ["alice"]);
    // 30,000 messages, every one acknowledged by alice's phone (seen just now)
    const N = 30_000;
    const d = new PostgresDriver({ url });
    const archive = d.archive("localhost", "archive");
    let last = 0;
    for (let i = 0; i < N; i += 1000) {
      const refs = await Promise.all(
        Array.from({ length: 1000 }, (_, k) =>
          archive.append("alice", { stanza: xml("message", { type: "chat", id: `m${i + k}` }, xml("body", {}, `m${i + k}`)), when: Date.now(), with: "bob@localhost" }),
        ),
      );
      last = Math.max(last, ...refs.map((r) => r.pos));
    }
    await d.map("localhost", "mam_smart_retention").set("alice", PHONE, { delivered: [[1, last]], firstSeen: 0, lastSeen: Date.now() });
    const count = async () => (await archive.find("alice", { limit: 0, total: true })).total!;
    const config = nodeConfig(url, {
      log: { level: "debug", format: "json" },
      modules_enabled: [...NODE_MODULES, "mam_smart_retention"],
      smart_retention_schedule: EVERY_SECOND,
      smart_retention_batch_size: 50,
    });
    const nodes = await Promise.all([startNode("a", config), startNode("b", config)]);
    // wait for a cleanup to be under way, then find who runs it, and kill it
    let leader: Node | undefined;
    await until(
      "a cleanup under way",
      async () => {
        const n = await count();
        if (n === N || n === 0) return false;
        // the node whose connection holds the cleanup's advisory lock
        const r = await cluster.psql(
          `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = ${0x6d616d6d} AND l.granted`,
          url.split("/").pop(),
        );
        const id = r.trim().slice("mamkit-node:".length);
        leader = nodes.find((x) => nodeIdOf(x) === id);
        return leader !== undefined;
      },
      20_000,
    );
    await leader!.kill();
    const other = nodes.find((x) => x !== leader)!;
    const left = await count();
    expect(left).toBeGreaterThan(0); // killed mid-run
    // the other node skipped while the leader ran, and takes over
    expect(other.output()).toContain("another node is cleaning up this host: skipped");
    await until("the other node to finish the cleanup", async () => (await count()) === 0, 30_000);
    await until("the other node's report", () => /"msg":"expired [1-9]\d* delivered messages for 1 users/.test(other.output()));
    // the tracking is whole: the phone is still known, its delivery still recorded
    const rec = (await d.map("localhost", "mam_smart_retention").get("alice", PHONE)) as { delivered: [number, number][] };
    expect(rec.delivered.some(([x, y]) => x <= 1 && y >= last)).toBe(true);
    await d.close();
  }, 120_000);

  // (`listenerDrops`: B's listening connection alone keeps being cut for 5 s meanwhile — a network blip,
  // an idle-session killer: B stays alive through its other connections, and the barrier waits for it)
  it.each([
    ["", false],
    [", even while its listening connection is down", true],
  ])("all: a client connected to another node, idle for longer than the client expiry, is not expired by the leader%s", async (_, listenerDrops) => {
    const url = await cluster.createDatabase();
    await createAccounts(url, ["alice", "bob"]);
    const base = {
      modules_enabled: [...NODE_MODULES, "mam_smart_retention"],
      smart_retention_strategy: "all",
      smart_retention_client_expiry: "3s",
    };
    const a = await startNode("a", nodeConfig(url, { ...base, smart_retention_schedule: EVERY_SECOND }));
    const b = await startNode("b", nodeConfig(url, { ...base, smart_retention_schedule: NEVER_SOON }));
    const connect = async (port: number, user: string, extra: Record<string, unknown> = {}) => {
      const c = newClient(`xmpp://127.0.0.1:${port}`, user, "localhost", extra);
      clients.push(c);
      await c.start();
      return c;
    };
    // the tablet: on node B, connected, receiving nothing (no presence)
    const tablet = await connect(b.port, "alice", { userAgent: xml("user-agent", { id: TABLET }) });
    // the phone: on node A, online, acknowledging what it gets
    const phone = await connect(a.port, "alice", { userAgent: xml("user-agent", { id: PHONE }) });
    const got: string[] = [];
    phone.on("stanza", (s: Element) => {
      if (s.is("message") && s.getChildText("body")) got.push(s.getChildText("body")!);
    });
    await phone.send(xml("presence"));
    const bob = await connect(a.port, "bob");
    for (const body of ["m1", "m2", "m3"]) await bob.send(xml("message", { to: "alice@localhost", type: "chat" }, xml("body", {}, body)));
    await until("the phone to get them", () => got.length === 3);
    const d = new PostgresDriver({ url });
    const bodies = async () => (await d.archive("localhost", "archive").find("alice")).items.map((i) => i.stanza.getChildText("body"));
    // longer than the client expiry, with a cleanup every second on A
    if (listenerDrops) {
      await sleep(1000);
      const id = /"node":"([0-9a-f-]+)"/.exec(b.output())![1];
      for (let i = 0; i < 50; i++) {
        await cluster.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mamkit-node:${id}' AND query LIKE 'LISTEN%'`, url.split("/").pop());
        await sleep(100);
      }
    } else {
      await sleep(5000);
      expect(a.output()).toMatch(/"msg":"expired 0 delivered messages/);
    }
    expect(await bodies()).toEqual(["m1", "m2", "m3"]); // the tablet never got them
    // once the tablet is gone for longer than the expiry, it is forgotten, and they go
    await tablet.stop();
    await until("the cleanup after the tablet expired", async () => (await bodies()).length === 0, 15_000);
    await d.close();
  }, 120_000);
});
