// MAM query latency: pages of 50 at random positions, through the router and
// the mam module, on a SQLite archive of 1,000,000 messages across 10,000 users.
import { join } from "node:path";
import type { Element } from "@xmpp/xml";
import { createLogger } from "../src/core/logger.js";
import { createServer } from "../src/server.js";
import { SqliteDriver } from "../src/storage/sqlite/driver.js";
import { xml } from "../src/xmpp/stanza.js";

export async function mamQueryBench(dir: string, users = 10_000, perUser = 100, queries = 2_000): Promise<void> {
  const path = join(dir, "mam-bench.sqlite");
  const driver = new SqliteDriver(path, { synchronous: "normal" });
  const archive = driver.archive("localhost", "archive");
  const t0 = Date.now();
  const body = xml("body", {}, "Hello, how are you? This is a typical short chat message.");
  // interleave users so each user's items are spread over the whole table, as in real life
  for (let r0 = 0; r0 < perUser; r0 += 10) {
    await driver.transaction(async () => {
      for (let round = r0; round < Math.min(perUser, r0 + 10); round++) {
        for (let u = 0; u < users; u++) {
          const stanza = xml("message", { to: `user${u}@localhost`, from: `peer${u % 97}@localhost/r`, type: "chat", id: `m${round}` }, body);
          await archive.append(`user${u}`, { stanza, when: t0 - (perUser - round) * 60_000, with: `peer${u % 97}@localhost` });
        }
      }
    });
  }
  const fillMs = Date.now() - t0;
  console.log(`mam     filled a SQLite archive with ${(users * perUser).toLocaleString("en-US")} messages for ${users.toLocaleString("en-US")} users in ${(fillMs / 1000).toFixed(1)} s`);

  const server = createServer({
    config: { storage: "memory", modules_enabled: ["mam"], archive_expires_after: "never", hosts: { localhost: {} } },
    storage: driver,
    logger: createLogger({ level: "silent" }),
    timers: false,
  });
  const host = server.host("localhost");
  let results = 0;
  let fins = 0;
  const sink = {
    deliver: (s: Element) => {
      if (s.name === "iq") fins++;
      else results++;
    },
  };
  const times: number[] = [];
  // collect what the earlier benchmarks left (npm run bench passes --expose-gc), so that their
  // garbage is not counted in these queries' tail
  (globalThis as { gc?: () => void }).gc?.();
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let q = 0; q < queries; q++) {
    const u = rand(users);
    const ids = (await archive.find(`user${u}`, { limit: perUser - 50 })).items.map((i) => i.id);
    const after = ids[rand(ids.length)]!;
    const session = host.openSession(sink, { username: `user${u}`, resource: "bench" });
    const iq = xml(
      "iq",
      { type: "set", id: `q${q}` },
      xml("query", { xmlns: "urn:xmpp:mam:2", queryid: `q${q}` }, xml("set", { xmlns: "http://jabber.org/protocol/rsm" }, xml("max", {}, "50"), xml("after", {}, after))),
    );
    const s = process.hrtime.bigint();
    session.receive(iq);
    await session.idle(); // the query is answered asynchronously
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
    session.close();
  }
  if (fins !== queries) throw new Error(`expected ${queries} answers, got ${fins}`);
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!.toFixed(2);
  console.log(
    `mam     query, page of 50 at a random position (RSM after), 1M-message SQLite archive: p50 ${pct(50)} ms, p99 ${pct(99)} ms  (${queries} queries, ${(results / queries).toFixed(1)} results each)`,
  );
  await server.stop();
}
