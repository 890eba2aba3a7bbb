// Scheduled tasks on node-cron. A task never overlaps with itself: a tick that
// comes while the previous run is still going is skipped (and logged), and a
// run asked for on demand joins the running one.
import cron from "node-cron";
import { type Clock, clockTimer, type TimerHandle } from "./clock.js";
import { HostError } from "./errors.js";
import type { Logger } from "./logger.js";

/** When `daily` tasks run: 04:00 local time (six-field form, seconds first). */
export const DAILY = "0 0 4 * * *";

export type TaskFn = () => void | Promise<void>;

/**
 * How scheduled tasks are started: "cron" by node-cron on the wall clock (the
 * server), "clock" by the host's clock (a test's ManualClock fires them as it
 * advances), "off" only on demand (the CLI's one-off commands).
 */
export type SchedulerMode = "cron" | "clock" | "off";

export class ScheduledJob {
  private running: Promise<void> | undefined;
  private timer: ReturnType<typeof cron.schedule> | undefined;
  private clockTimer: TimerHandle | undefined;
  /** Completed runs, and ticks skipped because a run was still going. */
  runs = 0;
  skipped = 0;

  constructor(
    readonly name: string,
    readonly expression: string,
    readonly owner: string,
    private readonly fn: TaskFn,
    private readonly log: Logger,
  ) {}

  /** Starts the node-cron timer. */
  start(): void {
    if (this.timer) return;
    this.timer = cron.schedule(this.expression, () => this.tick(), { name: `${this.owner}:${this.name}` });
  }

  /** Starts on `clock` instead: each start is a timer on it, set again as it fires. */
  startOn(clock: Clock): void {
    if (this.clockTimer) return;
    const arm = (after: number) => {
      const next = nextCronTime(this.expression, after);
      if (next === undefined) {
        this.log.warn({ task: this.name, expression: this.expression }, "scheduled task: no start within eight years; not armed");
        return;
      }
      const fire = (): unknown => {
        // (a timer may fire a little early: then it waits for the rest)
        if (clock.now() < next) {
          this.clockTimer = clockTimer(clock, next - clock.now(), fire);
          return undefined;
        }
        arm(next); // the start after this one: always later
        return this.tick();
      };
      this.clockTimer = clockTimer(clock, next - clock.now(), fire);
    };
    arm(clock.now());
  }

  stop(): void {
    void this.timer?.destroy();
    this.timer = undefined;
    this.clockTimer?.cancel();
    this.clockTimer = undefined;
  }

  private tick(): Promise<void> {
    if (this.running !== undefined) {
      this.skipped++;
      this.log.warn({ task: this.name }, "scheduled task still running from its previous start; this start is skipped");
      return this.running;
    }
    return this.run();
  }

  /** Runs now, or waits for the run already going. Errors are logged, never thrown. */
  run(): Promise<void> {
    if (this.running !== undefined) return this.running;
    const started = Date.now();
    this.running = (async () => {
      try {
        await this.fn();
        this.log.debug({ task: this.name, ms: Date.now() - started }, "scheduled task done");
      } catch (err) {
        this.log.error({ err, task: this.name }, "scheduled task failed");
      } finally {
        this.runs++;
        this.running = undefined;
      }
    })();
    return this.running;
  }

  get isRunning(): boolean {
    return this.running !== undefined;
  }
}

export function checkCronExpression(expr: string, what: string): void {
  if (typeof expr !== "string" || !cron.validate(expr)) {
    throw new HostError(
      "MAMKIT_ERR_CONFIG_INVALID",
      `${what}: expected a node-cron expression like "0 0 4 * * *" (sec min hour day month weekday), got ${JSON.stringify(expr)}`,
    );
  }
}

/** node-cron's own matcher per expression (created, never started), for what the fields alone do not say. */
const matchers = new Map<string, ReturnType<typeof cron.createTask>>();

