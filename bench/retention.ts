// Smart retention benchmarks: cleanup of 1,000,000 delivered messages across
// 10,000 users on SQLite next to a bare better-sqlite3 range delete of the
// same rows, the largest event-loop delay while the cleanup runs, and message
// ingest with the module loaded vs without.
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createLogger } from "../src/core/logger.js";
import { createServer } from "../src/core/server.js";
import type { CleanupReport } from "../src/retention/index.js";
import { MemoryDriver } from "../src/storage/memory/driver.js";
import { SqliteDriver } from "../src/storage/sqlite/driver.js";
import { xml } from "../src/xmpp/stanza.js";

const silent = createLogger({ level: "silent" });

export async function retentionCleanupBench(dir: string, users = 10_000, perUser = 100): Promise<void> {
  const a = join(dir, "retention-a.sqlite");
  const b = join(dir, "retention-b.sqlite");
  const fill = new SqliteDriver(a, { synchronous: "normal" });
  const archive = fill.archive("localhost", "archive");
  const body = xml("body", {}, "Hello, how are you? This is a typical short chat message.");
  const t0 = Date.now();
  const range = new Map<string, [number, number]>();
  for (let r0 = 0; r0 < perUser; r0 += 10) {
    fill.transaction(() => {
      for (let round = r0; round < Math.min(perUser, r0 + 10); round++) {
        for (let u = 0; u < users; u++) {
          const user = `user${u}`;
          const { pos } = archive.append(user, {
            stanza: xml("message", { to: `${user}@localhost`, from: "peer@localhost/r", type: "chat" }, body),
            when: t0 - 86_400_000,
            with: "peer@localhost",
          });
          const r = range.get(user);
          range.set(user, r ? [r[0], pos] : [pos, pos]);
        }
      }
    });
  }
  // every message was acknowledged by the user's phone
  const tracking = fill.map("localhost", "mam_smart_retention");
  fill.transaction(() => {
    for (const [user, [lo, hi]] of range) {
      tracking.set(user, "11111111-1111-4111-8111-111111111111", { delivered: [[lo, hi]], firstSeen: 0, lastSeen: Date.now() });
    }
  });
  fill.db.pragma("wal_checkpoint(TRUNCATE)");
  fill.close();
  copyFileSync(a, b);
  console.log(`retention  prepared ${(users * perUser).toLocaleString("en-US")} delivered messages for ${users.toLocaleString("en-US")} users in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // bare better-sqlite3: one range delete per user, each its own transaction
  const bare = new SqliteDriver(b, { synchronous: "normal" });
  const del = bare.db.prepare('DELETE FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "sort_id" BETWEEN ? AND ?');
  let bareRows = 0;
  const tb = process.hrtime.bigint();
  for (const [user, [lo, hi]] of range) bareRows += del.run("localhost", user, "archive", lo, hi).changes;
  const bareMs = Number(process.hrtime.bigint() - tb) / 1e6;
  bare.close();

  // the module's scheduled cleanup on the other copy
  const server = createServer({
    config: { storage: "memory", modules_enabled: ["mam_smart_retention"], archive_expires_after: "never", hosts: { localhost: {} } },
    storage: new SqliteDriver(a, { synchronous: "normal" }),
    logger: silent,
    timers: false,
  });
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const tm = process.hrtime.bigint();
  const report = (await server.host("localhost").events.fire("smart-retention-run", {})) as CleanupReport;
  const moduleMs = Number(process.hrtime.bigint() - tm) / 1e6;
  h.disable();
  server.stop();
  const bareRate = bareRows / (bareMs / 1000);
  const moduleRate = report.deleted / (moduleMs / 1000);
  console.log(
    `retention  cleanup: ${Math.round(moduleRate).toLocaleString("en-US")} rows/s (${report.deleted.toLocaleString("en-US")} rows in ${(moduleMs / 1000).toFixed(2)} s); bare better-sqlite3 range deletes: ${Math.round(bareRate).toLocaleString("en-US")} rows/s; ratio ${((moduleRate / bareRate) * 100).toFixed(0)} %`,
  );
  console.log(`retention  largest event-loop delay during the cleanup: ${(h.max / 1e6).toFixed(1)} ms (p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms)`);
}

/** Messages from one session to another's bare JID, the receiver with stream management and a client id. */
export function ingestBench(n = 20_000): void {
  const run = (modules: string[]): number => {
    const server = createServer({
      config: { storage: "memory", modules_enabled: modules, archive_expires_after: "never", hosts: { localhost: {} } },
      storage: new MemoryDriver(),
      logger: silent,
      timers: false,
    });
    const host = server.host("localhost");
    let received = 0;
    const sink = { deliver: () => void received++, deliverNonza: () => {} };
    const alice = host.openSession(sink, { username: "alice", resource: "a" });
    const bob = host.openSession(sink, { username: "bob", resource: "b", clientId: "11111111-1111-4111-8111-111111111111" });
    bob.receive(xml("enable", { xmlns: "urn:xmpp:sm:3", resume: "true" }));
    for (const s of [alice, bob]) s.receive(xml("presence"));
    const msgs = Array.from({ length: n }, (_, i) => xml("message", { to: "bob@localhost", type: "chat", id: `m${i}` }, xml("body", {}, "Hello, how are you?")));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      alice.receive(msgs[i]!);
      if (i % 50 === 49) bob.receive(xml("a", { xmlns: "urn:xmpp:sm:3", h: String(received) }));
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    server.stop();
    return n / (ms / 1000);
  };
  // warm up, then best of 3 each
  run(["mam", "smacks"]);
  const best = (mods: string[]) => Math.max(run(mods), run(mods), run(mods));
  const without = best(["mam", "smacks"]);
  const withModule = best(["mam", "smacks", "mam_smart_retention"]);
  console.log(
    `retention  ingest (archive + deliver + acks every 50, memory driver): ${Math.round(withModule).toLocaleString("en-US")} msg/s with the module, ${Math.round(without).toLocaleString("en-US")} msg/s without: ${((withModule / without) * 100).toFixed(0)} %`,
  );
}
