// mamkit migrate as a real process, SQLite <-> PostgreSQL: a database the
// server filled (accounts, roster, MAM prefs, archive, smart retention
// tracking) goes there and back and comes out row for row the same, archive
// positions and sequence included; the stores read the same on every side; a
// migration killed (SIGKILL), stopped (Ctrl-C) or cut off (a lost connection)
// between chunks continues where it was; the source is never written;
// refusals and errors read clearly. PostgreSQL: the test cluster, a fresh
// database per case (skipped where it is not installed).
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Accounts } from "../../src/auth/accounts.js";
import { holdServeLock } from "../../src/cli/lock.js";
import { PostgresDriver } from "../../src/storage/postgres/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { StorageDriver } from "../../src/storage/types.js";
import { createTestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";
import {
  bigSource,
  mamkit,
  migrate,
  PHONE,
  pgDump,
  pgFingerprint,
  STATE_SQL,
  sqliteDump,
  sqliteFingerprint,
  start,
  stateOf,
  stores,
  waitForProgress,
  withPg,
} from "./migrate-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-migrate-"));
const NS_MAM = "urn:xmpp:mam:2";

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("mamkit migrate: bad usage (no database needed)", () => {
  it("a malformed or missing --from/--to, a bad --chunk, the same file twice: exit 2 with the usage", async () => {
    const file = join(dir, "usage.sqlite");
    const link = join(dir, "usage-link.sqlite");
    await bigSource(file, 1);
    symlinkSync(file, link);
    const cases: [string[], RegExp][] = [
      [["--from", "mysql://x/y", "--to", "sqlite:a.sqlite"], /--from "mysql:\/\/x\/y": expected sqlite:FILE or postgres:URL/],
      [["--from", "sqlite:", "--to", "sqlite:a.sqlite"], /--from "sqlite:": give the database file after sqlite:/],
      [["--from", `sqlite:${file}`, "--to", "postgres:localhost/db"], /--to "postgres:localhost\/db": the URL after postgres: must start with postgres:\/\//],
      [["--from", `sqlite:${file}`, "--to", "postgres://u@127.0.0.1:5432"], /--to "postgres:\/\/u@127\.0\.0\.1:5432": the URL names no database/],
      [["--from", `sqlite:${file}`], /give --to DST/],
      [["--to", `sqlite:${file}`], /give --from SRC/],
      [["--from", `sqlite:${file}`, "--to", "sqlite:b.sqlite", "--chunk", "0"], /--chunk takes a number of rows from 1 to 100000, not "0"/],
      [["--from", `sqlite:${file}`, "--to", `sqlite:${link}`], /--from and --to name the same database \(sqlite:/],
      [["--from", `sqlite:${file}`, "--to", `sqlite:${dir}/./usage.sqlite`], /--from and --to name the same database/],
      [["--from", `sqlite:${file}`, "--to", "sqlite:b.sqlite", "extra"], /unexpected argument "extra"/],
      [["--from", `sqlite:${file}`, "--to", "sqlite:b.sqlite", "--config", "x.json"], /unknown option --config/],
    ];
    const runs = await Promise.all(cases.map(([args]) => mamkit("migrate", ...args)));
    runs.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(" ")).toBe(2);
      expect(r.err).toMatch(new RegExp(`^mamkit migrate: ${cases[i]![1].source}.*\\nusage: mamkit migrate --from SRC --to DST`));
    });
  });

  it("refuses a SQLite destination a running mamkit serve holds", async () => {
    const file = join(dir, "served.sqlite");
    await bigSource(join(dir, "small.sqlite"), 3);
    const lock = holdServeLock({ driver: "sqlite", database: file, synchronous: "full" })!;
    try {
      const r = await migrate(`sqlite:${join(dir, "small.sqlite")}`, `sqlite:${file}`);
      expect([r.code, r.err]).toEqual([1, `mamkit migrate: --to: mamkit serve (pid ${process.pid}) is using ${file} (${file}.serve-lock is locked): stop it first\n`]);
    } finally {
      lock.release();
    }
  });

  it("a missing SQLite source is an error naming --from; help documents the command", async () => {
    const [r, help] = await Promise.all([migrate(`sqlite:${join(dir, "nope.sqlite")}`, `sqlite:${join(dir, "x.sqlite")}`), mamkit("help", "migrate")]);
    expect([r.code, r.err]).toEqual([1, `mamkit migrate: --from: there is no SQLite database ${join(dir, "nope.sqlite")} (no such file)\n`]);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: mamkit migrate --from SRC --to DST \[--chunk N\] \[-q\]/);
    expect(help.out).toContain("state row");
  });
});

