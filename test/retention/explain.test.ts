// The dry run's explanation against decide(): every message's action is what
// the cleanup would do, and its reason states the rule truthfully.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { reasonOf } from "../../src/retention/explain.js";
import { IntervalSet } from "../../src/retention/intervals.js";
import { decide, type Strategy } from "../../src/retention/policy.js";
import type { ClientRecord } from "../../src/retention/tracking.js";

const interval = fc.tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 5 })).map(([a, n]) => [a, a + n] as const);
const record = fc.record({
  delivered: fc.array(interval, { maxLength: 4 }),
  firstSeen: fc.integer({ min: 0, max: 30 }),
  lastSeen: fc.integer({ min: 0, max: 100 }),
});

describe("explain: reasonOf agrees with decide()", () => {
  it("for random records, strategies, expiry and minimum age", () => {
    fc.assert(
      fc.property(
        fc.array(record, { maxLength: 4 }),
        fc.constantFrom<Strategy>("one", "all"),
        fc.integer({ min: 0, max: 100 }),
        fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }),
        (recs, strategy, expiry, end) => {
          const records = new Map<string, ClientRecord>(
            recs.map((r, i) => [`c${i}`, { delivered: new IntervalSet(r.delivered), firstSeen: r.firstSeen, lastSeen: r.lastSeen }]),
          );
          const decision = decide(records, strategy, 100, expiry);
          for (let pos = 1; pos <= 40; pos++) {
            const when = pos; // (a message's date grows with its position here)
            const { action, reason } = reasonOf(pos, when, { records, decision, strategy, end });
            const goes = decision.deletable.has(pos) && (end === undefined || when <= end);
            expect(action).toBe(goes ? "delete" : "keep");
            const acked = decision.active.filter((c) => records.get(c)!.delivered.has(pos));
            const had = (c: string) => records.get(c)!.delivered.has(pos) || (records.get(c)!.firstSeen >= 1 && pos <= records.get(c)!.firstSeen);
            switch (reason.rule) {
              case "acknowledged":
                expect(reason.acknowledgedBy).toEqual(acked);
                expect(acked.length).toBeGreaterThan(0);
                if (strategy === "all") expect([...reason.acknowledgedBy, ...reason.predates].sort()).toEqual([...decision.active].sort());
                break;
              case "too-young":
                expect(decision.deletable.has(pos) && end !== undefined && when > end).toBe(true);
                break;
              case "no-clients":
                expect(decision.active).toEqual([]);
                break;
              case "unacknowledged":
                expect(acked).toEqual([]);
                expect(reason.predatesAll).toBe(strategy === "all" && decision.active.every(had));
                break;
              case "waiting":
                expect(strategy).toBe("all");
                expect(acked.length).toBeGreaterThan(0);
                expect(reason.waitingFor).toEqual(decision.active.filter((c) => !had(c)));
                expect(reason.waitingFor.length).toBeGreaterThan(0);
                break;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
