import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IntervalSet } from "../../src/retention/intervals.js";

describe("IntervalSet", () => {
  it("merges overlapping and adjacent intervals", () => {
    const s = new IntervalSet();
    s.add(5, 7);
    s.add(1, 2);
    s.add(3); // adjacent to [1,2]
    s.add(10, 12);
    s.add(6, 11); // bridges
    expect(s.toJSON()).toEqual([[1, 3], [5, 12]]);
    expect(s.has(4)).toBe(false);
    expect(s.has(12)).toBe(true);
  });

  it("intersects and unites", () => {
    const a = new IntervalSet([[1, 5], [10, 20]]);
    const b = new IntervalSet([[4, 12], [18, 30]]);
    expect(a.intersect(b).toJSON()).toEqual([[4, 5], [10, 12], [18, 20]]);
    expect(a.union(b).toJSON()).toEqual([[1, 30]]);
  });

  it("closes gaps that hold no archived message", () => {
    const s = new IntervalSet([[1, 2], [5, 6], [9, 9]]);
    const archived = new Set([7, 8]);
    s.compact((after, before) => ![...archived].some((p) => p > after && p < before));
    expect(s.toJSON()).toEqual([[1, 6], [9, 9]]);
  });

  it("closes gaps that hold no archived message, asking an asynchronous test once per gap", async () => {
    const s = new IntervalSet([[1, 2], [5, 6], [9, 9], [12, 12]]);
    const archived = new Set([7, 8]);
    const asked: [number, number][] = [];
    await s.compactAsync(async (after, before) => {
      asked.push([after, before]);
      await new Promise((r) => setImmediate(r));
      return ![...archived].some((p) => p > after && p < before);
    });
    expect(s.toJSON()).toEqual([[1, 6], [9, 12]]);
    expect(asked).toEqual([[2, 5], [6, 9], [9, 12]]);
  });

  it("rejects bad intervals", () => {
    expect(() => new IntervalSet().add(3, 1)).toThrow(RangeError);
    expect(() => new IntervalSet().add(1.5)).toThrow(RangeError);
  });

  it("behaves like a set of integers (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 }))), fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 }))), (xs, ys) => {
        const A = new IntervalSet();
        const B = new IntervalSet();
        const a = new Set<number>();
        const b = new Set<number>();
        for (const [s, l] of xs) {
          A.add(s, s + l);
          for (let i = s; i <= s + l; i++) a.add(i);
        }
        for (const [s, l] of ys) {
          B.add(s, s + l);
          for (let i = s; i <= s + l; i++) b.add(i);
        }
        const I = A.intersect(B);
        const U = A.union(B);
        for (let p = 0; p <= 70; p++) {
          expect(A.has(p)).toBe(a.has(p));
          expect(I.has(p)).toBe(a.has(p) && b.has(p));
          expect(U.has(p)).toBe(a.has(p) || b.has(p));
        }
        const l = A.intervals;
        for (let i = 1; i < l.length; i++) expect(l[i]![0]).toBeGreaterThan(l[i - 1]![1] + 1);
      }),
      { numRuns: 300 },
    );
  });
});