describe.skipIf(!pgAvailable)("mamkit migrate: SQLite <-> PostgreSQL", () => {
  let cluster: PgCluster;
  const source = join(dir, "source.sqlite");
  const back = join(dir, "back.sqlite");
  let url = "";
  const big = join(dir, "big.sqlite");
  let before: Awaited<ReturnType<typeof stores>>;

  beforeAll(async () => {
    cluster = await startPg();
    url = await cluster.createDatabase();
    await bigSource(big, 30_000);
    // the server on a SQLite file: accounts, a roster, MAM prefs, messages archived on
    // both sides, a phone with stream management that acknowledges them (tracking)
    const t = createTestServer({
      storage: new SqliteDriver(source),
      config: { modules_enabled: ["roster", "smacks", "mam", "mam_smart_retention"], authentication: "internal_hashed", archive_expires_after: "never" },
    });
    const accounts = new Accounts(t.host());
    for (const u of ["alice", "bob"]) await accounts.create(u, "pw");
    const phone = t.connect("alice@localhost/phone", { clientId: PHONE, streamManagement: true });
    const bob = t.connect("bob@localhost/pc");
    await t.settle();
    await phone.request(xml("iq", { type: "set" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "bob@localhost", name: "Bob" }))));
    const prefs = xml("prefs", { xmlns: NS_MAM, default: "always" }, xml("always"), xml("never", {}, xml("jid", {}, "mallory@localhost")));
    await phone.request(xml("iq", { type: "set" }, prefs));
    for (let i = 1; i <= 5; i++) await bob.send(xml("message", { to: "alice@localhost", type: "chat" }, xml("body", {}, `hi ${i} <&>`)));
    await phone.ack();
    await t.settle();
    await t.stop();
    // more archive through the driver, the last ones deleted (the sequence stays ahead of
    // the highest sort_id), and a duplicated row (prosody's index is not unique)
    const d = new SqliteDriver(source);
    const a = d.archive("localhost", "archive");
    const refs = [];
    for (let i = 0; i < 20; i++) refs.push(await a.append("carol", { stanza: xml("message", {}, xml("body", {}, `c${i}`)), when: Date.UTC(2026, 0, 2) + i * 1000, with: "bob@localhost" }));
    await a.delete("carol", { fromPos: refs[17]!.pos });
    for (let i = 0; i < 2; i++) d.insertRow("localhost", "", "dup", "k", "string", "same");
    before = await stores(d);
    await d.close();
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("sqlite -> postgres -> sqlite: every row, position and the sequence, verified; the stores read the same; the source untouched", async () => {
    const original = sqliteDump(source);
    expect(original.sequence).toBeGreaterThan(original.archive.at(-1)![0] as number);
    expect(before.tracking).toMatchObject({ delivered: [expect.any(Array)] });
    expect(before.archive.alice).toHaveLength(5);
    const print = sqliteFingerprint(source);

    const there = await migrate(`sqlite:${source}`, `postgres:${url}`);
    expect([there.code, there.err.includes("mamkit migrate:")]).toEqual([0, false]);
    expect(there.out).toMatch(/^migrated sqlite:.*source\.sqlite to postgres:\/\/\S+\/\w+ in [\d.]+ s\n/);
    expect(there.out).toContain(`prosodyarchive   ${original.archive.length} rows: ${original.archive.length} in 1 chunk(s) of up to 2000 by this run`);
    expect(there.out).toMatch(new RegExp(`verified \\(the same on both sides\\):\\n  prosody          ${original.prosody.length} rows, checksum [0-9a-f]{16}\\n`));
    expect(there.out).toContain(`positions up to ${original.sequence} given out: the next one is ${original.sequence + 1}`);
    expect(sqliteFingerprint(source)).toEqual(print);
    expect(await pgDump(url)).toEqual(original);

    const pgd = new PostgresDriver({ url });
    expect(await stores(pgd)).toEqual(before);
    await pgd.close();

    const pgPrint = await pgFingerprint(url);
    const again = await migrate(`postgres:${url}`, `sqlite:${back}`);
    expect([again.code, again.err]).toEqual([0, "verifying: counting and checksumming every row on both sides\n"]);
    expect(await pgFingerprint(url)).toEqual(pgPrint);
    expect(sqliteDump(back)).toEqual(original);

    // a new message on either copy gets a position above every migrated one (deleted ones included)
    for (const d of [new PostgresDriver({ url }), new SqliteDriver(back)] as StorageDriver[]) {
      expect(await stores(d)).toEqual(before);
      const r = await d.archive("localhost", "archive").append("alice", { stanza: xml("message", {}, xml("body", {}, "new")), when: Date.now(), with: "bob@localhost" });
      expect(r.pos).toBe(original.sequence + 1);
      await d.close();
    }
  }, 60_000);

  it("refuses a destination that holds data, one a mamkit node or another migration uses, the same database under another name; a server unreachable, a database missing", async () => {
    const fresh = await cluster.createDatabase();
    const held = await cluster.createDatabase();
    const d = new PostgresDriver({ url: held });
    await d.keyval("localhost", "accounts").set("someone", { stored_key: "k" });
    await d.close();
    const [full, unreachable, missing] = await Promise.all([
      migrate(`sqlite:${source}`, `postgres:${held}`),
      migrate(`sqlite:${source}`, "postgres://postgres@127.0.0.1:1/nowhere"),
      migrate(`postgres:${Object.assign(new URL(url), { pathname: "/no_such_database" }).href}`, `postgres:${fresh}`),
    ]);
    expect(full.code).toBe(1);
    expect(full.err).toBe(
      "mamkit migrate: --to: the destination already holds data (1 rows in prosody, 0 in prosodyarchive): mamkit migrate copies only into an empty database (or continues its own unfinished migration there)\n",
    );
    expect(unreachable).toMatchObject({
      code: 1,
      err: "mamkit migrate: cannot connect to PostgreSQL at 127.0.0.1:1 (--to): nothing accepts connections there; is the server running?\n",
    });
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^mamkit migrate: PostgreSQL at \S+ has no database "no_such_database" \(--from\): create it first/);
    // a mamkit driver connected to the destination (its pool and its writer: two connections)
    const node = new PostgresDriver({ url: fresh });
    await node.ready();
    const served = await migrate(`sqlite:${source}`, `postgres:${fresh}`);
    await node.close();
    expect([served.code, served.err]).toEqual([1, "mamkit migrate: --to: 2 connection(s) of mamkit servers use this database (mamkit, mamkit writer): stop them first\n"]);
    // another migration into the same database holds its lock
    const busy = await withPg(fresh, async (c) => {
      await c.query("SELECT pg_advisory_lock($1, 0)", [0x6d616d6e]);
      return migrate(`sqlite:${source}`, `postgres:${fresh}`);
    });
    expect([busy.code, busy.err]).toEqual([1, "mamkit migrate: --to: another mamkit migrate is writing to this database; wait for it to end\n"]);
    // the same database under another host name: found once connected
    const same = await migrate(`postgres:${held}`, `postgres:${held.replace("127.0.0.1", "localhost")}`);
    expect(same.code).toBe(2);
    expect(same.err).toMatch(/^mamkit migrate: --from and --to name the same database/);
  }, 60_000);

  it("a wrong password is refused naming --to, without printing it", async () => {
    const r = await migrate(`sqlite:${source}`, `postgres:${cluster.withRole(await cluster.createDatabase(), "wrong-pw")}`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mamkit migrate: PostgreSQL at \S+ refused user "mamkit" \(--to\): password authentication failed/);
    expect(r.err).not.toContain("wrong-pw");
  });

  it("killed between chunks (SIGKILL), it continues after the last chunk committed: an exact copy, verified", async () => {
    const original = sqliteDump(big);
    const print = sqliteFingerprint(big);
    const dest = await cluster.createDatabase();
    const run = start("migrate", "--from", `sqlite:${big}`, "--to", `postgres:${dest}`, "--chunk", "500");
    await withPg(dest, (c) => waitForProgress(async () => (await c.query(STATE_SQL)).rows[0]?.value as string | undefined, 3000, run.done));
    run.child.kill("SIGKILL");
    expect((await run.done).signal).toBe("SIGKILL");
    // what is there is exactly what the state row says: whole chunks, in order
    const partial = await pgDump(dest);
    const state = stateOf(partial.prosody.map((r) => JSON.parse(r) as string[]).find((r) => r[2] === "mamkit_migrate")?.[5])!;
    expect(state.archiveRows).toBeGreaterThanOrEqual(3000);
    expect(state.archiveRows).toBeLessThan(30_000);
    expect(partial.archive).toEqual(original.archive.slice(0, state.archiveRows));
    expect(state.after).toBe(original.archive[state.archiveRows - 1]![0]);

    // another source, or this unfinished destination as a source: refused
    const [other, unfinished] = await Promise.all([migrate(`sqlite:${source}`, `postgres:${dest}`), migrate(`postgres:${dest}`, `sqlite:${join(dir, "never.sqlite")}`)]);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/^mamkit migrate: --to: the destination holds an unfinished migration from sqlite:.*big\.sqlite, not from sqlite:.*source\.sqlite/);
    expect(unfinished.code).toBe(1);
    expect(unfinished.err).toMatch(/^mamkit migrate: --from: the source is itself the destination of an unfinished migration/);

    const resumed = await migrate(`sqlite:${big}`, `postgres:${dest}`, "--chunk", "500");
    expect(resumed.code).toBe(0);
    expect(resumed.out).toContain(`continued the migration begun ${new Date().toISOString().slice(0, 10)}`);
    expect(resumed.out).toContain(`${state.archiveRows} archive rows were copied before, ${30_000 - state.archiveRows} now`);
    expect(await pgDump(dest)).toEqual(original);
    expect(sqliteFingerprint(big)).toEqual(print);

    // and back, stopped with Ctrl-C: it ends after the chunk it is writing, and says so
    const home = join(dir, "home.sqlite");
    const pgPrint = await pgFingerprint(dest);
    const back = start("migrate", "--from", `postgres:${dest}`, "--to", `sqlite:${home}`, "--chunk", "500");
    const readState = async () => {
      const db = new Database(home, { readonly: true, fileMustExist: true });
      try {
        return db.prepare(STATE_SQL).pluck().get() as string | undefined;
      } finally {
        db.close();
      }
    };
    await waitForProgress(readState, 3000, back.done);
    back.child.kill("SIGINT");
    const stopped = await back.done;
    expect(stopped.code).toBe(1);
    expect(stopped.err).toMatch(/SIGINT: stopping after the current chunk/);
    const copied = stateOf(await readState())!.archiveRows;
    expect(stopped.err).toContain(`mamkit migrate: interrupted: ${copied} of 30000 archive rows are copied; run the same command again to continue after them\n`);
    expect(copied % 500).toBe(0);

    // a row slipped into the destination meanwhile: refused, until it is gone again
    const w = new Database(home);
    w.prepare(`INSERT INTO "prosody" VALUES ('localhost','intruder','accounts','k','string','v')`).run();
    w.close();
    const changed = await migrate(`postgres:${dest}`, `sqlite:${home}`);
    expect(changed.code).toBe(1);
    expect(changed.err).toMatch(/^mamkit migrate: --to: the destination changed since the interrupted migration/);
    const w2 = new Database(home);
    w2.prepare(`DELETE FROM "prosody" WHERE "user"='intruder'`).run();
    w2.close();

    const finished = await migrate(`postgres:${dest}`, `sqlite:${home}`, "-q");
    expect([finished.code, finished.err]).toEqual([0, ""]);
    expect(sqliteDump(home)).toEqual(original);
    expect(await pgFingerprint(dest)).toEqual(pgPrint);
  }, 60_000);

  it("a lost connection to the destination stops the run, saying how far it got; the same command continues", async () => {
    const dest = await cluster.createDatabase();
    const run = start("migrate", "--from", `sqlite:${big}`, "--to", `postgres:${dest}`, "--chunk", "500");
    await withPg(dest, async (c) => {
      await waitForProgress(async () => (await c.query(STATE_SQL)).rows[0]?.value as string | undefined, 3000, run.done);
      await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'mamkit migrate'");
    });
    const lost = await run.done;
    expect(lost.code).toBe(1);
    expect(lost.err).toMatch(
      /^mamkit migrate: lost the connection to PostgreSQL at \S+ \(--to\): .* \(\d+ of 30000 archive rows are copied; run the same command again to continue after them\)\n$/,
    );
    const again = await migrate(`sqlite:${big}`, `postgres:${dest}`);
    expect(again.code).toBe(0);
    expect(await pgDump(dest)).toEqual(sqliteDump(big));
  }, 60_000);
});
