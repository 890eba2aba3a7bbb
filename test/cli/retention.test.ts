// mamkit retention --dry-run / run, as a real process on a SQLite database:
// what would go and why (each rule of decide()), ids and dates, untracked
// sessions, unknown users, --json.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Accounts } from "../../src/auth/accounts.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { ArchiveRef } from "../../src/storage/types.js";
import { createTestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-retention-"));
const db = join(dir, "db.sqlite");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PHONE = "11111111-1111-4111-8111-111111111111";
const LAPTOP = "22222222-2222-4222-8222-222222222222";
const DESK = "33333333-3333-4333-8333-333333333333";
const DAY = 86_400_000;

function configFile(name: string, extra: Record<string, unknown>): string {
  const p = join(dir, name);
  const base = { storage: { driver: "sqlite", database: db }, modules_enabled: ["mam_smart_retention"], hosts: { localhost: {} } };
  writeFileSync(p, JSON.stringify({ ...base, ...extra }));
  return p;
}
const ALL = configFile("all.json", { smart_retention_strategy: "all", smart_retention_min: "1d" });
const ONE = configFile("one.json", {});

function mamkit(config: string, ...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), ...args, "--config", config], {
    cwd: root,
    encoding: "utf8",
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$/, "Z");
const bob: ArchiveRef[] = [];
const dave: ArchiveRef[] = [];

beforeAll(async () => {
  // sessions through the test kit on the file: one without a client id, one with an id
  // that is no UUID, one that never enables stream management, one tracked
  const t = createTestServer({
    storage: new SqliteDriver(db),
    config: { modules_enabled: ["smacks", "mam", "mam_smart_retention"], authentication: "internal_hashed" },
  });
  const accounts = new Accounts(t.host());
  for (const u of ["bob", "dave"]) await accounts.create(u, "pw");
  t.connect("bob@localhost/legacy", { streamManagement: true });
  t.connect("bob@localhost/odd", { clientId: "not-a-uuid", streamManagement: true });
  t.connect("bob@localhost/desk", { clientId: DESK, streamManagement: false }).close();
  t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await t.settle();
  await t.stop();

  // bob's archive: 1-7 two days old, 8-9 new; two clients (all their tracking set here)
  const d = new SqliteDriver(db);
  const a = d.archive("localhost", "archive");
  const old = Date.now() - 2 * DAY;
  for (let i = 1; i <= 9; i++) {
    bob.push(await a.append("bob", { stanza: xml("message", {}, xml("body", {}, `m${i}`)), when: i <= 7 ? old + i * 1000 : Date.now(), with: "carol@localhost" }));
  }
  for (let i = 1; i <= 2; i++) dave.push(await a.append("dave", { stanza: xml("message", {}, xml("body", {}, `d${i}`)), when: old, with: "carol@localhost" }));
  const p = (n: number) => bob[n - 1]!.pos;
  const m = d.map("localhost", "mam_smart_retention");
  await m.set("bob", PHONE, { delivered: [[p(2), p(4)], [p(8), p(8)]], firstSeen: p(3), lastSeen: Date.now() });
  await m.set("bob", LAPTOP, { delivered: [[p(4), p(4)], [p(6), p(6)], [p(8), p(8)]], firstSeen: p(5), lastSeen: Date.now() });
  await d.close();
});

