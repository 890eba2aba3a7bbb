// Scheduled tasks on node-cron. A task never overlaps with itself: a tick that
// comes while the previous run is still going is skipped (and logged), and a
// run asked for on demand joins the running one.
import cron from "node-cron";
import { HostError } from "./errors.js";
import type { Logger } from "./logger.js";

/** When `daily` tasks run: 04:00 local time (six-field form, seconds first). */
export const DAILY = "0 0 4 * * *";

export type TaskFn = () => void | Promise<void>;

export class ScheduledJob {
  private running: Promise<void> | undefined;
  private timer: ReturnType<typeof cron.schedule> | undefined;
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

  stop(): void {
    void this.timer?.destroy();
    this.timer = undefined;
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

/** The server's scheduled tasks. With `timers: false` (the test kit) tasks only run on demand. */
export class Scheduler {
  private readonly jobs = new Set<ScheduledJob>();
  private started = false;

  constructor(readonly timers: boolean) {}

  add(job: ScheduledJob): void {
    this.jobs.add(job);
    if (this.started && this.timers) job.start();
  }

  remove(job: ScheduledJob): void {
    job.stop();
    this.jobs.delete(job);
  }

  /** Starts the timers of every task (called once the server has started). */
  start(): void {
    this.started = true;
    if (this.timers) for (const j of this.jobs) j.start();
  }

  stop(): void {
    this.started = false;
    for (const j of this.jobs) j.stop();
  }

  list(): ScheduledJob[] {
    return [...this.jobs];
  }

  /** Runs the tasks with this name (every task when omitted) and waits for them. */
  async run(name?: string): Promise<number> {
    const picked = [...this.jobs].filter((j) => name === undefined || j.name === name);
    await Promise.all(picked.map((j) => j.run()));
    return picked.length;
  }
}
