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
 * firstSeen). No active client: nothing.
 */
export function decide(records: ReadonlyMap<string, ClientRecord>, strategy: Strategy, now: number, expiryMs: number): Decision {
  const expired: string[] = [];
  const active: string[] = [];
  for (const [client, r] of records) {
    if (now - r.lastSeen > expiryMs) expired.push(client);
    else active.push(client);
  }
  let deletable: IntervalSet | undefined;
  for (const client of active) {
    const r = records.get(client)!;
    if (strategy === "one") {
      deletable = deletable ? deletable.union(r.delivered) : new IntervalSet(r.delivered.intervals);
    } else {
      const mine = r.firstSeen >= 1 ? r.delivered.union(new IntervalSet([[1, r.firstSeen]])) : r.delivered;
      deletable = deletable ? deletable.intersect(mine) : mine;
    }
  }
  return { deletable: deletable ?? new IntervalSet(), expired, active };
}