function matches(expression: string, d: Date): boolean {
  let task = matchers.get(expression);
  if (!task) {
    task = cron.createTask(expression, () => undefined);
    matchers.set(expression, task);
  }
  return task.match(d);
}

/**
 * The first time after `after` (ms) that a node-cron expression names, in
 * local time as node-cron reads it (every field must match), within eight
 * years. Days given by node-cron's tokens (`L`, `1#2`, `15W`) are checked by
 * node-cron itself. Time only moves forward: where a local time repeats
 * (daylight saving time ending) the search goes on from the later instant.
 */
export function nextCronTime(expression: string, after: number): number | undefined {
  const f = cron.parse(expression);
  const numeric = (list: readonly unknown[]) => list.every((x) => typeof x === "number");
  const daysByFields = numeric(f.dayOfMonth) && numeric(f.dayOfWeek);
  const [sec, min, hour, day, month, weekday] = [f.second, f.minute, f.hour, f.dayOfMonth, f.month, f.dayOfWeek].map(
    (list) => new Set<unknown>(list),
  ) as Set<unknown>[];
  // Within a day the search steps in real time (to the next local second, minute or hour as the
  // fields say), so an hour that repeats when daylight saving time ends is searched twice, as
  // node-cron, which checks the local time every second, would run in it twice; a day that does
  // not match is left for the next local midnight.
  let t = Math.floor(after / 1000) * 1000 + 1000;
  const limit = after + 8 * 366 * 86_400_000;
  while (t <= limit) {
    const d = new Date(t);
    const before = t;
    if (!month!.has(d.getMonth() + 1) || (daysByFields && (!day!.has(d.getDate()) || !weekday!.has(d.getDay())))) {
      t = d.setHours(24, 0, 0, 0);
    } else if (!hour!.has(d.getHours())) t += (60 - d.getMinutes()) * 60_000 - d.getSeconds() * 1000;
    else if (!min!.has(d.getMinutes())) t += 60_000 - d.getSeconds() * 1000;
    else if (!sec!.has(d.getSeconds())) t += 1000;
    else if (!daysByFields && !matches(expression, d)) t = d.setHours(24, 0, 0, 0);
    else return t;
    if (t <= before) t = before + 1000;
  }
  return undefined;
}

/** The server's scheduled tasks, started as `mode` says (see SchedulerMode). */
export class Scheduler {
  private readonly jobs = new Set<ScheduledJob>();
  private started = false;

  constructor(
    readonly mode: SchedulerMode,
    private readonly clock: Clock,
  ) {}

  add(job: ScheduledJob): void {
    this.jobs.add(job);
    if (this.started) this.startJob(job);
  }

  private startJob(job: ScheduledJob): void {
    if (this.mode === "cron") job.start();
    else if (this.mode === "clock") job.startOn(this.clock);
  }

  remove(job: ScheduledJob): void {
    job.stop();
    this.jobs.delete(job);
  }

  /** Starts the timers of every task (called once the server has started). */
  start(): void {
    this.started = true;
    for (const j of this.jobs) this.startJob(j);
  }

  stop(): void {
    this.started = false;
    for (const j of this.jobs) j.stop();
  }

  list(): ScheduledJob[] {
    return [...this.jobs];
  }

  /**
   * Runs the tasks with this name (every task when omitted) and waits for
   * them; resolves with how many ran. A name no task has is an error that
   * lists the names there are.
   */
  async run(name?: string): Promise<number> {
    const picked = [...this.jobs].filter((j) => name === undefined || j.name === name);
    if (name !== undefined && picked.length === 0) {
      const known = [...new Set([...this.jobs].map((j) => `${j.name} (${j.owner})`))].sort();
      throw new HostError(
        "MAMKIT_ERR_TASK_UNKNOWN",
        `no scheduled task is named ${JSON.stringify(name)}; the tasks are: ${known.join(", ") || "none (no loaded module schedules one)"}`,
      );
    }
    await Promise.all(picked.map((j) => j.run()));
    return picked.length;
  }
}
