// Why a dry run would delete or keep each of a user's archived messages: the
// rule of policy.ts's decide() that settles it, message by message, in runs
// of consecutive messages with the same reason. It only explains: what goes is
// still decided by decide() (the action of each message is read from its
// `deletable` set and smart_retention_min), and nothing is deleted here.
import type { ArchiveStore } from "../storage/types.js";
import type { Decision, Strategy } from "./policy.js";
import type { ClientRecord } from "./tracking.js";
import type { UntrackedSession } from "./untracked.js";

/** A message's archive position, id and date (ms). */
export interface MessageRef {
  pos: number;
  id: string;
  when: number;
}

export type Reason =
  /** Would go: acknowledged by these clients (under `all`, the others had it by `predates`). */
  | { rule: "acknowledged"; acknowledgedBy: string[]; predates: string[] }
  /** Kept: it would go, but it is younger than smart_retention_min. */
  | { rule: "too-young" }
  /** Kept: the user has no tracked client (none, or all expired). */
  | { rule: "no-clients" }
  /**
   * Kept: no tracked client acknowledged it. `predatesAll`: under `all`, it
   * was archived at or before every client's first-seen position, but `all`
   * still needs one acknowledgement.
   */
  | { rule: "unacknowledged"; predatesAll: boolean }
  /** Kept (`all`): acknowledged by some clients, waiting for these (not acknowledged, archived after they first appeared). */
  | { rule: "waiting"; waitingFor: string[] };

export interface Run {
  action: "delete" | "keep";
  reason: Reason;
  count: number;
  first: MessageRef;
  last: MessageRef;
}

export interface Explanation {
  /** The user's archived messages looked at. */
  messages: number;
  /** Of which would go (equal to the dry run's count). */
  deletable: number;
  runs: Run[];
  /** The user's recent sessions that were not tracked (oldest first). */
  untracked: UntrackedSession[];
}

export interface ExplainInput {
  archive: ArchiveStore;
  user: string;
  records: ReadonlyMap<string, ClientRecord>;
  decision: Decision;
  strategy: Strategy;
  /** The newest `when` that is old enough (smart_retention_min); undefined: no minimum. */
  end: number | undefined;
  untracked: UntrackedSession[];
}

const PAGE = 500;

/** The reason of one message at `pos` (archived at `when`). */
export function reasonOf(pos: number, when: number, i: Omit<ExplainInput, "archive" | "user" | "untracked">): { action: "delete" | "keep"; reason: Reason } {
  const { records, decision, strategy, end } = i;
  const active = decision.active;
  const acked = (c: string) => records.get(c)!.delivered.has(pos);
  const predates = (c: string) => {
    const fs = records.get(c)!.firstSeen;
    return fs >= 1 && pos <= fs;
  };
  const acknowledgedBy = active.filter(acked);
  if (decision.deletable.has(pos)) {
    if (end !== undefined && when > end) return { action: "keep", reason: { rule: "too-young" } };
    return {
      action: "delete",
      reason: { rule: "acknowledged", acknowledgedBy, predates: strategy === "all" ? active.filter((c) => !acked(c) && predates(c)) : [] },
    };
  }
  if (active.length === 0) return { action: "keep", reason: { rule: "no-clients" } };
  const had = (c: string) => acked(c) || predates(c);
  if (acknowledgedBy.length === 0) {
    return { action: "keep", reason: { rule: "unacknowledged", predatesAll: strategy === "all" && active.every(had) } };
  }
  return { action: "keep", reason: { rule: "waiting", waitingFor: active.filter((c) => !had(c)) } };
}

/** Reads the user's whole archive, oldest first, page by page, and explains it in runs. */
export async function explain(input: ExplainInput): Promise<Explanation> {
  const out: Explanation = { messages: 0, deletable: 0, runs: [], untracked: input.untracked };
  let current: (Run & { key: string }) | undefined;
  let after = 0;
  for (;;) {
    const { items } = await input.archive.find(input.user, { afterPos: after, limit: PAGE });
    for (const item of items) {
      const ref: MessageRef = { pos: item.pos, id: item.id, when: item.when };
      const { action, reason } = reasonOf(item.pos, item.when, input);
      out.messages++;
      if (action === "delete") out.deletable++;
      const key = JSON.stringify([action, reason]);
      if (current?.key === key) {
        current.count++;
        current.last = ref;
      } else {
        current = { key, action, reason, count: 1, first: ref, last: ref };
        out.runs.push(current);
      }
    }
    if (items.length < PAGE) break;
    after = items[items.length - 1]!.pos;
  }
  out.runs = out.runs.map(({ action, reason, count, first, last }) => ({ action, reason, count, first, last }));
  return out;
}
