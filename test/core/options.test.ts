// Options declared once: a module's declarations give it typed values in
// `module.options` (host value, else global, else the declared default).
import { expect, it } from "vitest";
import { defineModule } from "../../src/core/module.js";
import { createServer } from "../../src/server.js";
import { captureLog } from "../helpers/log.js";

const seen: Record<string, unknown>[] = [];
const probe = defineModule(
  "probe",
  (module) => {
    const o = module.options;
    const n: number = o.probe_count; // typed: a number (it has a default)
    const every: number = o.probe_every; // a period, in seconds
    const label: string | undefined = o.probe_label; // no default: may be undefined
    seen.push({ host: module.host, n, every, label, when: o.probe_when, other: module.readOption("probe_other", { type: "boolean", default: true }) });
  },
  {
    options: {
      probe_count: { type: "number", min: 1, integer: true, default: 3 },
      probe_every: { type: "period", default: "2m" },
      probe_label: { type: "string" },
      probe_when: { type: "cron", default: "0 0 4 * * *" },
    },
  },
);

function start(config: Record<string, unknown>) {
  return createServer({ config: { storage: "memory", ...config }, modules: [probe], logger: captureLog().logger, timers: false });
}

it("gives declared defaults, global values and host values, typed and checked", async () => {
  seen.length = 0;
  const s = start({ probe_count: 5, hosts: { "a.example": {}, "b.example": { probe_count: 7, probe_every: "1h", probe_label: "b" } } });
  expect(seen).toEqual([
    { host: "a.example", n: 5, every: 120, label: undefined, when: "0 0 4 * * *", other: true },
    { host: "b.example", n: 7, every: 3600, label: "b", when: "0 0 4 * * *", other: true },
  ]);
  await s.stop();
});

it("refuses a bad value or a bad cron expression at start-up, naming the option path and the module", () => {
  expect(() => start({ hosts: { "a.example": { probe_count: 0 } } })).toThrow(/hosts\["a.example"\].probe_count \(module probe\): expected a whole number of at least 1, got 0/);
  expect(() => start({ probe_when: "daily", hosts: { "a.example": {} } })).toThrow(/probe_when \(module probe\): expected a node-cron expression/);
});
