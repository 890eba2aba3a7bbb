// A node whose listening connection alone drops (a network blip, an idle-session
// killer) stays alive to the others (its other connections carry its id): a
// barrier then waits for it, and fails, rather than passing without it; so the
// leader does not expire a client idle on that node and delete what it never got.
import { xml, type Element } from "@xmpp/xml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "mamkit";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";
import { newClient } from "./helpers.js";
import { createAccounts, NODE_MODULES, nodeConfig, sleep, startNode, stopNodes, until } from "./nodes.js";

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
process.removeAllListeners("warning");

const PHONE = "0f1e2d3c-4b5a-4697-8877-665544332211";
const TABLET = "a1b2c3d4-e5f6-4071-8293-a4b5c6d7e8f9";
const EVERY_SECOND = "* * * * * *";
const NEVER_SOON = "0 0 1 1 *";


describe.skipIf(!pgAvailable)("a node whose listener drops", () => {
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

  it("node B alive, its LISTEN connection down for a few seconds: the leader expires B's idle tablet and deletes what the tablet never got", async () => {
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
    await sleep(1000);
    // node B's LISTEN connection drops once (a network blip, an idle-session killer, a DBA); B itself
    // stays up, its tablet connected, and it reconnects the listener a second later
    const db = url.split("/").pop();
    const idB = /"node":"([0-9a-f-]+)"/.exec(b.output())![1];
    // (kept down for 5 s: longer than the 3 s client expiry; in production, one missed daily barrier
    // is enough when smart_retention_client_expiry <= the cleanup interval, e.g. archive_expires_after "1d")
    for (let i = 0; i < 50; i++) {
      await cluster.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mamkit-node:${idB}' AND query LIKE 'LISTEN%'`, db);
      await sleep(100);
    }
    expect(a.output()).toMatch(/"msg":"expired 0 delivered messages/);
    expect(await bodies()).toEqual(["m1", "m2", "m3"]); // the tablet never got them
    // once the tablet is gone for longer than the expiry, it is forgotten, and they go
    await tablet.stop();
    await until("the cleanup after the tablet expired", async () => (await bodies()).length === 0, 15_000);
    await d.close();
  }, 120_000);
});
