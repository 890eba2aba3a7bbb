// The host's notion of "now", and its timers. Everything that reads time
// (archive timestamps, expiry, retention) goes through a Clock, and module
// timers and scheduled tasks run on it, so a test moves all of them at once.
// Every unit here is milliseconds, as Date.now().

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Calls `fn` once `ms` milliseconds of this clock have passed. A clock
   * without it runs on the real timers (setTimeout).
   */
  setTimer?(ms: number, fn: () => unknown): TimerHandle;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The longest delay setTimeout takes (a longer one fires after 1 ms). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A timer on `clock` (real timers when the clock has none, unref'd: it does
 * not keep the process alive; a wait longer than setTimeout takes, about
 * 24.8 days, is made of several).
 */
export function clockTimer(clock: Clock, ms: number, fn: () => unknown): TimerHandle {
  if (clock.setTimer) return clock.setTimer(ms, fn);
  let handle: NodeJS.Timeout;
  const wait = (left: number) => {
    handle = setTimeout(() => (left > MAX_TIMEOUT_MS ? wait(left - MAX_TIMEOUT_MS) : fn()), Math.min(Math.max(0, left), MAX_TIMEOUT_MS));
    handle.unref?.();
  };
  wait(ms);
  return { cancel: () => clearTimeout(handle) };
}

interface ManualTimer {
  due: number;
  seq: number;
  fn: () => unknown;
}

/**
 * A clock that only moves when told to. Timers set on it (module timers,
 * scheduled tasks, through the host) fire as `advance()` or `set()` passes
 * their time, in order, each seeing `now()` at its own due time.
 */
export class ManualClock implements Clock {
  private t: number;
  private timers: ManualTimer[] = [];
  private seq = 0;

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.t = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => unknown): TimerHandle {
    const timer: ManualTimer = { due: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return {
      cancel: () => {
        this.timers = this.timers.filter((x) => x !== timer);
      },
    };
  }

  /** Timers waiting to fire. */
  get pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Moves the clock forward by `ms` milliseconds (backward with a negative
   * value: no timer fires then), firing every timer due on the way, in order.
   * Await it: a timer that starts a task (a scheduled run) is waited for
   * before the next fires, and the time moves to `now + ms` at the end.
   */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      const next = this.nextDue(target);
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.due);
      // what a timer starts (a scheduled task's run) ends before the next fires, as in real time
      const r = next.fn();
      if (r instanceof Promise) await r.catch(() => {});
    }
    this.t = target;
  }

  /** Sets the time; moving forward fires the timers on the way, as `advance`. */
  set(time: number | Date): Promise<void> {
    return this.advance((typeof time === "number" ? time : time.getTime()) - this.t);
  }

  private nextDue(target: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const x of this.timers) {
      if (x.due <= target && (!best || x.due < best.due || (x.due === best.due && x.seq < best.seq))) best = x;
    }
    return best;
  }
}
