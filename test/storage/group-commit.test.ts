// Group commit, on both drivers: writes are visible at once, durable after
// `durable()`, committed many to one, and lost together when a commit fails —
// without a position ever being given out twice.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { CommitOptions, StorageDriver } from "../../src/storage/types.js";
import { xml } from "../../src/xmpp/stanza.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Injectable = StorageDriver & { injectCommitFailures(n: number): void };

function sqlitePath(): string {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-gc-"));
  dirs.push(dir);
  return join(dir, "db.sqlite");
}

const drivers: [string, (commit?: Partial<CommitOptions>) => Injectable][] = [
  ["memory", (commit) => new MemoryDriver({ ...(commit && { commit }) })],
  ["sqlite", (commit) => new SqliteDriver(sqlitePath(), { ...(commit && { commit }) })],
  // as the server opens it: checkpoints on a worker thread, the WAL synced off the event loop
  ["sqlite (server)", (commit) => new SqliteDriver(sqlitePath(), { checkpoints: "worker", ...(commit && { commit }) })],
];

const msg = (n: number) => xml("message", { type: "chat", to: "a@h", from: "b@h/r", id: `m${n}` }, xml("body", {}, `m${n}`));
const append = (d: StorageDriver, user: string, n: number) => d.archive("h", "archive").append(user, { stanza: msg(n), when: 1_700_000_000_000, with: "b@h" });

describe.each(drivers)("group commit: %s", (_name, open) => {
  it("a write is visible at once and durable once durable() resolves", async () => {
    const d = open();
    const kv = d.keyval("h", "s");
    await kv.set("u", { a: 1 });
    expect(await kv.get("u")).toEqual({ a: 1 });
    await d.durable();
    expect(await kv.get("u")).toEqual({ a: 1 });
    await d.close();
  });

  it("a failed commit loses every write of its batch, and durable(mark) says so", async () => {
    const d = open();
    const kv = d.keyval("h", "s");
    await kv.set("kept", { v: 1 });
    await d.durable();
    const mark = d.mark();
    await kv.set("lost", { v: 2 });
    await append(d, "u", 1);
    d.injectCommitFailures(1);
    await expect(d.durable(mark)).rejects.toThrow(/commit/);
    expect(await kv.get("lost")).toBeUndefined();
    expect((await d.archive("h", "archive").find("u")).items).toHaveLength(0);
    expect(await kv.get("kept")).toEqual({ v: 1 });
    // a mark taken after the failure is clean
    const after = d.mark();
    await kv.set("later", { v: 3 });
    await d.durable(after);
    expect(await kv.get("later")).toEqual({ v: 3 });
    await d.close();
  });

  it("never gives a position out twice, even after a commit failed", async () => {
    const d = open();
    const a = await append(d, "u", 1);
    await d.durable();
    const lost = await append(d, "u", 2);
    d.injectCommitFailures(1);
    await expect(d.durable()).rejects.toThrow(/commit/);
    const next = await append(d, "u", 3);
    await d.durable();
    expect(lost.pos).toBeGreaterThan(a.pos);
    expect(next.pos).toBeGreaterThan(lost.pos);
    const items = (await d.archive("h", "archive").find("u")).items.map((i) => i.pos);
    expect(items).toEqual([a.pos, next.pos]);
    await d.close();
  });

  it("many writes share one commit: one batch per event-loop turn", async () => {
    const d = open();
    const marks: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      void append(d, `u${i % 5}`, i);
      marks.push(d.durable());
    }
    // every barrier is the same batch's
    expect(new Set(marks).size).toBe(1);
    await Promise.all(marks);
    await d.close();
  });

  it("a batch commits as soon as it holds commit_max_writes writes", async () => {
    // (a delay of a second: only the size can commit the batch sooner)
    const d = open({ commitMaxWrites: 3, commitDelayMs: 1000 });
    const t0 = Date.now();
    await append(d, "u", 1);
    const b1 = d.durable();
    await append(d, "u", 2);
    await append(d, "u", 3); // the third write commits the batch at once
    await b1;
    expect(Date.now() - t0).toBeLessThan(500);
    await d.close();
  });

  it("with commit_delay_ms, a batch waits up to that long", async () => {
    const d = open({ commitDelayMs: 40 });
    const t0 = Date.now();
    await append(d, "u", 1);
    await d.durable();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(35);
    await d.close();
  });

  it("a transaction that throws undoes only its own writes; other writers wait for it", async () => {
    const d = open();
    const kv = d.keyval("h", "s");
    await kv.set("before", { v: 1 });
    let outsideDone = false;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const tx = d.transaction(async () => {
      await kv.set("inside", { v: 2 });
      await sleep(30);
      throw new Error("changed my mind");
    });
    await sleep(5);
    // a writer outside the transaction waits until it is over
    const outside = kv.set("outside", { v: 3 }).then(() => {
      outsideDone = true;
    });
    await sleep(5);
    expect(outsideDone).toBe(false);
    await expect(tx).rejects.toThrow("changed my mind");
    await outside;
    await d.durable();
    expect(await kv.get("inside")).toBeUndefined();
    expect(await kv.get("before")).toEqual({ v: 1 });
    expect(outsideDone).toBe(true);
    expect(await kv.get("outside")).toEqual({ v: 3 });
    await d.close();
  });

  it("a transaction resolves once its writes are durable; a failed commit rejects it", async () => {
    const d = open();
    const kv = d.keyval("h", "s");
    await expect(d.transaction(() => kv.set("a", { v: 1 }))).resolves.toBeUndefined();
    d.injectCommitFailures(1);
    await expect(d.transaction(() => kv.set("b", { v: 2 }))).rejects.toThrow(/commit/);
    expect(await kv.get("b")).toBeUndefined();
    expect(await kv.get("a")).toEqual({ v: 1 });
    await d.close();
  });

  it("close() commits what is pending; later writes are refused", async () => {
    const d = open();
    void d.keyval("h", "s").set("u", { v: 1 });
    await d.close();
    await expect(d.keyval("h", "s").set("u", { v: 2 })).rejects.toThrow(/closed/);
  });
});

describe.each([
  ["inline", {}],
  ["server", { checkpoints: "worker" as const }],
])("group commit on SQLite (%s): on disk", (_name, extra) => {
  it("what durable() covered is in the file for another connection", async () => {
    const path = sqlitePath();
    const d = new SqliteDriver(path, extra);
    await append(d, "u", 1);
    const other = new Database(path, { readonly: true });
    const count = () => (other.prepare('SELECT COUNT(*) AS n FROM "prosodyarchive"').get() as { n: number }).n;
    expect(count()).toBe(0); // not committed yet: another connection does not see it
    await d.durable();
    expect(count()).toBe(1);
    other.close();
    await d.close();
  });

  it("after a failed commit, the next commit moves the AUTOINCREMENT sequence past the lost positions", async () => {
    const path = sqlitePath();
    const d = new SqliteDriver(path, extra);
    await append(d, "u", 1);
    await d.durable();
    const lost = await append(d, "u", 2);
    d.injectCommitFailures(1);
    await expect(d.durable()).rejects.toThrow(/commit/);
    // whatever commits next (a delivery record naming the lost position, say) moves it
    await d.map("h", "mam_smart_retention").set("u", "client", { delivered: [[lost.pos, lost.pos]] });
    await d.durable();
    await d.close();
    // a new process (Prosody, or mamkit restarted) continues above the lost position
    const d2 = new SqliteDriver(path, extra);
    const next = await append(d2, "u", 3);
    await d2.durable();
    expect(next.pos).toBeGreaterThan(lost.pos);
    await d2.close();
  });
});
