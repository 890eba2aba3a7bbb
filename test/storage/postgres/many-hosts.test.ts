// Every host schedules its cleanup at the same moment: the cleanup locks are
// held on each node's listening connection, not on connections of the pool,
// so ten hosts on the default pool of ten all clean up, and nothing waits.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "../../../src/storage/postgres/driver.js";
import { createTestServer } from "../../../src/testing/index.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

describe.skipIf(!pgAvailable)("many hosts, one pool", () => {
  let cluster: PgCluster;
  beforeAll(async () => { cluster = await startPg(); }, 60_000);
  afterAll(() => cluster?.stop());

  it("ten hosts' daily cleanups on the default pool of ten", async () => {
    const storage = new PostgresDriver({ url: await cluster.createDatabase() }); // pool: 10 (the default)
    await storage.ready();
    const hosts = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`h${i}.example`, {}]));
    const t = createTestServer({ config: { hosts, modules_enabled: ["smacks", "mam", "mam_smart_retention"] }, storage, tasks: "on-demand" });
    await t.runScheduled("smart retention cleanup");
    const errors = t.logs.filter((l) => l.level >= 40).map((l) => `${l.msg} ${JSON.stringify((l as { err?: { message?: string } }).err?.message ?? "")}`);
    const done = t.logs.filter((l) => /expired \d+ delivered/.test(l.msg ?? "")).length;
    expect(errors).toEqual([]);
    await t.stop();
    expect(done).toBe(10);
  }, 60_000);
});
