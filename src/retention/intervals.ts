// Sets of archive positions as sorted, disjoint, closed integer intervals.
// Delivery tracking stays a handful of intervals per client: a MAM catch-up
// adds one interval per page, live deliveries extend the last one (recorded
// from the user's previous archive position, see runStart in index.ts).

export type Interval = readonly [number, number];

export class IntervalSet {
  private list: [number, number][];

  constructor(intervals: readonly Interval[] = []) {
    this.list = [];
    // stored sets are already sorted and disjoint: take them as they are
    let sorted = true;
    for (let i = 0; i < intervals.length && sorted; i++) {
      const [a, b] = intervals[i]!;
      sorted = Number.isInteger(a) && Number.isInteger(b) && a <= b && (i === 0 || a > intervals[i - 1]![1] + 1);
    }
    if (sorted) this.list = intervals.map(([a, b]) => [a, b]);
    else for (const [a, b] of intervals) this.add(a, b);
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
    const list = this.list;
    const last = list[list.length - 1];
    // the common cases: past the end, or extending the last interval
    if (last === undefined || a > last[1] + 1) {
      list.push([a, b]);
      return;
    }
    if (a >= last[0]) {
      if (b > last[1]) last[1] = b;
      return;
    }
    // first interval that ends at or after a - 1 (could touch or overlap [a, b])
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (list[m]![1] < a - 1) lo = m + 1;
      else hi = m;
    }
    // intervals from lo on that start at or before b + 1 merge with [a, b]
    let end = lo;
    let from = a;
    let to = b;
    while (end < list.length && list[end]![0] <= b + 1) {
      from = Math.min(from, list[end]![0]);
      to = Math.max(to, list[end]![1]);
      end++;
    }
    list.splice(lo, end - lo, [from, to]);
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

  /** `compact`, with a gap test that reads the (asynchronous) archive: each gap between neighbours is asked once. */
  async compactAsync(gapIsEmpty: (after: number, before: number) => Promise<boolean>): Promise<void> {
    const empty = new Map<string, boolean>();
    for (let i = 1; i < this.list.length; i++) {
      const after = this.list[i - 1]![1];
      const before = this.list[i]![0];
      empty.set(`${after}:${before}`, await gapIsEmpty(after, before));
    }
    this.compact((after, before) => empty.get(`${after}:${before}`) === true);
  }

  toJSON(): [number, number][] {
    return this.list.map(([a, b]) => [a, b]);
  }
}
