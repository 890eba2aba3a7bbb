// What `mamkit retention` prints: text for people, or (--json) one document
// for scripts. Both are made from the same reports (docs/cli.md shows them).
import type { CleanupReport, ClientReport, Reason, Run, UntrackedSession, UserReport } from "../../retention/index.js";
import { UNTRACKED_REASONS } from "../../retention/untracked.js";

/** ISO date of a time in ms, without the milliseconds the archive does not keep. */
export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$/, "Z");

/** A period in seconds, as the config would write it. */
export function period(seconds: number): string {
  if (seconds <= 0) return "none";
  for (const [unit, n] of [["d", 86400], ["h", 3600], ["m", 60]] as const) if (seconds % n === 0) return `${seconds / n}${unit}`;
  return `${seconds}s`;
}

const list = (clients: readonly string[]) => clients.map((c) => `client ${c}`).join(", ");

export function describeReason(r: Reason, minAge: number): string {
  switch (r.rule) {
    case "acknowledged":
      return `acknowledged by ${list(r.acknowledgedBy)}${r.predates.length > 0 ? `; archived at or before the first-seen position of ${list(r.predates)}` : ""}`;
    case "too-young":
      return `acknowledged, but younger than smart_retention_min (${period(minAge)})`;
    case "no-clients":
      return "the user has no tracked client (none, or all expired): nothing of it is deleted";
    case "unacknowledged":
      return r.predatesAll
        ? "not acknowledged by any tracked client (archived before every client first appeared, but strategy all needs one acknowledgement)"
        : "not acknowledged by any tracked client";
    case "waiting":
      return `strategy all: waiting for ${list(r.waitingFor)} (not acknowledged by it, archived after it first appeared)`;
  }
}

const ivs = (c: ClientReport) => c.delivered.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ") || "nothing";

function runText(run: Run, minAge: number): string {
  const what = `${run.action === "delete" ? "delete" : "keep"} ${run.count} message(s), position${run.count > 1 ? `s ${run.first.pos}-${run.last.pos}` : ` ${run.first.pos}`}`;
  const span =
    run.count > 1
      ? `from ${iso(run.first.when)} (id ${run.first.id}) to ${iso(run.last.when)} (id ${run.last.id})`
      : `at ${iso(run.first.when)} (id ${run.first.id})`;
  return `    ${what}: ${describeReason(run.reason, minAge)}\n      ${span}\n`;
}

function untrackedText(jid: string, s: UntrackedSession): string {
  const id = s.clientId !== undefined ? ` (user-agent id ${JSON.stringify(s.clientId)})` : "";
  return `    ${iso(s.at)} ${jid}/${s.resource}: ${UNTRACKED_REASONS[s.reason] ?? s.reason}${id}\n`;
}

/** The text of one host's report. */
export function reportText(report: CleanupReport): string {
  const dry = report.dryRun;
  let out = "";
  for (const u of report.users) {
    if (!dry && u.deleted === 0 && !u.error) continue;
    const jid = `${u.user}@${report.host}`;
    const of = u.explanation ? ` of ${u.explanation.messages}` : "";
    const min = report.minAge > 0 ? `, smart_retention_min ${period(report.minAge)}` : "";
    out += `${jid}: ${dry ? "would delete" : "deleted"} ${u.deleted}${of} message(s) (strategy ${report.strategy}${min})${u.error ? ` — error: ${u.error}` : ""}\n`;
    if (!dry) continue;
    for (const c of u.clients) {
      out += `  client ${c.client}: acknowledged positions ${ivs(c)}; first seen at position ${c.firstSeen}; last seen ${iso(c.lastSeen)}${c.expired ? " (expired: forgotten at the next cleanup)" : ""}\n`;
    }
    if (u.clients.length === 0) out += "  no tracked client\n";
    const e = u.explanation;
    if (!e) continue;
    if (e.runs.length > 0) out += "  archive, oldest first:\n";
    for (const run of e.runs) out += runText(run, report.minAge);
    if (e.messages === 0) out += "  archive: empty\n";
    if (e.untracked.length === 0) out += "  untracked sessions: none recorded\n";
    else {
      out += "  recent sessions not tracked (oldest first):\n";
      for (const s of e.untracked) out += untrackedText(jid, s);
    }
  }
  const n = report.users.length;
  out += `${report.host}: ${dry ? "would delete" : "deleted"} ${report.deleted} message(s) for ${n} user(s) in ${report.ms} ms\n`;
  return out;
}

/** One user in the JSON document. */
function userJson(host: string, u: UserReport) {
  const e = u.explanation;
  return {
    jid: `${u.user}@${host}`,
    deleted: u.deleted,
    ...(u.error !== undefined ? { error: u.error } : {}),
    clients: u.clients.map((c) => ({ client: c.client, delivered: c.delivered, firstSeen: c.firstSeen, lastSeen: iso(c.lastSeen), expired: c.expired })),
    ...(e
      ? {
          messages: e.messages,
          runs: e.runs.map((r) => ({
            action: r.action,
            ...r.reason,
            count: r.count,
            first: { pos: r.first.pos, id: r.first.id, when: iso(r.first.when) },
            last: { pos: r.last.pos, id: r.last.id, when: iso(r.last.when) },
          })),
          untracked: e.untracked.map((s) => ({
            resource: s.resource,
            at: iso(s.at),
            reason: s.reason,
            ...(s.clientId !== undefined ? { clientId: s.clientId } : {}),
          })),
        }
      : {}),
  };
}

/** The --json document of every host's report. */
export function reportJson(reports: readonly CleanupReport[], dryRun: boolean): string {
  const doc = {
    dryRun,
    hosts: reports.map((r) => ({
      host: r.host,
      strategy: r.strategy,
      minAge: r.minAge,
      deleted: r.deleted,
      ms: r.ms,
      users: r.users.map((u) => userJson(r.host, u)),
    })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
