// Several writers on one SQLite file: processes opening a new file at once
// (say, a script running `mamkit adduser` in parallel) must all get the schema,
// none an error; and append's prev must hold across connections.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { xml } from "../../src/xmpp/stanza.js";

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
      expect((await d.keyval("localhost", "accounts").users()).sort()).toEqual(users);
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

it("gives append's prev across writers: another connection's item of the user is never skipped", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-sqlite-prev-"));
  try {
    const db = join(dir, "db.sqlite");
    const a = new SqliteDriver(db);
    const b = new SqliteDriver(db); // a second server (or Prosody) on the same file
    const msg = (i: number) => xml("message", { type: "chat" }, xml("body", {}, `m${i}`));
    // each connection's writes are committed (durable) before the other one writes: its batch holds the write lock
    const r1 = await a.archive("localhost", "archive").append("bob", { stanza: msg(1), when: 0, with: "x@y" });
    await a.archive("localhost", "archive").append("carol", { stanza: msg(2), when: 0, with: "x@y" });
    await a.durable();
    const r2 = await b.archive("localhost", "archive").append("bob", { stanza: msg(3), when: 0, with: "x@y" });
    await b.durable();
    const r3 = await a.archive("localhost", "archive").append("bob", { stanza: msg(4), when: 0, with: "x@y" });
    await a.durable();
    expect(r2.prev).toBe(r1.pos);
    expect(r3.prev).toBe(r2.pos); // not r1.pos, which is what a's own appends alone would say
    await a.close();
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("keeps a replacement by id atomic inside a caller's transaction", async () => {
  const d = new SqliteDriver(":memory:");
  const a = d.archive("h", "archive");
  await a.append("u", { id: "x", stanza: xml("message", {}, xml("body", {}, "keep me")), when: 1000, with: "p@h" });
  await d.transaction(async () => {
    try {
      // the insert fails (no partner): the delete of the old item must not stay
      await a.append("u", { id: "x", stanza: xml("message", {}, xml("body", {}, "new")), when: 2000, with: null as never });
    } catch {
      // an importer that logs a bad item and goes on
    }
  });
  expect((await a.get("u", "x"))?.stanza.getChildText("body")).toBe("keep me");
  await d.close();
});