describe("mamkit retention --dry-run explains itself", () => {
  it("strategy all: each rule, with positions, ids and dates, in runs", () => {
    const r = mamkit(ALL, "retention", "--dry-run", "--user", "bob@localhost");
    expect([r.code, r.err]).toEqual([0, ""]);
    const p = (n: number) => bob[n - 1]!;
    const span = (a: number, b: number) =>
      a === b ? `at ${iso(p(a).when)} (id ${p(a).id})` : `from ${iso(p(a).when)} (id ${p(a).id}) to ${iso(p(b).when)} (id ${p(b).id})`;
    expect(r.out).toContain("bob@localhost: would delete 3 of 9 message(s) (strategy all, smart_retention_min 1d)");
    expect(r.out).toContain(`  client ${PHONE}: acknowledged positions ${p(2).pos}-${p(4).pos}, ${p(8).pos}; first seen at position ${p(3).pos}`);
    const runs = [
      `keep 1 message(s), position ${p(1).pos}: not acknowledged by any tracked client (archived before every client first appeared, but strategy all needs one acknowledgement)\n      ${span(1, 1)}`,
      `delete 2 message(s), positions ${p(2).pos}-${p(3).pos}: acknowledged by client ${PHONE}; archived at or before the first-seen position of client ${LAPTOP}\n      ${span(2, 3)}`,
      `delete 1 message(s), position ${p(4).pos}: acknowledged by client ${PHONE}, client ${LAPTOP}\n      ${span(4, 4)}`,
      `keep 1 message(s), position ${p(5).pos}: not acknowledged by any tracked client\n      ${span(5, 5)}`,
      `keep 1 message(s), position ${p(6).pos}: strategy all: waiting for client ${PHONE} (not acknowledged by it, archived after it first appeared)\n      ${span(6, 6)}`,
      `keep 1 message(s), position ${p(7).pos}: not acknowledged by any tracked client\n      ${span(7, 7)}`,
      `keep 1 message(s), position ${p(8).pos}: acknowledged, but younger than smart_retention_min (1d)\n      ${span(8, 8)}`,
      `keep 1 message(s), position ${p(9).pos}: not acknowledged by any tracked client\n      ${span(9, 9)}`,
    ];
    expect(r.out).toContain(`  archive, oldest first:\n${runs.map((x) => `    ${x}\n`).join("")}`);
  });

  it("strategy one: what any client acknowledged goes, with no minimum age", () => {
    const r = mamkit(ONE, "retention", "--dry-run", "-u", "bob@localhost");
    const p = (n: number) => bob[n - 1]!.pos;
    expect(r.out).toContain("bob@localhost: would delete 5 of 9 message(s) (strategy one)");
    expect(r.out).toContain(`    keep 1 message(s), position ${p(1)}: not acknowledged by any tracked client\n`);
    expect(r.out).toContain(`    delete 2 message(s), positions ${p(2)}-${p(3)}: acknowledged by client ${PHONE}\n`);
    expect(r.out).toContain(`    delete 1 message(s), position ${p(4)}: acknowledged by client ${PHONE}, client ${LAPTOP}\n`);
    expect(r.out).toContain(`    delete 1 message(s), position ${p(6)}: acknowledged by client ${LAPTOP}\n`);
    expect(r.out).toContain(`    delete 1 message(s), position ${p(8)}: acknowledged by client ${PHONE}, client ${LAPTOP}\n`);
  });

  it("a user without tracked clients keeps everything", () => {
    const r = mamkit(ALL, "retention", "--dry-run", "--user", "dave@localhost");
    expect(r.out).toContain("dave@localhost: would delete 0 of 2 message(s)");
    expect(r.out).toContain("  no tracked client\n");
    expect(r.out).toContain(
      `    keep 2 message(s), positions ${dave[0]!.pos}-${dave[1]!.pos}: the user has no tracked client (none, or all expired): nothing of it is deleted\n`,
    );
    expect(r.out).toContain("  untracked sessions: none recorded\n");
  });

  it("lists the user's recent sessions that were not tracked, and why", () => {
    const r = mamkit(ALL, "retention", "--dry-run", "--user", "bob@localhost");
    const at = iso(Date.UTC(2026, 0, 1)); // the test kit's clock
    expect(r.out).toContain(
      "  recent sessions not tracked (oldest first):\n" +
        `    ${at} bob@localhost/legacy: no SASL2 user-agent id (legacy bind, or SASL2 without <user-agent id>)\n` +
        `    ${at} bob@localhost/odd: its SASL2 user-agent id is not a UUID (user-agent id "not-a-uuid")\n` +
        `    ${at} bob@localhost/desk: it never enabled stream management (XEP-0198)\n`,
    );
    expect(r.out).not.toContain("bob@localhost/phone");
  });

  it("--json is one document saying the same as the text", () => {
    const text = mamkit(ALL, "retention", "--dry-run", "--user", "bob@localhost").out;
    const r = mamkit(ALL, "retention", "--dry-run", "--user", "bob@localhost", "--json");
    expect([r.code, r.err]).toEqual([0, ""]);
    const doc = JSON.parse(r.out);
    expect(doc).toMatchObject({ dryRun: true, hosts: [{ host: "localhost", strategy: "all", minAge: 86400, deleted: 3 }] });
    const u = doc.hosts[0].users[0];
    expect(u).toMatchObject({ jid: "bob@localhost", deleted: 3, messages: 9 });
    expect(u.clients.map((c: { client: string }) => c.client).sort()).toEqual([PHONE, LAPTOP]);
    expect(u.untracked.map((s: { resource: string; reason: string }) => `${s.resource} ${s.reason}`)).toEqual([
      "legacy no-client-id",
      "odd bad-client-id",
      "desk no-stream-management",
    ]);
    expect(u.runs.map((x: { rule: string }) => x.rule)).toEqual([
      "unacknowledged",
      "acknowledged",
      "acknowledged",
      "unacknowledged",
      "waiting",
      "unacknowledged",
      "too-young",
      "unacknowledged",
    ]);
    expect(u.runs[4]).toMatchObject({ action: "keep", rule: "waiting", waitingFor: [PHONE], count: 1 });
    expect(u.runs[1]).toMatchObject({ action: "delete", acknowledgedBy: [PHONE], predates: [LAPTOP], count: 2 });
    // every run of the JSON is a run of the text, with the same positions, ids and dates
    for (const run of u.runs) {
      const where = run.count > 1 ? `positions ${run.first.pos}-${run.last.pos}` : `position ${run.first.pos}`;
      expect(text).toContain(`    ${run.action} ${run.count} message(s), ${where}: `);
      expect(text).toContain(run.count > 1 ? `from ${run.first.when} (id ${run.first.id}) to ${run.last.when} (id ${run.last.id})` : `at ${run.first.when} (id ${run.first.id})`);
    }
    expect(u.runs.reduce((n: number, x: { count: number }) => n + x.count, 0)).toBe(9);
  });

  it("refuses an unknown account, an unknown host and a host without the module", () => {
    expect(mamkit(ALL, "retention", "--dry-run", "--user", "nobody@localhost")).toMatchObject({ code: 1, out: "", err: "mamkit retention: no account nobody@localhost\n" });
    expect(mamkit(ALL, "retention", "--dry-run", "--user", "bob@elsewhere.example")).toMatchObject({
      code: 1,
      err: `mamkit retention: elsewhere.example is not a host in ${ALL}\n`,
    });
    expect(mamkit(ALL, "retention", "--dry-run", "--user", "bob@localhost/phone").code).toBe(2);
  });
});

describe("mamkit retention run", () => {
  it("deletes what the dry run said, nothing more", async () => {
    const r = mamkit(ALL, "retention", "run");
    expect(r.code).toBe(0);
    expect(r.out).toContain("bob@localhost: deleted 3 message(s) (strategy all, smart_retention_min 1d)");
    const d = new SqliteDriver(db);
    expect((await d.archive("localhost", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"))).toEqual(["m1", "m5", "m6", "m7", "m8", "m9"]);
    await d.close();
  });

  it("refuses other uses", () => {
    expect(mamkit(ALL, "retention").code).toBe(2);
    expect(mamkit(ALL, "retention", "run", "--dry-run").code).toBe(2);
    expect(mamkit(ALL, "retention", "now").err).toMatch(/^mamkit retention: unexpected argument "now"\n/);
  });
});
