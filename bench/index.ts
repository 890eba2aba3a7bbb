// `npm run bench`: throughput of the in-process router, of the stream parser, and of archive appends
// on both drivers, MAM query latency, smart retention cleanup and ingest, and
// load over real sockets from this process against the server as a child
// process (bench/load.ts). Prints numbers; nothing here asserts a time.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "../src/server.js";
import { createLogger } from "../src/core/logger.js";
import { MemoryDriver } from "../src/storage/memory/driver.js";
import { SqliteDriver } from "../src/storage/sqlite/driver.js";
import type { StorageDriver } from "../src/storage/types.js";
import type { Element } from "@xmpp/xml";
import { xml } from "../src/xmpp/stanza.js";
import { mamQueryBench } from "./mam.js";
import { parseBench } from "./parse.js";
import { loadBench } from "./load.js";
import { postgresBench } from "./postgres.js";
import { ingestBench, retentionCleanupBench } from "./retention.js";

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString("en-US")}/s`;
}

async function best(runs: number, fn: () => Promise<unknown>): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return min;
}

async function routerBench(n: number): Promise<void> {
  const server = createServer({
    config: { storage: "memory", hosts: { localhost: {} } },
    logger: createLogger({ level: "silent" }),
    timers: false,
  });
  const host = server.host("localhost");
  let delivered = 0;
  const sink = { deliver: () => void delivered++ };
  const alice = host.openSession(sink, { username: "alice", resource: "phone" });
  const bob = host.openSession(sink, { username: "bob", resource: "laptop" });
  for (const s of [alice, bob]) s.receive(xml("presence"));
  await Promise.all([alice.idle(), bob.idle()]);
  const make = (i: number): Element =>
    xml("message", { to: "bob@localhost", type: "chat", id: `m${i}` }, xml("body", {}, "Hello, how are you?"));
  const stanzas: Element[] = [];
  // measure routing alone (stanza construction excluded)
  let routeMs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 5; r++) {
    stanzas.length = 0;
    for (let i = 0; i < n; i++) stanzas.push(make(i));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) alice.receive(stanzas[i]!);
    await alice.idle(); // stanzas are handled asynchronously
    routeMs = Math.min(routeMs, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  if (delivered !== n * 5) throw new Error(`expected ${n * 5} deliveries, got ${delivered}`);
  console.log(`router  chat message to a bare JID, no modules: ${rate(n, routeMs)}  (${n} stanzas in ${routeMs.toFixed(1)} ms, best of 5)`);
  await server.stop();
}

async function appendBench(name: string, open: () => StorageDriver, n: number): Promise<void> {
  const d = open();
  const a = d.archive("localhost", "archive");
  const stanza = xml(
    "message",
    { to: "bob@localhost", from: "alice@localhost/phone", type: "chat", id: "abc" },
    xml("body", {}, "Hello, how are you? This is a typical short chat message."),
  );
  const t0 = Date.now();
  // each append waits for its own commit: what one stanza at a time on a quiet server costs
  const single = Math.min(n, 2000);
  const eachMs = await best(3, async () => {
    for (let i = 0; i < single; i++) {
      await a.append("alice", { stanza, when: t0 + i, with: "bob@localhost" });
      await d.durable();
    }
  });
  console.log(`archive append, ${name}, each durable before the next: ${rate(single, eachMs)}  (${single} appends in ${eachMs.toFixed(1)} ms, best of 3)`);
  // appends awaited one by one, group-committed (a batch per event-loop turn or per commit_max_writes)
  const ms = await best(3, async () => {
    for (let i = 0; i < n; i++) await a.append("alice", { stanza, when: t0 + i, with: "bob@localhost" });
    await d.durable();
  });
  console.log(`archive append, ${name}, group commit: ${rate(n, ms)}  (${n} appends in ${ms.toFixed(1)} ms, best of 3)`);
  const batchMs = await best(3, () =>
    d.transaction(async () => {
      for (let i = 0; i < n; i++) await a.append("alice", { stanza, when: t0 + i, with: "bob@localhost" });
    }),
  );
  console.log(`archive append, ${name}, ${n} per transaction: ${rate(n, batchMs)}  (${batchMs.toFixed(1)} ms, best of 3)`);
  await d.close();
}

const dir = mkdtempSync(join(tmpdir(), "mamkit-bench-"));
try {
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
  // `npm run bench -- --postgres`: PostgreSQL next to SQLite only
  if (process.argv.includes("--postgres")) {
    await postgresBench(dir);
    process.exit(0);
  }
  await routerBench(100_000);
  parseBench();
  await appendBench("memory", () => new MemoryDriver(), 50_000);
  await appendBench("sqlite (WAL, synchronous=full, file)", () => new SqliteDriver(join(dir, "full.sqlite")), 5_000);
  await appendBench("sqlite (WAL, synchronous=normal, file)", () => new SqliteDriver(join(dir, "normal.sqlite"), { synchronous: "normal" }), 20_000);
  // as the server opens it: the WAL's sync on libuv's thread pool, checkpoints on a worker thread
  await appendBench(
    "sqlite (server: synchronous=full, WAL synced off the event loop)",
    () => new SqliteDriver(join(dir, "server.sqlite"), { checkpoints: "worker" }),
    20_000,
  );
  // `npm run bench -- --storage`: the lines above only
  if (process.argv.includes("--storage")) process.exit(0);
  await mamQueryBench(dir);
  await ingestBench();
  await retentionCleanupBench(dir);
  await loadBench();
  await postgresBench(dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
