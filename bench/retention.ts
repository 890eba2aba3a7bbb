// Smart retention benchmarks: cleanup of 1,000,000 delivered messages across
// 10,000 users on SQLite next to a bare better-sqlite3 range delete of the
// same rows, the largest event-loop delay while the cleanup runs, and message
// ingest with the module loaded vs without.
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createLogger } from "../src/core/logger.js";
import { createServer } from "../src/server.js";
import type { CleanupReport } from "../src/retention/index.js";
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
    await fill.transaction(async () => {
      for (let round = r0; round < Math.min(perUser, r0 + 10); round++) {
        for (let u = 0; u < users; u++) {
          const user = `user${u}`;
          const { pos } = await archive.append(user, {
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
  await fill.transaction(async () => {
    for (const [user, [lo, hi]] of range) {
      await tracking.set(user, "11111111-1111-4111-8111-111111111111", { delivered: [[lo, hi]], firstSeen: 0, lastSeen: Date.now() });
    }
  });
  fill.db.pragma("wal_checkpoint(TRUNCATE)");
  await fill.close();
  copyFileSync(a, b);
  console.log(`retention  prepared ${(users * perUser).toLocaleString("en-US")} delivered messages for ${users.toLocaleString("en-US")} users in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // bare better-sqlite3: one range delete per user, each its own transaction
  const bare = new SqliteDriver(b, { synchronous: "normal" });
  const del = bare.db.prepare('DELETE FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "sort_id" BETWEEN ? AND ?');
  let bareRows = 0;
  const tb = process.hrtime.bigint();
  for (const [user, [lo, hi]] of range) bareRows += del.run("localhost", user, "archive", lo, hi).changes;
  const bareMs = Number(process.hrtime.bigint() - tb) / 1e6;
  await bare.close();

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
  await server.stop();
  const bareRate = bareRows / (bareMs / 1000);
  const moduleRate = report.deleted / (moduleMs / 1000);
  console.log(
    `retention  cleanup: ${Math.round(moduleRate).toLocaleString("en-US")} rows/s (${report.deleted.toLocaleString("en-US")} rows in ${(moduleMs / 1000).toFixed(2)} s); bare better-sqlite3 range deletes: ${Math.round(bareRate).toLocaleString("en-US")} rows/s; ratio ${((moduleRate / bareRate) * 100).toFixed(0)} %`,
  );
  console.log(`retention  largest event-loop delay during the cleanup: ${(h.max / 1e6).toFixed(1)} ms (p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms)`);
}

/**
 * Chat between 20 users, each online with stream management and a client id,
 * so that every user's archive positions interleave with the others' (as on a
 * real server); every session acks every 50 messages, and the loop yields to
 * the event loop every 500 so that tracking writes are flushed as they would
 * be. SQLite in memory: the module's own cost, not the disk's (the memory
 * driver keeps every stanza on the JS heap, and its garbage collection makes
 * the ratio swing by ±15 % from run to run).
 */
export async function ingestBench(n = 40_000, users = 20): Promise<void> {
  const run = async (modules: string[]): Promise<{ rate: number; maxIntervals: number }> => {
    const server = createServer({
      config: { storage: "memory", modules_enabled: modules, archive_expires_after: "never", hosts: { localhost: {} } },
      storage: new SqliteDriver(":memory:"),
      logger: silent,
      timers: false,
    });
    const host = server.host("localhost");
    const received = new Array<number>(users).fill(0);
    const sessions = Array.from({ length: users }, (_, u) => {
      const sink = { deliver: () => void received[u]!++, deliverNonza: () => {} };
      const id = `${String(u).padStart(8, "0")}-1111-4111-8111-111111111111`;
      const s = host.openSession(sink, { username: `user${u}`, resource: "r", clientId: id });
      s.receive(xml("enable", { xmlns: "urn:xmpp:sm:3", resume: "true" }));
      s.receive(xml("presence"));
      return s;
    });
    // a full collection before each run (npm run bench passes --expose-gc): the runs build
    // large heaps, and a collection of the previous run's garbage would land in the next
    (globalThis as { gc?: () => void }).gc?.();
    const msgs = Array.from({ length: n }, (_, i) =>
      xml("message", { to: `user${(i * 7 + 1) % users}@localhost`, type: "chat", id: `m${i}` }, xml("body", {}, "Hello, how are you?")),
    );
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      sessions[i % users]!.receive(msgs[i]!);
      if (i % 50 === 49) for (let u = 0; u < users; u++) sessions[u]!.receive(xml("a", { xmlns: "urn:xmpp:sm:3", h: String(received[u]) }));
      if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    // the module's buffered tracking is written within a second anyway: write it now, inside the timing
    // (a dry run for a user without an archive does only that; without the module nothing answers)
    await host.events.fire("smart-retention-run", { dryRun: true, user: "nobody" });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    let maxIntervals = 0;
    if (modules.includes("mam_smart_retention")) {
      const tracking = host.openStore("mam_smart_retention", "map");
      for (let u = 0; u < users; u++) {
        for (const rec of Object.values((await tracking.getAll(`user${u}`)) ?? {})) {
          maxIntervals = Math.max(maxIntervals, (rec as { delivered: unknown[] }).delivered.length);
        }
      }
    }
    await server.stop();
    return { rate: n / (ms / 1000), maxIntervals };
  };
  // warm up, then the best of 5 each, the two kinds alternating so that drift hits both alike
  const plain = ["mam", "smacks"];
  const smart = ["mam", "smacks", "mam_smart_retention"];
  await run(plain);
  await run(smart);
  const without = { rate: 0, maxIntervals: 0 };
  const withModule = { rate: 0, maxIntervals: 0 };
  for (let i = 0; i < 5; i++) {
    for (const [mods, into] of [[plain, without], [smart, withModule]] as const) {
      const r = await run(mods);
      into.rate = Math.max(into.rate, r.rate);
      into.maxIntervals = Math.max(into.maxIntervals, r.maxIntervals);
    }
  }
  console.log(
    `retention  ingest (${users} users chatting, archive + deliver + acks every 50, SQLite in memory): ${Math.round(withModule.rate).toLocaleString("en-US")} msg/s with the module, ${Math.round(without.rate).toLocaleString("en-US")} msg/s without: ${((withModule.rate / without.rate) * 100).toFixed(0)} %; tracked intervals per client at the end: at most ${withModule.maxIntervals}`,
  );
}
