// Sets of archive positions as sorted, disjoint, closed integer intervals.
// Delivery tracking stays a handful of intervals per client: a MAM catch-up
// adds one interval per page, live deliveries extend the last one.

export type Interval = readonly [number, number];

export class IntervalSet {
  private list: [number, number][];

  constructor(intervals: readonly Interval[] = []) {
    this.list = [];
    for (const [a, b] of intervals) this.add(a, b);
  }

  get intervals(): readonly Interval[] {
    return this.list;
  }

  get isEmpty(): boolean {
    return this.list.length === 0;
  }

  /** Adds [a, b] (integers, a ≤ b), merging overlapping and adjacent intervals. */
  add(a: number, b: number = a): void {
    if (!Number.isInteger(a) || !Number.isInteger(b) || a > b) throw new RangeError(`bad interval [${a}, ${b}]`);
    const out: [number, number][] = [];
    let lo = a;
    let hi = b;
    let placed = false;
    for (const [x, y] of this.list) {
      if (y < lo - 1) out.push([x, y]);
      else if (x > hi + 1) {
        if (!placed) {
          out.push([lo, hi]);
          placed = true;
        }
        out.push([x, y]);
      } else {
        lo = Math.min(lo, x);
        hi = Math.max(hi, y);
      }
    }
    if (!placed) out.push([lo, hi]);
    this.list = out;
  }

  has(pos: number): boolean {
    let l = 0;
    let r = this.list.length - 1;
    while (l <= r) {
      const m = (l + r) >> 1;
      const [x, y] = this.list[m]!;
      if (pos < x) r = m - 1;
      else if (pos > y) l = m + 1;
      else return true;
    }
    return false;
  }

  union(other: IntervalSet): IntervalSet {
    const s = new IntervalSet(this.list);
    for (const [a, b] of other.list) s.add(a, b);
    return s;
  }

  intersect(other: IntervalSet): IntervalSet {
    const out: [number, number][] = [];
    let i = 0;
    let j = 0;
    const A = this.list;
    const B = other.list;
    while (i < A.length && j < B.length) {
      const lo = Math.max(A[i]![0], B[j]![0]);
      const hi = Math.min(A[i]![1], B[j]![1]);
      if (lo <= hi) out.push([lo, hi]);
      if (A[i]![1] < B[j]![1]) i++;
      else j++;
    }
    const s = new IntervalSet();
    s.list = out;
    return s;
  }

  /**
   * Closes the gaps for which `gapIsEmpty(after, before)` says no archived
   * message lies strictly between two intervals.
   */
  compact(gapIsEmpty: (after: number, before: number) => boolean): void {
    const out: [number, number][] = [];
    for (const iv of this.list) {
      const last = out[out.length - 1];
      if (last && gapIsEmpty(last[1], iv[0])) last[1] = iv[1];
      else out.push([iv[0], iv[1]]);
    }
    this.list = out;
  }

  toJSON(): [number, number][] {
    return this.list.map(([a, b]) => [a, b]);
  }
}
