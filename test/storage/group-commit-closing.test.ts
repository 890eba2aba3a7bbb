// Regression test from the second independent review: close() while a transaction runs lets its nested transactions finish.
import { expect, test } from "vitest";
import { GroupCommit, type CommitBackend } from "../../src/storage/group-commit.js";

function backend(): CommitBackend & { log: string[] } {
  let open = false;
  const log: string[] = [];
  return {
    log,
    begin: () => { open = true; log.push("begin"); },
    commit: () => { open = false; log.push("commit"); },
    rollback: () => { open = false; log.push("rollback"); },
    inBatch: () => open,
    savepoint: (n) => log.push(`sp ${n}`),
    release: (n) => log.push(`rel ${n}`),
    rollbackTo: (n) => log.push(`rb ${n}`),
  };
}

test("close() during a transaction must not fail a nested transaction of it", async () => {
  const b = backend();
  const gc = new GroupCommit(b);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const t = gc.transaction(async () => {
    await gate;
    await gc.write(() => 1);
    return gc.transaction(async () => gc.write(() => 2)); // nested: joins the outer one
  });
  const closed = gc.closeAndSettle();
  release();
  await expect(t).resolves.toBe(2);
  await closed;
});
