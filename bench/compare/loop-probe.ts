// Preloaded into the mamkit server by bench:compare (node --import): measures
// the event loop's delay and writes the largest since the last reset (SIGUSR2)
// to $MAMKIT_LOOP_PROBE every 100 ms.
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.MAMKIT_LOOP_PROBE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const write = () => {
    writeFileSync(file, JSON.stringify({ maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 }));
  };
  setInterval(write, 100).unref();
  process.on("SIGUSR2", () => {
    h.reset();
    write();
  });
}
