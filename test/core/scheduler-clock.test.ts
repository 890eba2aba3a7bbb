// Scheduled tasks on a clock (the test kit's, or `scheduler: "clock"`): the
// next start of a node-cron expression, across daylight saving time and with
// node-cron's day tokens, and waits longer than setTimeout takes.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import cron from "node-cron";
import { describe, expect, it } from "vitest";
import { createLogger, defineModule, Server } from "mamkit";
import { nextCronTime } from "../../src/core/scheduler.js";
import { MemoryDriver } from "../../src/storage/memory/driver.js";

const root = new URL("../..", import.meta.url).pathname;

/** Successive next starts of `expr` from `from`, computed in a process with time zone `tz`. */
function startsIn(tz: string, expr: string, from: number, count: number): number[] {
  const code = `import { nextCronTime } from ${JSON.stringify(join(root, "src/core/scheduler.ts"))};
    let t = ${from}; const out = [];
    for (let i = 0; i < ${count}; i++) { t = nextCronTime(${JSON.stringify(expr)}, t); out.push(t); }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, TZ: tz },
  });
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout) as number[];
}

describe("nextCronTime", () => {
  it("only moves forward where a local time repeats (Europe/Berlin, 2026-10-25, 02:00-03:00 twice)", () => {
    const starts = startsIn("Europe/Berlin", "0 */5 * * * *", Date.UTC(2026, 9, 24, 23, 30), 40);
    for (let i = 1; i < starts.length; i++) expect(starts[i]!).toBeGreaterThan(starts[i - 1]!);
    // every five minutes of real time, the repeated hour included (no hour skipped, none run twice in a row)
    expect(new Set(starts.slice(1).map((s, i) => s - starts[i]!))).toEqual(new Set([300_000]));
  });

  it("skips the hour that does not exist when the clocks go forward (Europe/Berlin, 2026-03-29)", () => {
    const starts = startsIn("Europe/Berlin", "0 30 * * * *", Date.UTC(2026, 2, 28, 23, 0), 3);
    // 00:30 (23:30Z), 01:30 (00:30Z), then 03:30 CEST (01:30Z): 02:30 does not exist that night
    expect(starts).toEqual([Date.UTC(2026, 2, 28, 23, 30), Date.UTC(2026, 2, 29, 0, 30), Date.UTC(2026, 2, 29, 1, 30)]);
  });

  it("reads node-cron's day tokens as node-cron does, and finds starts years away", () => {
    const after = Date.UTC(2026, 0, 1);
    for (const expr of ["0 0 4 L * *", "0 0 4 * * 1#1", "0 0 4 * * 5L"]) {
      const next = nextCronTime(expr, after);
      expect(next, expr).toBeDefined();
      const task = cron.createTask(expr, () => undefined);
      expect(task.match(new Date(next!)), expr).toBe(true);
      void task.destroy();
    }
    expect(nextCronTime("0 0 4 29 2 *", after)).toBe(new Date(2028, 1, 29, 4).getTime());
  });
});

describe('scheduler "clock" on the system clock', () => {
  it("does not run a task more than 24.8 days away early (setTimeout's limit)", async () => {
    const expr = `0 0 0 1 ${((new Date().getMonth() + 2) % 12) + 1} *`; // the 1st of the month after next
    expect(nextCronTime(expr, Date.now())! - Date.now()).toBeGreaterThan(2 ** 31);
    let runs = 0;
    const mod = defineModule("yearly", (m) => m.cron("yearly", expr, () => void runs++));
    const s = new Server({
      config: { hosts: { localhost: {} }, authentication: "none" },
      modules: [mod],
      storage: new MemoryDriver(),
      scheduler: "clock",
      logger: createLogger({ level: "silent" }),
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(runs).toBe(0);
    } finally {
      await s.stop();
    }
  });
});

describe("a module still calling addTimer", () => {
  it("is told it is addTimerMs now", () => {
    const old = defineModule("old", (m) => void (m as unknown as { addTimer(ms: number, fn: () => void): void }).addTimer(1000, () => {}));
    expect(
      () => new Server({ config: { hosts: { localhost: {} }, authentication: "none" }, modules: [old], storage: new MemoryDriver(), timers: false, logger: createLogger({ level: "silent" }) }),
    ).toThrow(/addTimer\(ms, fn\) is now addTimerMs\(ms, fn\)/);
  });
});
