// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside
// the commit that crosses 1,000 WAL pages, on the writing connection: copying
// those pages into the database file and syncing it stalled the event loop for
// tens of ms under load. The writer's automatic checkpoint is turned off and a
// worker thread with a connection of its own runs PASSIVE checkpoints (they
// never block a writer, and a reader never blocks them for long) every
// INTERVAL_MS while the WAL has grown.
import { Worker } from "node:worker_threads";

const INTERVAL_MS = 250;

// The worker's code, run with `eval` (no file of its own to find once built).
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 5000");
db.pragma("synchronous = " + workerData.synchronous);
let stopped = false;
function checkpoint() {
  if (stopped) return;
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
  setTimeout(checkpoint, workerData.interval);
}
parentPort.on("message", (m) => {
  if (m === "stop") {
    stopped = true;
    try { db.close(); } catch {}
    parentPort.close();
  }
});
setTimeout(checkpoint, workerData.interval);
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string, synchronous: "full" | "normal", module: string, onError: (message: string) => void) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { path, synchronous, module, interval: INTERVAL_MS } });
    this.worker.on("message", (m: { error?: string }) => {
      if (m.error) onError(m.error);
    });
    this.worker.on("error", (err) => onError(err.message));
    this.worker.unref();
  }

  /** Stops the worker (its connection closes first). */
  stop(): Promise<void> {
    this.worker.ref(); // (an unref'd worker would let the process end before it is stopped)
    return new Promise((resolve) => {
      this.worker.once("exit", () => resolve());
      this.worker.postMessage("stop");
      setTimeout(() => void this.worker.terminate(), 2000).unref();
    });
  }
}
