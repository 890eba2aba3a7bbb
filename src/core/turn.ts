// A budget per turn of the event loop. Handling stanza after stanza runs in
// promise continuations, and a burst of reads parses in one I/O phase: neither
// lets the event loop move on by itself. Once this turn has done TURN_BUDGET_MS
// of such work, the rest waits for the next turn (setImmediate), so that
// timers, other sockets and MAM queries get theirs.
const TURN_BUDGET_MS = 4;
let turnStart = -1;

/** Whether this turn of the event loop has used its budget (the first call of a turn starts it). */
export function overTurnBudget(): boolean {
  const t = performance.now();
  if (turnStart < 0) {
    turnStart = t;
    setImmediate(() => {
      turnStart = -1;
    });
    return false;
  }
  return t - turnStart > TURN_BUDGET_MS;
}
