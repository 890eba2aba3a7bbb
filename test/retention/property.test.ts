// Property: random schedules with several clients of several users — archive
// appends, live deliveries, filtered / unfiltered / reverse queries, partial
// and full acks, drops, resumptions, clock jumps, failed commits (a batch rolled
// back, the streams that sent into it ended) and cleanups. After every
// cleanup: nothing deleted lacked the acknowledged deliveries its strategy
// requires (or was younger than the minimum); under "one", every acknowledged
// message older than the minimum is gone. The oracle is computed here from the
// server's stream-management counters, not from the module's records.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { smState } from "../../src/smacks/index.js";
import { createTestServer, type FakeClient } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const USERS = ["bob", "dan"] as const;
const CLIENT_IDS = ["aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"];
const NS_MAM = "urn:xmpp:mam:2";
const HOUR = 3_600_000;

type Op =
  | { op: "append"; user: number; n: number; from: number }
  | { op: "query"; user: number; client: number; kind: "forward" | "reverse" | "filtered"; max: number }
  | { op: "ack"; user: number; client: number; k: number }
  | { op: "drop"; user: number; client: number }
  | { op: "resume"; user: number; client: number; k: number }
  | { op: "end"; user: number; client: number }
  | { op: "connect"; user: number; client: number }
  | { op: "clock"; hours: number }
  | { op: "fail"; user: number; from: number }
  | { op: "cleanup" };

