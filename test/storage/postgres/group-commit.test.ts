// Group commit on PostgreSQL: appends from many stanzas share one transaction,
// and what a stanza stored is acknowledged only once its transaction committed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "../../../src/storage/postgres/driver.js";
import { createTestServer, type FakeClient, type TestServer } from "../../../src/testing/index.js";
import { xml } from "../../../src/xmpp/stanza.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

const NS = "urn:xmpp:sm:3";
const message = (to: string, body: string) => xml("message", { to, type: "chat", id: body }, xml("body", {}, body));
const lastAck = (c: FakeClient) => Number(c.nonzas.filter((n) => n.name === "a").at(-1)?.attrs.h ?? 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!pgAvailable)("group commit on PostgreSQL", () => {
  let cluster: PgCluster;
  let t: TestServer | undefined;
  beforeAll(async () => {
    cluster = await startPg();
  }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it("a thousand appends in flight at once share a handful of transactions", async () => {
    const d = new PostgresDriver({ url: await cluster.createDatabase() });
    await d.ready();
    const archive = d.archive("localhost", "archive");
    const before = { ...d.writes.stats };
    const refs = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => archive.append(`u${i % 20}`, { stanza: message("x@y", `m${i}`), when: Date.now(), with: "x@y" })),
    );
    expect(new Set(refs.map((r) => r.pos)).size).toBe(1000);
    expect(d.writes.stats.writes - before.writes).toBe(1000);
    expect(d.writes.stats.batches - before.batches).toBeLessThanOrEqual(5);
    await d.close();
  });

  it("a message is acknowledged once its row is committed, and a failed commit is never acknowledged", async () => {
    const url = await cluster.createDatabase();
    const storage = new PostgresDriver({ url });
    await storage.ready();
    t = createTestServer({ config: { modules_enabled: ["smacks", "mam", "roster"] }, storage });
    const alice = t.connect("alice@localhost/phone", { streamManagement: true });
    t.connect("bob@localhost/pc", { streamManagement: true });
    await t.settle();
    await alice.requestAck();
    const before = lastAck(alice);
    alice.session.receive(message("bob@localhost", "kept"));
    alice.session.receive(xml("r", { xmlns: NS }));
    for (let i = 0; i < 100 && lastAck(alice) === before; i++) await sleep(10);
    expect(lastAck(alice)).toBe(before + 1);
    // committed: another connection (another node) sees it
    const other = new PostgresDriver({ url });
    expect((await other.archive("localhost", "archive").find("alice")).items.map((i) => i.stanza.attrs.id)).toEqual(["kept"]);
    storage.injectCommitFailures(1);
    alice.session.receive(message("bob@localhost", "lost"));
    alice.session.receive(xml("r", { xmlns: NS }));
    await sleep(200);
    expect(lastAck(alice)).toBe(before + 1); // no <a/> for it, ever
    expect(alice.streamError?.getChild("internal-server-error")).toBeDefined();
    expect((await other.archive("localhost", "archive").find("alice")).items.map((i) => i.stanza.attrs.id)).toEqual(["kept"]);
    await other.close();
  });
});
