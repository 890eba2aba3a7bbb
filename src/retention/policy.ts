// What smart retention may delete for one user: pure, from the delivery records.
import { IntervalSet } from "./intervals.js";
import type { ClientRecord } from "./tracking.js";

export type Strategy = "one" | "all";

export interface Decision {
  /** Positions whose messages may go (still subject to smart_retention_min). */
  deletable: IntervalSet;
  /** Clients not seen for longer than the client expiry: forgotten. */
  expired: string[];
  /** The clients the decision rests on. */
  active: string[];
}

/**
 * `one`: what any active client acknowledged. `all`: what every active client
 * acknowledged or what was archived before it first appeared (at or below its
 * firstSeen) — and, unlike a plain reading of that rule, only what at least
 * one of them acknowledged. No active client: nothing.
 */
export function decide(records: ReadonlyMap<string, ClientRecord>, strategy: Strategy, now: number, expiryMs: number): Decision {
  const expired: string[] = [];
  const active: string[] = [];
  for (const [client, r] of records) {
    if (now - r.lastSeen > expiryMs) expired.push(client);
    else active.push(client);
  }
  let anyone = new IntervalSet();
  let everyone: IntervalSet | undefined;
  for (const client of active) {
    const r = records.get(client)!;
    anyone = anyone.union(r.delivered);
    if (strategy === "all") {
      const mine = r.firstSeen >= 1 ? r.delivered.union(new IntervalSet([[1, r.firstSeen]])) : r.delivered;
      everyone = everyone ? everyone.intersect(mine) : mine;
    }
  }
  // under "all", a message older than every client still needs one acknowledged
  // delivery: nothing is ever deleted that no client received
  const deletable = strategy === "one" ? anyone : (everyone ?? new IntervalSet()).intersect(anyone);
  return { deletable, expired, active };
}
