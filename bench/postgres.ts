// PostgreSQL next to SQLite, in the same run (a private cluster: initdb in a
// temporary folder, durability settings left at PostgreSQL's defaults, as
// SQLite runs with synchronous=full):
// - ingest: appends from 64 callers at once (stanzas of many sessions), group-committed;
// - MAM page latency through the mam module, on the same archive on both;
// - two nodes on one database: end to end, `mamkit serve` processes with raw-socket
//   senders, one node against two.
// Prints numbers; nothing here asserts a time.
import { join } from "node:path";
import type { Element } from "@xmpp/xml";
import { createLogger } from "../src/core/logger.js";
import { createServer } from "../src/server.js";
import { PostgresDriver } from "../src/storage/postgres/driver.js";
import { SqliteDriver } from "../src/storage/sqlite/driver.js";
import type { StorageDriver } from "../src/storage/types.js";
import { xml } from "../src/xmpp/stanza.js";
import { ackedOf, pump, smLogin } from "../test/e2e/load.js";
import { createAccounts, nodeConfig, sleep, startNode, stopNodes } from "../test/e2e/nodes.js";
import { pgAvailable, startPg } from "../test/helpers/pg.js";

const body = xml("body", {}, "Hello, how are you? This is a typical short chat message.");
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

async function ingest(name: string, d: StorageDriver, n = 20_000, lanes = 64): Promise<void> {
  const a = d.archive("localhost", "archive");
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < n) {
        const i = next++;
        await a.append(`user${i % 500}`, { stanza: xml("message", { type: "chat", id: `i${i}` }, body), when: Date.now(), with: "peer@localhost" });
      }
    }),
  );
  await d.durable();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`pg      ingest, ${name}, ${lanes} appends in flight: ${fmt((n / ms) * 1000)}/s  (${n} appends in ${ms.toFixed(0)} ms)`);
}

/** Fills `users` archives with `perUser` messages each, interleaved, `inFlight` appends at a time. */
async function fill(d: StorageDriver, users: number, perUser: number): Promise<void> {
  const a = d.archive("localhost", "archive");
  const t0 = Date.now();
  for (let round = 0; round < perUser; round++) {
    await Promise.all(
      Array.from({ length: users }, (_, u) =>
        a.append(`user${u}`, { stanza: xml("message", { to: `user${u}@localhost`, from: `peer${u % 97}@localhost/r`, type: "chat", id: `m${round}` }, body), when: t0 - (perUser - round) * 60_000, with: `peer${u % 97}@localhost` }),
      ),
    );
  }
  await d.durable();
}

async function mamPages(name: string, driver: StorageDriver, users: number, perUser: number, queries = 1000): Promise<void> {
  const server = createServer({
    config: { storage: "memory", modules_enabled: ["mam"], archive_expires_after: "never", hosts: { localhost: {} } },
    storage: driver,
    logger: createLogger({ level: "silent" }),
    timers: false,
  });
  const host = server.host("localhost");
  let fins = 0;
  const sink = { deliver: (s: Element) => void (s.name === "iq" && fins++) };
  const archive = driver.archive("localhost", "archive");
  let seed = 42;
  const rand = (k: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % k;
  };
  const times: number[] = [];
  for (let q = 0; q < queries; q++) {
    const u = rand(users);
    const ids = (await archive.find(`user${u}`, { limit: perUser - 50 })).items.map((i) => i.id);
    const session = host.openSession(sink, { username: `user${u}`, resource: "bench" });
    const iq = xml(
      "iq",
      { type: "set", id: `q${q}` },
      xml("query", { xmlns: "urn:xmpp:mam:2", queryid: `q${q}` }, xml("set", { xmlns: "http://jabber.org/protocol/rsm" }, xml("max", {}, "50"), xml("after", {}, ids[rand(ids.length)]!))),
    );
    const s = process.hrtime.bigint();
    session.receive(iq);
    await session.idle();
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
    session.close();
  }
  if (fins !== queries) throw new Error(`expected ${queries} answers, got ${fins}`);
  times.sort((x, y) => x - y);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!.toFixed(2);
  console.log(`pg      mam page of 50 (RSM after), ${name}, ${fmt(users * perUser)} messages: p50 ${pct(50)} ms, p99 ${pct(99)} ms  (${queries} queries)`);
  await server.stop();
}

/** Senders spread over `nodes` nodes for `ms`; the acknowledged messages per second, all nodes together. */
async function nodesIngest(url: string, nodes: number, senders: number, ms: number): Promise<number> {
  const names = Array.from({ length: senders }, (_, i) => `s${i}`);
  // each sender writes to a recipient of its own: users spread over the nodes, as a deployment would
  await createAccounts(url, [...names, ...names.map((s) => `to-${s}`)]);
  const config = nodeConfig(url, { log: { level: "warn", format: "json" }, modules_enabled: ["saslauth", "roster", "smacks", "mam"] });
  const started = await Promise.all(Array.from({ length: nodes }, (_, i) => startNode(`n${i}`, config)));
  try {
    const clients = await Promise.all(names.map((s, i) => smLogin(started[i % nodes]!.port, s)));
    const pumps = clients.map((c, i) => pump(c, names[i]!, 100, `to-${names[i]}@localhost`));
    await sleep(500); // warm up
    const a0 = clients.map(ackedOf).reduce((x, y) => x + y, 0);
    const t0 = Date.now();
    await sleep(ms);
    const acked = clients.map(ackedOf).reduce((x, y) => x + y, 0) - a0;
    const rate = (acked / (Date.now() - t0)) * 1000;
    for (const p of pumps) p.stop();
    for (const c of clients) c.end();
    return rate;
  } finally {
    await stopNodes();
  }
}

export async function postgresBench(dir: string): Promise<void> {
  if (!pgAvailable) {
    console.log("pg      skipped: no PostgreSQL found (Debian: apt-get install postgresql)");
    return;
  }
  const cluster = await startPg();
  try {
    console.log("pg      a private PostgreSQL cluster on 127.0.0.1, default durability (fsync, synchronous_commit on)");
    await ingest("sqlite (server: synchronous=full)", new SqliteDriver(join(dir, "pg-ingest.sqlite"), { checkpoints: "worker" }));
    const pgIngest = new PostgresDriver({ url: await cluster.createDatabase() });
    await pgIngest.ready();
    await ingest("postgres", pgIngest);
    console.log(`pg      (postgres: ${fmt(pgIngest.writes.stats.writes / Math.max(1, pgIngest.writes.stats.batches))} appends per transaction on average)`);
    await pgIngest.close();

    const users = 2_000;
    const perUser = 100;
    const sqlite = new SqliteDriver(join(dir, "pg-mam.sqlite"), { synchronous: "normal" });
    await fill(sqlite, users, perUser);
    await mamPages("sqlite", sqlite, users, perUser);
    const pg = new PostgresDriver({ url: await cluster.createDatabase() });
    await fill(pg, users, perUser);
    await cluster.psql("ANALYZE", pg.target.url);
    await mamPages("postgres", pg, users, perUser);

    const one = await nodesIngest(await cluster.createDatabase(), 1, 8, 4000);
    const two = await nodesIngest(await cluster.createDatabase(), 2, 8, 4000);
    console.log(
      `pg      end to end, 8 senders with stream management: one node ${fmt(one)} msg/s, two nodes on one database ${fmt(two)} msg/s together (${((two / one) * 100).toFixed(0)} %; all on this machine's cores)`,
    );
  } finally {
    await cluster.stop();
  }
}
