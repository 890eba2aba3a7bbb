// Several processes opening one new SQLite file at once (say, a script running
// `mamkit adduser` in parallel) must all get the schema, none an error.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";

const CHILD = fileURLToPath(new URL("./fixtures/open-and-write.ts", import.meta.url));

function run(db: string, user: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", CHILD, db, user], { timeout: 30_000 }, (err, _out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
    });
  });
}

it("creates the schema once when processes open a new file at the same moment", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-sqlite-race-"));
  try {
    for (let round = 0; round < 3; round++) {
      const db = join(dir, `round${round}`, "db.sqlite");
      const users = ["a", "b", "c", "d", "e", "f"];
      const results = await Promise.all(users.map((u) => run(db, u)));
      expect(results.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
      const d = new SqliteDriver(db);
      expect(d.keyval("localhost", "accounts").users().sort()).toEqual(users);
      d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
