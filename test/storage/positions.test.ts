// Positions under concurrent writers (docs/storage.md, "Positions"): two
// processes append to the same users' archives at once, many appends in
// flight in each. Every reference must be exact: a position is never given
// twice, and an append's `prev` is the user's item just before it in the
// final archive — no item of the user ever appears between the two, whoever
// wrote it. Smart retention records a delivery as [prev + 1, pos] on the
// strength of this.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "../../src/storage/postgres/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { StorageDriver } from "../../src/storage/types.js";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";

const WORKER = fileURLToPath(new URL("./fixtures/append-worker.ts", import.meta.url));
const PER_PROCESS = 600;

interface Ref {
  user: string;
  pos: number;
  prev?: number;
}

function worker(target: string, name: string, startAt: number, pauseMs: number): Promise<Ref[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", WORKER, target, name, String(PER_PROCESS), String(startAt), String(pauseMs)], { timeout: 60_000 }, (err, out, stderr) => {
      if (err) reject(new Error(`${name}: ${stderr || err.message}`));
      else resolve(JSON.parse(out) as Ref[]);
    });
  });
}

/** `alternations`: how often, at least, the writer of consecutive positions must change. */
async function expectExact(target: string, open: () => StorageDriver, pauseMs: number, alternations: number): Promise<void> {
  const startAt = Date.now() + 3000;
  const [a, b] = await Promise.all([worker(target, "one", startAt, pauseMs), worker(target, "other", startAt, pauseMs)]);
  const refs = [...a, ...b];
  expect(refs).toHaveLength(2 * PER_PROCESS);
  expect(new Set(refs.map((r) => r.pos)).size).toBe(refs.length); // no position twice
  const d = open();
  try {
    for (const user of ["alice", "bob", "carol"]) {
      const mine = refs.filter((r) => r.user === user).sort((x, y) => x.pos - y.pos);
      // each append's prev is the one before it, from either process
      expect(mine.map((r) => r.prev)).toEqual([undefined, ...mine.slice(0, -1).map((r) => r.pos)]);
      const stored = (await d.archive("localhost", "archive").find(user)).items.map((i) => i.pos);
      expect(stored).toEqual(mine.map((r) => r.pos));
    }
    // the two processes did interleave (otherwise this proves little)
    const owner = new Map(a.map((r) => [r.pos, "one"]));
    const sorted = refs.map((r) => r.pos).sort((x, y) => x - y);
    const switches = sorted.filter((p, i) => i > 0 && owner.has(p) !== owner.has(sorted[i - 1]!)).length;
    expect(switches).toBeGreaterThanOrEqual(alternations);
  } finally {
    await d.close();
  }
}

describe("positions under two writer processes", () => {
  it("SQLite: exact prev and unique positions", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mamkit-positions-"));
    try {
      const file = join(dir, "db.sqlite");
      new SqliteDriver(file).closeNow(); // the schema first: the race to create it is another test's
      // (SQLite takes turns by its write lock: coarsely, about once a second)
      await expectExact(`sqlite:${file}`, () => new SqliteDriver(file), 60, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  describe.skipIf(!pgAvailable)("PostgreSQL", () => {
    let cluster: PgCluster;
    beforeAll(async () => {
      cluster = await startPg();
    }, 60_000);
    afterAll(() => cluster?.stop());

    it("PostgreSQL: exact prev and unique positions", async () => {
      const url = await cluster.createDatabase();
      const d = new PostgresDriver({ url });
      await d.ready(); // the schema first
      await d.close();
      await expectExact(`postgres:${url}`, () => new PostgresDriver({ url }), 0, 20);
    }, 120_000);
  });
});
