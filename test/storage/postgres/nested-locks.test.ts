// A nested transaction that fails is rolled back to its savepoint, which also
// lets go of the advisory locks taken inside it: the outer transaction takes a
// user's lock again before it writes for that user (prev stays exact).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { PostgresDriver } from "../../../src/storage/postgres/driver.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

describe.skipIf(!pgAvailable)("nested transactions and user locks", () => {
  let cluster: PgCluster;
  beforeAll(async () => { cluster = await startPg(); }, 60_000);
  afterAll(() => cluster?.stop());

  it("the user's lock is still held after a nested transaction failed", async () => {
    const url = await cluster.createDatabase();
    const d = new PostgresDriver({ url });
    await d.ready();
    const map = d.map("localhost", "m");
    const spy = new pg.Client({ connectionString: url });
    await spy.connect();
    const held = async () => Number((await spy.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted")).rows[0].n);
    let afterWrite = -1;
    await d.transaction(async () => {
      await d.transaction(async () => {
        await map.get("alice", "k"); // takes alice's lock, inside the nested savepoint
        expect(await held()).toBe(1);
        throw new Error("nested fails");
      }).catch(() => undefined);
      expect(await held()).toBe(0); // the rollback to the savepoint let go of it
      await map.set("alice", "k", 1); // believes it holds alice's lock
      afterWrite = await held();
    });
    await spy.end();
    await d.close();
    expect(afterWrite).toBe(1);
  });
});
