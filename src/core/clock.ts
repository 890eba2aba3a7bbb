// The host's notion of "now". Everything that reads time (archive timestamps,
// expiry, retention) goes through a Clock so tests can move time at will.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  private t: number;
  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.t = typeof start === "number" ? start : start.getTime();
  }
  now(): number {
    return this.t;
  }
  /** Moves the clock forward (or backward, with a negative value) by `ms`. */
  advance(ms: number): void {
    this.t += ms;
  }
  set(time: number | Date): void {
    this.t = typeof time === "number" ? time : time.getTime();
  }
}
