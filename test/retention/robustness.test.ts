// Smart retention when things go wrong around it: another writer on the same
// SQLite file, a crash right after a client first appears, a failed tracking
// write, deliveries and sightings while a cleanup runs, an account deleted
// during its cleanup. In each, nothing a client never received may go.
// (Found by an independent review of the tracking and cleanup code.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import type { CleanupReport } from "../../src/retention/index.js";
import Database from "better-sqlite3";
import { PROSODY_SCHEMA, SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { createTestServer, type FakeClient, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const PHONE = "11111111-1111-4111-8111-111111111111";
const LAPTOP = "22222222-2222-4222-8222-222222222222";
const TABLET = "33333333-3333-4333-8333-333333333333";
const DAY = 86_400_000;
const cfg = (extra: Record<string, unknown> = {}) => ({ modules_enabled: ["mam_smart_retention"], archive_expires_after: "never", ...extra });
const say = (from: FakeClient, body: string, to = "bob@localhost") => from.send(xml("message", { to, type: "chat" }, xml("body", {}, body)));
const bodies = async (t: TestServer) => (await t.host().openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"));
/** Every client's stanzas handled, and every write so far durable (the tracker's immediate ones too). */
async function quiet(t: TestServer): Promise<void> {
  await t.settle();
  await new Promise((r) => setImmediate(r));
  await t.server.storage.durable();
}
/** Makes the driver's row inserts into `store` throw (a failed write) while `failing()` says so. */
function failInserts(drv: SqliteDriver, store: string, failing: () => boolean, message = "SQLITE_BUSY"): () => void {
  const real = drv.insertRow.bind(drv);
  (drv as { insertRow: unknown }).insertRow = (h: string, u: string, st: string, k: string, ty: string, v: string) => {
    if (st === store && failing()) throw new Error(message);
    return real(h, u, st, k, ty, v);
  };
  return () => {
    (drv as { insertRow: unknown }).insertRow = real;
  };
}

const servers: TestServer[] = [];
const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-retention-"));
  dirs.push(dir);
  return join(dir, "db.sqlite");
}
afterEach(async () => {
  vi.useRealTimers();
  for (const s of servers.splice(0)) {
    try {
      await s.stop();
    } catch {
      // already stopped (the crash case)
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Strategy `all` on SQLite; bob's phone has acknowledged "old" from carol. */
async function allWithPhone() {
  const s = createTestServer({ storage: "sqlite", config: cfg({ smart_retention_strategy: "all" }) });
  servers.push(s);
  const carol = s.connect("carol@localhost/x");
  const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await s.settle();
  await say(carol, "old");
  await phone.ack();
  await quiet(s);
  return { s, carol, phone, drv: s.server.storage as SqliteDriver };
}

/** carol sends n1 and n2, which only the phone gets and acknowledges: a cleanup must keep both for the laptop. */
async function laptopMissesTwo(s: TestServer, carol: FakeClient, phone: FakeClient, laptop: FakeClient): Promise<void> {
  await say(carol, "n1");
  await say(carol, "n2");
  await phone.ack();
  await laptop.ack();
  await s.runScheduled("smart retention cleanup");
  expect(await bodies(s)).toEqual(expect.arrayContaining(["n1", "n2"]));
}

describe("smart retention robustness", () => {
  it("another server writing to the same file: its item for the user is never covered by this one's acks", async () => {
    const file = tempFile();
    const a = createTestServer({ storage: new SqliteDriver(file), config: cfg() });
    const b = createTestServer({ storage: new SqliteDriver(file), config: cfg() });
    servers.push(a, b);
    const carolA = a.connect("carol@localhost/x");
    const carolB = b.connect("carol@localhost/x");
    const phone = a.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    // (one thread, two connections: one must not write while the other's commit is pending)
    await quiet(a);
    await quiet(b);
    await say(carolA, "m1");
    await phone.ack();
    await say(carolB, "m2 through the other server");
    await say(carolA, "m3");
    await phone.ack();
    expect(phone.take().filter((s) => s.name === "message").map((s) => s.getChildText("body"))).toEqual(["m1", "m3"]);
    await a.runScheduled("smart retention cleanup");
    expect(await bodies(a)).toEqual(["m2 through the other server"]);
  });

  it("all: a crash right after a client first appeared does not make it look newer than it is", async () => {
    const file = tempFile();
    const s1 = createTestServer({ storage: new SqliteDriver(file), config: cfg({ smart_retention_strategy: "all" }) });
    const c1 = s1.connect("carol@localhost/x");
    const p1 = s1.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await s1.settle();
    await say(c1, "old");
    await p1.ack();
    s1.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true });
    // what is written at once is durable within the turn; the buffered (the ack: a timer a second away) is not
    await quiet(s1);
    // the process dies: nothing buffered is written
    (s1.server.storage as SqliteDriver).db.close();
    const s2 = createTestServer({ storage: new SqliteDriver(file), config: cfg({ smart_retention_strategy: "all" }) });
    servers.push(s2);
    const c2 = s2.connect("carol@localhost/x");
    const p2 = s2.connect("bob@localhost/phone2", { clientId: PHONE, streamManagement: true });
    await s2.settle();
    await say(c2, "n1");
    await say(c2, "n2");
    await p2.ack(); // the laptop is offline: it never gets n1, n2
    s2.connect("bob@localhost/laptop2", { clientId: LAPTOP, streamManagement: true });
    await s2.settle();
    await s2.runScheduled("smart retention cleanup");
    expect(await bodies(s2)).toEqual(expect.arrayContaining(["n1", "n2"]));
  });

  it("all: a tracking write that fails is kept and written later; the cleanup waits for it", async () => {
    const { s, carol, phone, drv } = await allWithPhone();
    // (the tracker writes through the map store: its first write fails)
    let failures = 1;
    failInserts(drv, "mam_smart_retention", () => failures-- > 0);
    // a laptop (priority -1: bare messages go to the phone only) first appears while writes fail
    const laptop = s.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true, presence: -1 });
    await quiet(s);
    expect(failures).toBeLessThan(1); // the write was tried, and failed
    expect(s.logs.some((l) => l.msg === "could not save delivery tracking")).toBe(true);
    await laptopMissesTwo(s, carol, phone, laptop);
  });

  it("a cleanup that cannot write the buffered tracking does not run", async () => {
    const s = createTestServer({ storage: "sqlite", config: cfg() });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await s.settle();
    await say(carol, "m1");
    await phone.ack();
    await quiet(s);
    const drv = s.server.storage as SqliteDriver;
    // every write fails (the tracker's flush writes through the map store)
    const restore = failInserts(drv, "mam_smart_retention", () => true, "disk I/O error");
    await expect(s.host().events.fire("smart-retention-run", {})).rejects.toThrow(/disk I\/O error/);
    restore();
    expect(await bodies(s)).toEqual(["m1"]);
    await s.runScheduled("smart retention cleanup"); // writes work again: the buffered ack was kept
    expect(await bodies(s)).toEqual([]);
  });

  it("deliveries written while a user's cleanup runs are merged into its save, not overwritten", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const s = createTestServer({ storage: "sqlite", config: cfg({ smart_retention_batch_size: 1, smart_retention_min: "1h" }) });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await s.settle();
    for (let i = 0; i < 5; i++) await say(carol, `m${i}`);
    await phone.ack();
    await s.clock.advance(2 * 3_600_000);
    const run = s.host().events.fire("smart-retention-run", {}) as Promise<unknown>;
    await new Promise((r) => setImmediate(r)); // between two batches
    await say(carol, "late");
    await phone.ack();
    await vi.advanceTimersByTimeAsync(1000); // the buffered write lands during the cleanup
    await run;
    await s.settle();
    const rec = (await s.host().openStore("mam_smart_retention", "map").get("bob", PHONE)) as { delivered: number[][]; lastSeen: number };
    const late = (await s.host().openStore("archive", "archive").find("bob")).items.find((i) => i.stanza.getChildText("body") === "late")!;
    expect(await bodies(s)).toEqual(["late"]); // younger than smart_retention_min
    expect(rec.delivered.some(([x, y]) => x! <= late.pos && late.pos <= y!)).toBe(true);
    expect(rec.lastSeen).toBe(s.clock.now());
  });

  it("all: a client seen while a cleanup runs keeps its last-seen time and keeps blocking", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const s = createTestServer({
      storage: "sqlite",
      config: cfg({ smart_retention_strategy: "all", smart_retention_client_expiry: "7d", smart_retention_batch_size: 1 }),
    });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    const laptop = s.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true });
    await s.settle();
    for (let i = 0; i < 5; i++) await say(carol, `m${i}`);
    await phone.ack();
    await laptop.ack();
    laptop.close();
    await vi.advanceTimersByTimeAsync(1000);
    await s.settle();
    await s.clock.advance(6.9 * DAY);
    await phone.ack();
    const run = s.host().events.fire("smart-retention-run", {}) as Promise<unknown>;
    await new Promise((r) => setImmediate(r)); // between two batches of bob's cleanup
    const laptop2 = s.connect("bob@localhost/laptop2", { clientId: LAPTOP, streamManagement: true }); // seen now
    await vi.advanceTimersByTimeAsync(1000); // written during the cleanup
    await run;
    laptop2.close();
    await say(carol, "n1");
    await phone.ack(); // the laptop is offline: it never gets n1
    await s.clock.advance(0.2 * DAY); // the laptop was seen 0.2 days ago: still active
    await s.runScheduled("smart retention cleanup");
    expect(await bodies(s)).toContain("n1");
  });

  it("refuses to start on an archive table that can give a position out again (no AUTOINCREMENT)", () => {
    const file = tempFile();
    const db = new Database(file);
    for (const sql of PROSODY_SCHEMA) db.exec(sql.replace(" AUTOINCREMENT", ""));
    db.close();
    expect(() => createTestServer({ storage: new SqliteDriver(file), config: cfg() })).toThrow(/not AUTOINCREMENT/);
    // mam alone is fine there
    const s = createTestServer({ storage: new SqliteDriver(file), config: { modules_enabled: ["mam"] } });
    servers.push(s);
  });

  it("all: a failed read when a client first appears still records it as seen from the start", async () => {
    const { s, carol, phone, drv } = await allWithPhone();
    const real = drv.row.bind(drv);
    let failures = 1;
    (drv as { row: unknown }).row = (h: string, u: string, st: string, k: string) => {
      if (st === "mam_smart_retention" && failures > 0) {
        failures--;
        throw new Error("SQLITE_BUSY");
      }
      return real(h, u, st, k);
    };
    const laptop = s.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true, presence: -1 });
    await quiet(s);
    expect(failures).toBe(0); // the read was tried, and failed
    await laptopMissesTwo(s, carol, phone, laptop);
  });

  it("all: an account deletion whose purge fails keeps the buffered tracking", async () => {
    const s = createTestServer({ storage: "sqlite", config: cfg({ smart_retention_strategy: "all" }) });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    await s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true }).ack();
    await s.settle();
    await say(carol, "old");
    await quiet(s);
    const drv = s.server.storage as SqliteDriver;
    let failing = true;
    const logged = () => s.logs.filter((l) => l.msg === "could not save delivery tracking").length;
    const before = logged();
    failInserts(drv, "mam_smart_retention", () => failing);
    s.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true, presence: -1 }); // buffered only
    await quiet(s);
    expect(logged()).toBeGreaterThan(before); // its immediate write failed
    failing = false;
    (drv as { deleteUser: unknown }).deleteUser = () => {
      throw new Error("SQLITE_BUSY: database is locked");
    };
    await expect(s.host().deleteUser("bob")).rejects.toThrow(/SQLITE_BUSY/); // the account stays
    const phone = s.connect("bob@localhost/phone2", { clientId: PHONE, streamManagement: true });
    await s.settle();
    await say(carol, "n1");
    await say(carol, "n2");
    await phone.ack();
    s.connect("bob@localhost/laptop2", { clientId: LAPTOP, streamManagement: true, presence: -1 });
    await s.settle();
    await s.runScheduled("smart retention cleanup");
    expect(await bodies(s)).toEqual(expect.arrayContaining(["n1", "n2"]));
  });

  it("all: a client connected the whole time but receiving nothing is not taken for expired", async () => {
    const s = createTestServer({ storage: "sqlite", config: cfg({ smart_retention_strategy: "all", smart_retention_client_expiry: "1d" }) });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    const laptop = s.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true, presence: -1 });
    await s.settle();
    await s.clock.advance(2 * DAY); // longer than the client expiry, connected all along
    await say(carol, "m1");
    await phone.ack();
    await laptop.ack();
    await s.runScheduled("smart retention cleanup");
    expect(laptop.take().some((st) => st.name === "message")).toBe(false); // the laptop never got m1
    expect(await bodies(s)).toEqual(["m1"]);
  });

  it("all: an unreadable tracking row does not block writing other clients' first sightings", async () => {
    const file = tempFile();
    const c = cfg({ smart_retention_strategy: "all" });
    const s1 = createTestServer({ storage: new SqliteDriver(file), config: c });
    const carol1 = s1.connect("carol@localhost/x");
    const phone1 = s1.connect("alice@localhost/phone", { clientId: PHONE, streamManagement: true });
    await s1.settle();
    await say(carol1, "old", "alice@localhost");
    await phone1.ack();
    await quiet(s1); // (nothing of s1 pending while another connection writes)
    // one bad row for another user's client (a hand edit, another tool)
    const db = new Database(file);
    db.prepare(`INSERT INTO prosody (host,user,store,key,type,value) VALUES ('localhost','bob','mam_smart_retention',?,'json','{bad')`).run(LAPTOP);
    db.close();
    s1.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true });
    s1.connect("alice@localhost/tablet", { clientId: TABLET, streamManagement: true, presence: -1 }); // first appears now
    await s1.stop();
    const s2 = createTestServer({ storage: new SqliteDriver(file), config: c });
    servers.push(s2);
    const carol = s2.connect("carol@localhost/x");
    const phone = s2.connect("alice@localhost/phone2", { clientId: PHONE, streamManagement: true });
    await s2.settle();
    await say(carol, "n1", "alice@localhost");
    await say(carol, "n2", "alice@localhost");
    await phone.ack(); // the tablet is offline: it never gets n1, n2
    s2.connect("alice@localhost/tablet2", { clientId: TABLET, streamManagement: true, presence: -1 });
    await s2.settle();
    await s2.runScheduled("smart retention cleanup");
    expect((await s2.host().openStore("archive", "archive").find("alice")).items.map((i) => i.stanza.getChildText("body"))).toEqual(expect.arrayContaining(["n1", "n2"]));
  });

  it("all: a cleanup from another process (the CLI) forgets no client, since it cannot see who is connected", async () => {
    const file = tempFile();
    const c = cfg({ smart_retention_strategy: "all", smart_retention_client_expiry: "1d" });
    const server = createTestServer({ storage: new SqliteDriver(file), config: c });
    servers.push(server);
    const carol = server.connect("carol@localhost/x");
    const phone = server.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    // connected all along, at priority -1: it gets no message to the bare JID
    const laptop = server.connect("bob@localhost/laptop", { clientId: LAPTOP, streamManagement: true, presence: -1 });
    await server.settle();
    await server.clock.advance(2 * DAY);
    await say(carol, "m1");
    await phone.ack();
    await server.host().events.fire("smart-retention-run", { dryRun: true, user: "nobody" }); // writes the buffered tracking
    await quiet(server); // (nothing of the server pending while the CLI's connection writes)
    expect(laptop.take().some((st) => st.name === "message")).toBe(false);
    // `mamkit retention run`: its own server on the same file, as the CLI builds it
    const cli = createTestServer({ storage: new SqliteDriver(file), config: c, clock: new ManualClock(server.clock.now()) });
    servers.push(cli);
    const report = (await cli.host().events.fire("smart-retention-run", { keepClients: true })) as CleanupReport;
    expect(report.deleted).toBe(0);
    expect(await bodies(server)).toEqual(["m1"]);
    expect(await server.host().openStore("mam_smart_retention", "map").get("bob", LAPTOP)).toBeDefined();
  });

  it("smart_retention_min: a message stored in whole seconds is never taken for older than it is", async () => {
    const s = createTestServer({ storage: "sqlite", config: cfg({ smart_retention_min: "1h" }) });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await s.settle();
    await s.clock.advance(999); // archived at hh:mm:ss.999, stored as hh:mm:ss
    await say(carol, "m1");
    await phone.ack();
    await s.clock.advance(3_600_000 - 500); // 59 min 59.5 s old
    await s.runScheduled("smart retention cleanup");
    expect(await bodies(s)).toEqual(["m1"]);
    await s.clock.advance(1_000); // now older than an hour
    await s.runScheduled("smart retention cleanup");
    expect(await bodies(s)).toEqual([]);
  });

  it("an account deleted while its cleanup runs keeps no tracking", async () => {
    const s = createTestServer({ storage: "sqlite", config: cfg({ smart_retention_batch_size: 1 }) });
    servers.push(s);
    const carol = s.connect("carol@localhost/x");
    const phone = s.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await s.settle();
    for (let i = 0; i < 5; i++) await say(carol, `m${i}`);
    await phone.ack();
    const run = s.host().events.fire("smart-retention-run", {}) as Promise<unknown>;
    await new Promise((r) => setImmediate(r));
    phone.close();
    await s.host().deleteUser("bob");
    await run;
    expect(await s.host().openStore("mam_smart_retention", "map").getAll("bob")).toBeUndefined();
  });
});
