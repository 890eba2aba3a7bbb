// Property: under random interleavings of sends, checkpoints, partial and full
// acks, drops, resumptions, hibernation expiry and session ends, a checkpoint
// runs iff the acknowledged count covers it, exactly once, and never after the
// session ended unresumed. Runs the real smacks module through the test kit.
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { addCheckpoint } from "../../src/smacks/index.js";
import { createTestServer, type FakeClient } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

afterEach(() => {
  vi.useRealTimers();
});

type Op =
  | { op: "send"; n: number }
  | { op: "checkpoint" }
  | { op: "ack"; k: number }
  | { op: "drop" }
  | { op: "resume"; k: number }
  | { op: "expire" }
  | { op: "end" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("send" as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 3, arbitrary: fc.constant({ op: "checkpoint" as const }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("ack" as const), k: fc.nat({ max: 1000 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: "drop" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("resume" as const), k: fc.nat({ max: 1000 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: "expire" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "end" as const }) },
);

describe("smacks checkpoints (property)", () => {
  it("fire iff covered by an ack, exactly once, never after an unresumed end", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40, size: "large" }), async (ops) => {
        const t = createTestServer({
          logLevel: "silent",
          config: { modules_enabled: ["smacks"], smacks_hibernation_time: "100s", smacks_max_queue_size: 10_000 },
        });
        try {
          const alice = t.connect("alice@localhost/a");
          let bob: FakeClient = t.connect("bob@localhost/pc", { streamManagement: true });
          const session = bob.session;
          let sent = 0; // stanzas queued for bob's session
          let acked = 0; // what bob's acks covered
          let ended = false;
          let hibernating = false;
          const cps: { at: number; fired: number; firedAfterEnd: boolean }[] = [];
          let msg = 0;
          for (const o of ops) {
            if (ended) break;
            switch (o.op) {
              case "send":
                for (let i = 0; i < o.n; i++) {
                  await alice.send(xml("message", { to: "bob@localhost/pc", type: "chat" }, xml("body", {}, String(++msg))));
                  sent++;
                }
                break;
              case "checkpoint": {
                const cp = { at: sent, fired: 0, firedAfterEnd: false };
                cps.push(cp);
                expect(addCheckpoint(session, () => {
                  cp.fired++;
                  if (ended) cp.firedAfterEnd = true;
                })).toBe(true);
                break;
              }
              case "ack":
                if (hibernating) break;
                {
                  // any h the client may send: from what it acked last up to all it handled
                  const h = acked + (o.k % (bob.handled - acked + 1));
                  await bob.ack(h);
                  acked = Math.max(acked, h);
                }
                break;
              case "drop":
                if (hibernating) break;
                bob.drop();
                hibernating = true;
                break;
              case "resume":
                if (!hibernating) break;
                {
                  const h = acked + (o.k % (bob.handled - acked + 1));
                  bob = await t.resume(bob, { h });
                  acked = Math.max(acked, h);
                  hibernating = false;
                  expect(bob.handled).toBe(sent); // every unacked stanza came again
                }
                break;
              case "expire":
                if (!hibernating) break;
                await t.clock.advance(100_001);
                ended = true;
                break;
              case "end":
                bob.close();
                ended = true;
                break;
            }
            for (const cp of cps) {
              expect(cp.firedAfterEnd).toBe(false);
              if (cp.at <= acked) expect(cp.fired).toBe(1);
              else expect(cp.fired).toBe(0);
            }
          }
          expect(session.closed).toBe(ended);
        } finally {
          await t.stop();
          vi.useRealTimers();
        }
      }),
      { numRuns: 600 },
    );
  });
});