const u = fc.integer({ min: 0, max: USERS.length - 1 });
const c = fc.integer({ min: 0, max: 2 }); // 2 = the legacy client without an id
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("append" as const), user: u, n: fc.integer({ min: 1, max: 3 }), from: fc.integer({ min: 0, max: 1 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("query" as const),
      user: u,
      client: c,
      kind: fc.constantFrom("forward" as const, "reverse" as const, "filtered" as const),
      max: fc.integer({ min: 1, max: 5 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("ack" as const), user: u, client: c, k: fc.nat({ max: 1000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), user: u, client: c }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("resume" as const), user: u, client: c, k: fc.nat({ max: 1000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("end" as const), user: u, client: c }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("connect" as const), user: u, client: c }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("clock" as const), hours: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("fail" as const), user: u, from: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.constant({ op: "cleanup" as const }) },
);

interface Unit {
  positions: number[];
  at: number;
  /** The stream-management queue the unit was queued on (one per session of the client). */
  queue: { acked: number };
}
interface ClientModel {
  fc: FakeClient | undefined;
  tracked: boolean;
  state: "never" | "live" | "hibernating" | "ended";
  units: Unit[];
  /** Newest archive position when the client first connected; undefined: never seen. */
  firstSeen: number | undefined;
  /** When its connection dropped (it hibernates since), on the test clock. */
  droppedAt?: number;
}

function runSchedule(driver: "memory" | "sqlite", strategy: "one" | "all", minHours: number, ops: Op[]): Promise<void> {
  return (async () => {
    const t = createTestServer({
      storage: driver,
      logLevel: "silent",
      tasks: "on-demand", // cleanups only where the model runs (and checks) one
      config: {
        modules_enabled: ["mam_smart_retention"],
        archive_expires_after: "never",
        smart_retention_strategy: strategy,
        ...(minHours > 0 ? { smart_retention_min: minHours * 3600 } : {}),
        smacks_max_queue_size: 100_000,
      },
    });
    try {
      const archive = t.host().openStore("archive", "archive");
      const storage = t.server.storage as typeof t.server.storage & { injectCommitFailures(n: number): void };
      const senders = [t.connect("carol@localhost/x"), t.connect("dave@localhost/y")];
      await t.settle();
      const all = new Map<string, Map<number, number>>(); // user -> pos -> when
      const clients: ClientModel[][] = USERS.map(() =>
        [0, 1, 2].map((i) => ({ fc: undefined, tracked: i < 2, state: "never" as const, units: [], firstSeen: undefined })),
      );
      let sessionNo = 0;
      const connectClient = async (ui: number, i: number) => {
        const cm = clients[ui]![i]!;
        const user = USERS[ui]!;
        cm.firstSeen ??= (await archive.summary(user)).last?.pos ?? 0;
        cm.fc = t.connect(`${user}@localhost/c${i}-${++sessionNo}`, { streamManagement: true, ...(i < 2 ? { clientId: CLIENT_IDS[i]! } : {}) });
        cm.state = "live";
        // its initial presence (and the module's reading of the newest position) are handled asynchronously
        await t.settle();
        await new Promise((r) => setImmediate(r));
      };
      // clients connect later (connect op): what came before they learn only through MAM
      const queueOf = (m: ClientModel) => smState(m.fc!.session)!.queue;
      const ackedPositions = (m: ClientModel) => {
        const s = new Set<number>();
        for (const unit of m.units) if (unit.at <= unit.queue.acked) for (const p of unit.positions) s.add(p);
        return s;
      };

      for (const o of ops) {
        switch (o.op) {
          case "append": {
            const user = USERS[o.user]!;
            for (let i = 0; i < o.n; i++) {
              await senders[o.from]!.send(xml("message", { to: `${user}@localhost`, type: "chat" }, xml("body", {}, "m")));
              const item = (await archive.find(user, { reverse: true, limit: 1 })).items[0]!;
              const m = all.get(user) ?? new Map();
              m.set(item.pos, item.when);
              all.set(user, m);
              for (const cm of clients[o.user]!) {
                if (cm.state === "live" || cm.state === "hibernating") {
                  cm.units.push({ positions: [item.pos], at: queueOf(cm).sent, queue: queueOf(cm) });
                }
              }
            }
            break;
          }
          case "query": {
            const cm = clients[o.user]![o.client]!;
            if (cm.state !== "live") break;
            const q = xml("query", { xmlns: NS_MAM });
            if (o.kind === "filtered") {
              const x = q.c("x", { xmlns: "jabber:x:data", type: "submit" });
              x.c("field", { var: "FORM_TYPE" }).c("value").t(NS_MAM);
              x.c("field", { var: "with" }).c("value").t("carol@localhost");
            }
            const set = q.c("set", { xmlns: "http://jabber.org/protocol/rsm" });
            set.c("max").t(String(o.max));
            if (o.kind === "reverse") set.c("before");
            const client = cm.fc!;
            client.take();
            await client.request(xml("iq", { type: "set" }, q));
            const ids = client.take().filter((s) => s.getChild("result", NS_MAM)).map((s) => s.getChild("result")!.attrs.id as string);
            const positions: number[] = [];
            for (const id of ids) positions.push((await archive.get(USERS[o.user]!, id))!.pos);
            // the results were queued before the <fin/> iq, the last stanza queued
            if (positions.length > 0) cm.units.push({ positions, at: queueOf(cm).sent - 1, queue: queueOf(cm) });
            break;
          }
          case "ack": {
            const cm = clients[o.user]![o.client]!;
            if (cm.state !== "live") break;
            // any h the client may send: from what it acknowledged up to what it handled
            const acked = queueOf(cm).acked;
            await cm.fc!.ack(acked + (o.k % (cm.fc!.handled - acked + 1)));
            break;
          }
          case "drop": {
            const cm = clients[o.user]![o.client]!;
            if (cm.state !== "live") break;
            cm.fc!.drop();
            cm.state = "hibernating";
            cm.droppedAt = t.clock.now();
            break;
          }
          case "resume": {
            const cm = clients[o.user]![o.client]!;
            if (cm.state !== "hibernating") break;
            const acked = queueOf(cm).acked;
            cm.fc = await t.resume(cm.fc!, { h: acked + (o.k % (cm.fc!.handled - acked + 1)) });
            cm.state = "live";
            break;
          }
          case "end": {
            const cm = clients[o.user]![o.client]!;
            if (cm.state !== "live" && cm.state !== "hibernating") break;
            cm.fc!.close();
            cm.state = "ended";
            break;
          }
          case "connect": {
            const cm = clients[o.user]![o.client]!;
            if (cm.state === "never" || cm.state === "ended") await connectClient(o.user, o.client);
            break;
          }
          case "clock":
            await t.clock.advance(o.hours * HOUR);
            // a hibernation longer than smacks_hibernation_time (600 s) ends the session, unresumed
            for (const row of clients) {
              for (const cm of row) if (cm.state === "hibernating" && t.clock.now() - cm.droppedAt! >= 600_000) cm.state = "ended";
            }
            break;
          case "fail": {
            // the next commit fails: this message's archive rows (and whatever shares the batch) are lost
            storage.injectCommitFailures(1);
            const user = USERS[o.user]!;
            await senders[o.from]!.send(xml("message", { to: `${user}@localhost`, type: "chat" }, xml("body", {}, "lost"))).catch(() => undefined);
            await t.settle().catch(() => undefined);
            await new Promise((r) => setImmediate(r));
            // (the failure did happen: the message is not in the archive)
            expect((await archive.find(user)).items.some((i) => i.stanza.getChildText("body") === "lost")).toBe(false);
            // the server ended the streams whose stanzas it could not store
            for (let i = 0; i < senders.length; i++) {
              if (senders[i]!.disconnected) senders[i] = t.connect(i === 0 ? "carol@localhost/x" : "dave@localhost/y");
            }
            for (const row of clients) for (const cm of row) if (cm.state === "live" && cm.fc!.disconnected) cm.state = "ended";
            await t.settle();
            break;
          }
          case "cleanup": {
            await t.settle();
            await new Promise((r) => setImmediate(r));
            const before: Set<number>[] = [];
            for (const user of USERS) before.push(new Set((await archive.find(user)).items.map((i) => i.pos)));
            await t.runScheduled("smart retention cleanup");
            const now = t.clock.now();
            for (let ui = 0; ui < USERS.length; ui++) {
              const user = USERS[ui]!;
              const present = new Set((await archive.find(user)).items.map((i) => i.pos));
              const tracked = clients[ui]!.filter((m) => m.tracked && m.firstSeen !== undefined);
              const acked = tracked.map(ackedPositions);
              for (const [pos, when] of all.get(user) ?? []) {
                const oldEnough = minHours === 0 || when < now - minHours * HOUR;
                const allowed =
                  acked.some((s) => s.has(pos)) &&
                  (strategy === "one" || tracked.every((m, i) => acked[i]!.has(pos) || pos <= m.firstSeen!));
                if (before[ui]!.has(pos) && !present.has(pos)) {
                  // safety: nothing deleted without the deliveries its strategy requires
                  expect(allowed && oldEnough, `${strategy}: ${user} pos ${pos} deleted`).toBe(true);
                } else if (present.has(pos) && strategy === "one" && oldEnough && acked.some((s) => s.has(pos))) {
                  // completeness: every acknowledged message old enough is gone
                  expect.fail(`one: ${user} pos ${pos} acknowledged but kept`);
                }
              }
            }
            break;
          }
        }
      }
    } finally {
      await t.stop();
    }
  })();
}

describe("smart retention (property)", () => {
  it("never deletes what its strategy does not allow, and under one deletes all it allows", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("memory" as const, "sqlite" as const),
        fc.constantFrom("one" as const, "all" as const),
        fc.constantFrom(0, 0, 12),
        fc.array(opArb, { minLength: 1, maxLength: 40, size: "large" }),
        (driver, strategy, minHours, ops) => runSchedule(driver, strategy, minHours, ops),
      ),
      { numRuns: 1000 },
    );
  }, 120_000);
});
