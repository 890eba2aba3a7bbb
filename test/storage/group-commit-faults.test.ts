// Regression tests from the independent review of the asynchronous storage change.
import { describe, expect, it } from "vitest";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { xml } from "../../src/xmpp/stanza.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("group commit: faults and concurrency (found in review)", () => {
  it("durable(mark) rejects although the failed batch was already dropped (commit_max_writes reached)", async () => {
    const d = new MemoryDriver({ commit: { commitMaxWrites: 1 } });
    const kv = d.keyval("h", "roster");
    d.injectCommitFailures(1);
    const mark = d.mark(); // what saveRoster / setPassword / deleteUser / MAM prefs do
    await kv.set("alice", { a: 1 }); // resolves: applied; its commit (max writes reached) failed at once
    const ok = await d.durable(mark).then(() => "resolved", () => "rejected");
    expect(await kv.get("alice")).toBeUndefined(); // the write is gone
    expect(ok).toBe("rejected");
  });

  it("close() while a transaction runs waits for it: all of it or none", async () => {
    const d = new MemoryDriver();
    const kv = d.keyval("h", "s");
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const tx = d.transaction(async () => {
      await kv.set("a", { v: 1 });
      await gate;
      await kv.set("b", { v: 1 });
    });
    tx.catch(() => {});
    await tick();
    const closing = d.close(); // waits for the transaction: never half of it
    release();
    await tx.catch(() => {});
    await closing;
    // all or nothing: either both or neither
    const a = await kv.get("a");
    const b = await kv.get("b");
    expect(a === undefined).toBe(b === undefined);
  });

  it("two nested transactions in flight share the savepoint name: one's rollback undoes the other's committed writes", async () => {
    const d = new MemoryDriver();
    const kv = d.keyval("h", "s");
    await d.transaction(async () => {
      const a = d.transaction(async () => {
        await kv.set("a", { v: 1 });
      });
      const b = d.transaction(async () => {
        await kv.set("b", { v: 1 });
        await Promise.resolve();
        await Promise.resolve();
        await Promise.resolve();
        throw new Error("b fails");
      });
      const r = await Promise.allSettled([a, b]);
      expect(r[0]!.status).toBe("fulfilled");
    });
    expect(await kv.get("b")).toBeUndefined();
    expect(await kv.get("a")).toEqual({ v: 1 });
  });

  it("sqlite: an error in begin() after BEGIN IMMEDIATE (moving the sequence) leaves the transaction open: every later write fails", async () => {
    const d = new SqliteDriver(":memory:");
    const archive = d.archive("h", "archive");
    const msg = () => ({ stanza: xml("message", {}, xml("body", {}, "x")), when: Date.now(), with: "bob@h" });
    await archive.append("alice", msg());
    d.injectCommitFailures(1);
    await archive.append("alice", msg());
    const real = d.stmt.bind(d);
    // (the repair right after the rollback and the next batch's both fail)
    let fails = 2;
    (d as unknown as { stmt: typeof d.stmt }).stmt = (sql: string) => {
      if (fails > 0 && sql.startsWith('UPDATE "sqlite_sequence"')) {
        fails--;
        throw new Error("disk I/O error");
      }
      return real(sql);
    };
    await d.durable().catch(() => {}); // the commit fails; the repair right after it too
    await expect(archive.append("alice", msg())).rejects.toThrow();
    // the disk is fine again: a later write should work
    const r = await archive.append("alice", msg()).then(() => "ok", (e: Error) => e.message);
    expect(r).toBe("ok");
    await d.close().catch(() => {});
  });
});
