// PostgreSQL restarted under load: `mamkit serve` runs as its own process on a
// private cluster; senders push messages over raw sockets with stream
// management while the database is restarted (a fast shutdown, and an
// immediate one: crash recovery from its WAL). The streams stay up — writes
// wait for the database and go on — and every message the server
// acknowledged is in the sender's and the recipient's archive exactly once.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "mamkit";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";
import { ackedOf, pump, smLogin } from "./load.js";
import { createAccounts, nodeConfig, sleep, startNode, stopNodes } from "./nodes.js";

const SENDERS = 4;

describe.skipIf(!pgAvailable)("the database restarted under load", () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startPg();
  }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(() => stopNodes());

  for (const mode of ["fast", "immediate"] as const) {
    it(`${mode} shutdown: nothing acknowledged is lost, nothing is stored twice, the streams stay up`, async () => {
      const url = await cluster.createDatabase();
      const senders = Array.from({ length: SENDERS }, (_, i) => `s${i}`);
      await createAccounts(url, ["sink", ...senders]);
      const node = await startNode("a", nodeConfig(url, { log: { level: "warn", format: "json" }, modules_enabled: ["saslauth", "roster", "smacks", "mam"] }));
      const clients = await Promise.all(senders.map((s) => smLogin(node.port, s)));
      const pumps = clients.map((c, i) => pump(c, senders[i]!, 100));
      await sleep(1000);
      const before = clients.map(ackedOf);
      await cluster.restart(mode);
      await sleep(1500); // load goes on against the restarted database
      for (const p of pumps) p.stop();
      // the last acks
      for (const c of clients) c.send("<r xmlns='urn:xmpp:sm:3'/>");
      const sent = pumps.map((p) => p.sent());
      for (let t = 0; t < 100 && clients.some((c, i) => ackedOf(c) < sent[i]!); t++) await sleep(100);
      const acked = clients.map(ackedOf);
      expect(clients.map((c) => c.closed), node.output().slice(-3000)).toEqual(senders.map(() => false));
      for (const c of clients) c.end();
      // the load went on after the restart, and every message sent was acknowledged in the end
      expect(acked.reduce((a, b) => a + b, 0)).toBeGreaterThan(before.reduce((a, b) => a + b, 0) + 100);
      expect(acked).toEqual(sent);

      const d = new PostgresDriver({ url });
      const problems: string[] = [];
      const ids = async (user: string) => {
        const count = new Map<string, number>();
        for (const item of (await d.archive("localhost", "archive").find(user)).items) {
          const id = item.stanza.attrs.id as string;
          count.set(id, (count.get(id) ?? 0) + 1);
        }
        return count;
      };
      const sink = await ids("sink");
      for (let i = 0; i < SENDERS; i++) {
        const own = await ids(senders[i]!);
        for (let k = 1; k <= acked[i]!; k++) {
          const id = `${senders[i]}-${k}`;
          if (own.get(id) !== 1) problems.push(`${id} acknowledged, ${own.get(id) ?? 0} times in the sender's archive`);
          if (sink.get(id) !== 1) problems.push(`${id} acknowledged, ${sink.get(id) ?? 0} times in the recipient's archive`);
        }
      }
      for (const [id, n] of sink) if (n > 1) problems.push(`${id} ${n} times in the recipient's archive`);
      await d.close();
      expect(problems.slice(0, 10)).toEqual([]);
    }, 90_000);
  }
});
