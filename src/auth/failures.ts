// Failed authentication attempts slow the next ones down, per account and per
// address: after 2 failures each further failure is answered later, doubling
// from 250 ms up to 2 s. Only failures wait: a correct password is answered at
// once, so an attacker guessing at an account cannot lock its owner out. Every
// attempt gets its answer within 2 s. A success clears the account's and the
// address's count; counts are forgotten after 15 minutes without failures.

const FREE = 2;
const BASE_MS = 250;
const MAX_MS = 2000;
const FORGET_MS = 15 * 60_000;

interface Entry {
  count: number;
  last: number;
}

export class FailureTracker {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Records a failure; returns how long to wait before answering it. */
  failed(host: string, user: string, address: string): number {
    const a = this.bump(`u:${user}@${host}`);
    const b = this.bump(`a:${address}`);
    const n = Math.max(a, b);
    return n <= FREE ? 0 : Math.min(MAX_MS, BASE_MS * 2 ** (n - FREE - 1));
  }

  succeeded(host: string, user: string, address: string): void {
    this.entries.delete(`u:${user}@${host}`);
    this.entries.delete(`a:${address}`);
  }

  private bump(key: string): number {
    const t = this.now();
    if (this.entries.size > 10_000) {
      for (const [k, e] of this.entries) if (t - e.last > FORGET_MS) this.entries.delete(k);
    }
    const e = this.entries.get(key);
    const count = e && t - e.last <= FORGET_MS ? e.count + 1 : 1;
    this.entries.set(key, { count, last: t });
    return count;
  }
}
