// Interop with Prosody itself (0.12, Debian's package) on PostgreSQL: Prosody and mamkit take
// turns on ONE database of a private cluster (test/helpers/pg.ts), both connecting as the role
// `mamkit` over 127.0.0.1 — the SQLite test (prosody.test.ts) again, on the other SQL backend.
//
// Both ways round:
//   - Prosody first: prosodyctl creates the tables (the schema of the fixture, which mamkit
//     creates too), Prosody archives a conversation and stores a roster and MAM preferences;
//     mamkit logs the same users in with their Prosody passwords (SCRAM credentials Prosody made)
//     and serves exactly what Prosody served (ids, order, stamps, bodies, prefs, roster), then
//     archives more and makes an account; Prosody serves both eras as one archive, lets that
//     account in, and archives more; mamkit serves all three.
//   - mamkit first: mamkit creates a fresh database's tables and its accounts, roster, prefs and
//     archive; Prosody logs those users in (SCRAM credentials mamkit made), serves what mamkit
//     served, and archives more; mamkit serves both.
// Positions: each era's messages get sort_ids after the previous era's (one sequence), and both
// servers return an archive in sort_id order. The key-value rows (MAM prefs, roster) mamkit
// writes are the rows Prosody writes. One difference is pinned: a MAM query whose end lies past
// 2038-01-19T03:14:07Z (the int4 "when") fails on Prosody 0.12.3 (internal-server-error, the
// PostgreSQL error in its log) and is answered by mamkit.
//
// Skipped (reported as such) where Prosody (Debian: prosody), its PostgreSQL driver for LuaDBI
// (lua-dbi-postgresql) or a PostgreSQL server is not installed.
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import type { Client } from "@xmpp/client";
import { xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Addresses, createLogger, Server } from "mamkit";
import { MODULES, waitFor } from "../e2e/helpers.js";
import { freePort } from "../helpers/net.js";
import { normaliseDump, prosodySchemaFixture, schemaDump } from "../helpers/pg-dump.js";
import { PG_ROLE, type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";
import {
  bodies,
  chat,
  debianPackage,
  type Item,
  logins,
  mamForm,
  NS_MAM,
  type Prefs,
  type Prosody,
  postgresSql,
  prefsOf,
  readLog,
  register,
  rosterOf,
  setPrefs,
  setRosterItem,
  setUp,
  startProsody,
  stopProcess,
  wholeArchive,
  writeConfig,
} from "./prosody-helpers.js";

// mamkit offers STARTTLS with the self-signed certificate it generates: accept it here
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
process.removeAllListeners("warning");

const available = pgAvailable && debianPackage("prosody") && debianPackage("lua-dbi-postgresql");

const PREFS: Prefs = { default: "roster", always: ["carol@localhost"], never: ["mallory@localhost"] };

// The rows Prosody 0.12.3 writes for alice's PREFS and a roster of one item (bob, "Bob",
// "Friends", set once): util.json's {"__hash": [false, ...]} keeps the value of the key false
// (the default, the roster's version) as the row with key ""; mamkit writes the same rows.
const PREFS_ROWS = [
  ["", "json", { __hash: [false, "roster"] }],
  ["carol@localhost", "boolean", "true"],
  ["mallory@localhost", "boolean", "false"],
];
const ROSTER_ROWS = [
  ["", "json", { __hash: [false, { version: 1, pending: {} }] }],
  ["bob@localhost", "json", { subscription: "none", groups: { Friends: true }, name: "Bob" }],
];
const ACCOUNT_KEYS = ["iteration_count number", "salt string", "server_key string", "stored_key string"];
const accountKeys = (rows: [string, string, unknown][]) => rows.map(([k, t]) => `${k} ${t}`);

/** One database the two servers take turns on. */
class Shared {
  readonly p: Prosody;
  /** The database's name, and mamkit's URL to it (as PG_ROLE, like Prosody). */
  readonly name: string;
  readonly url: string;
  prosody: ChildProcess | undefined;
  mamkit: Server | undefined;
  readonly clients = logins();

  constructor(
    readonly cluster: PgCluster,
    superUrl: string,
  ) {
    this.name = new URL(superUrl).pathname.slice(1);
    this.url = cluster.withRole(superUrl);
    this.p = setUp("mamkit-prosody-pg-");
  }

  async configure(): Promise<void> {
    this.p.port = await freePort();
    writeConfig(this.p, postgresSql({ database: this.name, port: this.cluster.port, username: PG_ROLE.user, password: PG_ROLE.password }));
  }

  async startProsody(): Promise<number> {
    this.prosody = await startProsody(this.p);
    return this.p.port;
  }

  async stopProsody(): Promise<number | null> {
    await this.clients.logoutAll();
    const code = await stopProcess(this.prosody!);
    this.prosody = undefined;
    return code;
  }

  async startMamkit(): Promise<number> {
    // Server.create: connected, with the tables in place (made where missing), before it listens
    const server = await Server.create({
      config: {
        storage: { driver: "postgres", url: this.url },
        interfaces: ["127.0.0.1"],
        c2s_ports: [0],
        websocket_ports: [],
        c2s_require_encryption: false,
        modules_enabled: MODULES,
        archive_expires_after: "never",
        hosts: { localhost: {} },
      },
      logger: createLogger({ level: "silent" }),
    });
    this.mamkit = server;
    const listening: Addresses = await server.listen();
    return listening.c2s[0]!.port;
  }

  async stopMamkit(): Promise<void> {
    await this.clients.logoutAll();
    await this.mamkit!.close();
    this.mamkit = undefined;
  }

  /** A user's archive rows as the table has them, in sort_id order. */
  async rows(user: string): Promise<{ key: string; pos: number }[]> {
    const out = await this.cluster.psql(
      `SELECT "key", "sort_id" FROM "prosodyarchive" WHERE "host" = 'localhost' AND "user" = '${user}' AND "store" = 'archive' ORDER BY "sort_id"`,
      this.name,
    );
    return out === "" ? [] : out.split("\n").map((l) => ({ key: l.split("|")[0]!, pos: Number(l.split("|")[1]) }));
  }

  /** The rows of one of a user's key-value stores, in key order: key, type, value (a json one parsed). */
  async keyval(user: string, store: string): Promise<[string, string, unknown][]> {
    const out = await this.cluster.psql(
      `SELECT json_build_array("key", "type", "value") FROM "prosody" WHERE "host" = 'localhost' AND "user" = '${user}' AND "store" = '${store}' ORDER BY "key"`,
      this.name,
    );
    return (out === "" ? [] : out.split("\n")).map((line) => {
      const [key, type, value] = JSON.parse(line) as [string, string, string];
      return [key, type, type === "json" ? JSON.parse(value) : value];
    });
  }

  async close(): Promise<void> {
    await this.clients.logoutAll();
    if (this.prosody) await stopProcess(this.prosody);
    await this.mamkit?.close();
    if (!process.env.MAMKIT_KEEP_INTEROP) rmSync(this.p.dir, { recursive: true, force: true });
  }
}

/** Every item of `later` has a sort_id after every item of `earlier` (rows: the table's, by key). */
function expectAfter(rows: { key: string; pos: number }[], earlier: Item[], later: Item[]): void {
  const pos = new Map(rows.map((r) => [r.key, r.pos]));
  const last = Math.max(...earlier.map((i) => pos.get(i.id)!));
  const first = Math.min(...later.map((i) => pos.get(i.id)!));
  expect(first).toBeGreaterThan(last);
}

/** alice and bob logged in, alice's and bob's received bodies collected. */
async function pair(s: Shared, port: number): Promise<{ alice: Client; bob: Client; aliceGot: string[]; bobGot: string[] }> {
  const alice = await s.clients.login("alice", port);
  const bob = await s.clients.login("bob", port);
  return { alice, bob, aliceGot: bodies(alice), bobGot: bodies(bob) };
}

describe.skipIf(!available)("one PostgreSQL database, Prosody 0.12 and mamkit taking turns", () => {
  // made in beforeAll: a skipped suite (no Prosody or PostgreSQL here) starts no cluster
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startPg({ fsync: false });
  }, 60_000);
  afterAll(() => cluster?.stop());

  describe("Prosody creates the schema; mamkit serves from it; and back", () => {
    let s: Shared;
    beforeAll(async () => {
      s = new Shared(cluster, await cluster.createDatabase("prosody_first"));
      await s.configure();
    }, 60_000);
    afterAll(() => s?.close());

    let prosodyEra: Item[] = [];
    let mamkitEra: Item[] = [];
    let prosodyEra2: Item[] = [];

    it("prosodyctl register creates Prosody's tables: the schema of the fixture, which mamkit creates too", async () => {
      expect(await cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", s.name)).toBe("0");
      for (const u of ["alice", "bob"]) register(s.p, u, `${u}-password`);
      expect(normaliseDump(await schemaDump(cluster, s.name))).toBe(prosodySchemaFixture());
      // SCRAM credentials, as Prosody's internal_hashed keeps them
      expect(accountKeys(await s.keyval("alice", "accounts"))).toEqual(ACCOUNT_KEYS);
    }, 60_000);

    it("Prosody archives a conversation and stores a roster and MAM preferences", async () => {
      const port = await s.startProsody();
      const { alice, bob, aliceGot, bobGot } = await pair(s, port);
      for (let i = 1; i <= 6; i++) await alice.send(chat("bob@localhost", `alice to bob ${i}`));
      await waitFor(() => bobGot.length === 6);
      await bob.send(chat("alice@localhost", "bob to alice, receipt asked", xml("request", { xmlns: "urn:xmpp:receipts" })));
      await bob.send(chat("alice@localhost", "bob to alice with ümlauts & <markup>"));
      // chat state only: neither server archives it
      await bob.send(xml("message", { type: "chat", to: "alice@localhost" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })));
      await waitFor(() => aliceGot.length === 2);
      await setRosterItem(alice, "bob@localhost", "Bob", "Friends");
      await setPrefs(alice, PREFS);

      const { items, count } = await wholeArchive(alice);
      expect(items.map((i) => i.body)).toEqual([
        ...[1, 2, 3, 4, 5, 6].map((i) => `alice to bob ${i}`),
        "bob to alice, receipt asked",
        "bob to alice with ümlauts & <markup>",
      ]);
      expect(count).toBe("8");
      prosodyEra = items;
      // Prosody's order is the table's sort_id order
      expect((await s.rows("alice")).map((r) => r.key)).toEqual(items.map((i) => i.id));
      expect(await prefsOf(alice)).toEqual(PREFS);
      expect(await s.keyval("alice", "archive_prefs")).toEqual(PREFS_ROWS);
      expect(await s.keyval("alice", "roster")).toEqual(ROSTER_ROWS);
      expect(await s.stopProsody()).toBe(0);
    }, 60_000);

    it("mamkit logs the Prosody users in, serves exactly what Prosody served, and archives more after it", async () => {
      expect(prosodyEra).toHaveLength(8);
      const port = await s.startMamkit();
      const { alice, bob, aliceGot, bobGot } = await pair(s, port);

      const seen = await wholeArchive(alice);
      expect(seen.items).toEqual(prosodyEra);
      expect(seen.count).toBe("8");
      expect((await wholeArchive(alice, [mamForm({ "after-id": prosodyEra[2]!.id })])).items).toEqual(prosodyEra.slice(3));
      expect((await wholeArchive(alice, [mamForm({ with: "bob@localhost", end: prosodyEra[7]!.stamp })])).items).toEqual(prosodyEra);
      expect(await prefsOf(alice)).toEqual(PREFS);
      expect(await rosterOf(alice)).toEqual([{ jid: "bob@localhost", name: "Bob", subscription: "none", groups: ["Friends"] }]);

      // an account mamkit creates and a roster item mamkit writes, for Prosody to read later
      await s.mamkit!.accounts("localhost").create("carol", "carol-password");
      await setRosterItem(alice, "carol@localhost", "Carol", "Work");

      for (let i = 1; i <= 3; i++) await bob.send(chat("alice@localhost", `mamkit era ${i}`));
      await waitFor(() => aliceGot.length === 3);
      await alice.send(chat("bob@localhost", "mamkit era reply"));
      await waitFor(() => bobGot.length === 1);

      const now = await wholeArchive(alice);
      expect(now.items.slice(0, 8)).toEqual(prosodyEra);
      expect(now.items.slice(8).map((i) => i.body)).toEqual(["mamkit era 1", "mamkit era 2", "mamkit era 3", "mamkit era reply"]);
      mamkitEra = now.items.slice(8);
      const rows = await s.rows("alice");
      expect(rows.map((r) => r.key)).toEqual(now.items.map((i) => i.id));
      expectAfter(rows, prosodyEra, mamkitEra);
      await s.stopMamkit();
    }, 60_000);

    it("Prosody serves both eras as one archive, lets mamkit's account in, and archives after mamkit", async () => {
      expect(mamkitEra).toHaveLength(4);
      const port = await s.startProsody();
      const { alice, bob, aliceGot } = await pair(s, port);
      const all = await wholeArchive(alice);
      expect(all.items).toEqual([...prosodyEra, ...mamkitEra]);
      // Prosody pages across the border by an id mamkit gave
      expect((await wholeArchive(alice, [mamForm({ "after-id": mamkitEra[0]!.id })])).items).toEqual(mamkitEra.slice(1));
      const bobs = await wholeArchive(bob);
      expect(bobs.items.map((i) => i.body)).toEqual([...prosodyEra, ...mamkitEra].map((i) => i.body));
      // Prosody 0.12's SQL keyval reader skips rows whose value is false (see prosody.test.ts):
      // its `never` list comes back empty; the row is intact
      const prefs = await prefsOf(alice);
      expect({ default: prefs.default, always: prefs.always }).toEqual({ default: PREFS.default, always: PREFS.always });
      expect(prefs.never.filter((j) => !PREFS.never.includes(j))).toEqual([]);
      expect(await s.keyval("alice", "archive_prefs")).toEqual(PREFS_ROWS);
      expect((await rosterOf(alice)).map((i) => [i.jid, i.name, i.groups]).sort()).toEqual([
        ["bob@localhost", "Bob", ["Friends"]],
        ["carol@localhost", "Carol", ["Work"]],
      ]);
      const carol = await s.clients.login("carol", port);
      expect(carol.jid?.toString()).toMatch(/^carol@localhost\//);

      await bob.send(chat("alice@localhost", "prosody again 1"));
      await bob.send(chat("alice@localhost", "prosody again 2"));
      await waitFor(() => aliceGot.length === 2);
      const now = await wholeArchive(alice);
      expect(now.items.slice(0, 12)).toEqual([...prosodyEra, ...mamkitEra]);
      expect(now.items.slice(12).map((i) => i.body)).toEqual(["prosody again 1", "prosody again 2"]);
      prosodyEra2 = now.items.slice(12);
      const rows = await s.rows("alice");
      expect(rows.map((r) => r.key)).toEqual(now.items.map((i) => i.id));
      expectAfter(rows, mamkitEra, prosodyEra2);
      expect(await s.stopProsody()).toBe(0);
      expect(readLog(s.p)).not.toMatch(/\berror\b.*(sql|storage|archive)/i);
    }, 60_000);

    it("mamkit serves the three eras as Prosody did, also for a query ending after 2038", async () => {
      expect(prosodyEra2).toHaveLength(2);
      const port = await s.startMamkit();
      const { alice } = await pair(s, port);
      const all = [...prosodyEra, ...mamkitEra, ...prosodyEra2];
      expect((await wholeArchive(alice)).items).toEqual(all);
      expect((await wholeArchive(alice, [mamForm({ end: "2040-01-01T00:00:00Z" })])).items).toEqual(all);
      expect((await wholeArchive(alice, [mamForm({ start: "2038-01-19T03:14:08Z" })])).items).toEqual([]);
      await s.stopMamkit();
    }, 60_000);
  });

  describe("mamkit creates a fresh database's schema; Prosody then uses it; and back", () => {
    let s: Shared;
    beforeAll(async () => {
      s = new Shared(cluster, await cluster.createDatabase("mamkit_first"));
      await s.configure();
    }, 60_000);
    afterAll(() => s?.close());

    let mamkitEra: Item[] = [];
    let prosodyEra: Item[] = [];

    it("mamkit creates the tables and the accounts, and archives a conversation with a roster and MAM preferences", async () => {
      expect(await cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", s.name)).toBe("0");
      const port = await s.startMamkit();
      expect(normaliseDump(await schemaDump(cluster, s.name))).toBe(prosodySchemaFixture());
      for (const u of ["alice", "bob"]) await s.mamkit!.accounts("localhost").create(u, `${u}-password`);
      // Prosody's four SCRAM-SHA-1 rows, and mamkit's SCRAM-SHA-256 keys beside them (docs/server.md;
      // Prosody 0.12 ignores them)
      expect(accountKeys(await s.keyval("alice", "accounts"))).toEqual([...ACCOUNT_KEYS, "server_key_sha256 string", "stored_key_sha256 string"].sort());
      const { alice, bob, aliceGot, bobGot } = await pair(s, port);
      for (let i = 1; i <= 4; i++) await alice.send(chat("bob@localhost", `mamkit first ${i}`));
      await waitFor(() => bobGot.length === 4);
      await bob.send(chat("alice@localhost", "bob answers with ümlauts & <markup>", xml("request", { xmlns: "urn:xmpp:receipts" })));
      await waitFor(() => aliceGot.length === 1);
      await setRosterItem(alice, "bob@localhost", "Bob", "Friends");
      await setPrefs(alice, PREFS);
      const { items, count } = await wholeArchive(alice);
      expect(items.map((i) => i.body)).toEqual([1, 2, 3, 4].map((i) => `mamkit first ${i}`).concat("bob answers with ümlauts & <markup>"));
      expect(count).toBe("5");
      expect((await s.rows("alice")).map((r) => r.key)).toEqual(items.map((i) => i.id));
      // the rows Prosody writes for the same prefs and roster
      expect(await s.keyval("alice", "archive_prefs")).toEqual(PREFS_ROWS);
      expect(await s.keyval("alice", "roster")).toEqual(ROSTER_ROWS);
      mamkitEra = items;
      await s.stopMamkit();
    }, 60_000);

    it("Prosody logs mamkit's users in, serves what mamkit served, and archives after it", async () => {
      expect(mamkitEra).toHaveLength(5);
      const port = await s.startProsody();
      const { alice, bob, aliceGot } = await pair(s, port);
      expect(alice.jid?.toString()).toMatch(/^alice@localhost\//);
      expect((await wholeArchive(alice)).items).toEqual(mamkitEra);
      expect((await wholeArchive(alice, [mamForm({ "after-id": mamkitEra[1]!.id })])).items).toEqual(mamkitEra.slice(2));
      expect((await wholeArchive(bob)).items.map((i) => i.body)).toEqual(mamkitEra.map((i) => i.body));
      expect(await rosterOf(alice)).toEqual([{ jid: "bob@localhost", name: "Bob", subscription: "none", groups: ["Friends"] }]);
      const prefs = await prefsOf(alice);
      expect({ default: prefs.default, always: prefs.always }).toEqual({ default: PREFS.default, always: PREFS.always });
      expect(prefs.never).toEqual([]);
      expect(await s.keyval("alice", "archive_prefs")).toEqual(PREFS_ROWS);

      // Prosody 0.12.3 itself fails a query whose end lies past its int4 "when" (PostgreSQL refuses
      // the bound: see the log below); mamkit answers it (the last test of the other order, and
      // test/storage/postgres/when-bounds.test.ts)
      const past2038 = await alice.iqCaller
        .request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_MAM, queryid: "past-2038" }, mamForm({ end: "2040-01-01T00:00:00Z" }))))
        .then(
          () => "answered",
          (e: { condition?: string }) => e.condition,
        );
      expect(past2038).toBe("internal-server-error");

      await bob.send(chat("alice@localhost", "prosody after mamkit 1"));
      await bob.send(chat("alice@localhost", "prosody after mamkit 2"));
      await waitFor(() => aliceGot.length === 2);
      const now = await wholeArchive(alice);
      expect(now.items.slice(0, 5)).toEqual(mamkitEra);
      expect(now.items.slice(5).map((i) => i.body)).toEqual(["prosody after mamkit 1", "prosody after mamkit 2"]);
      prosodyEra = now.items.slice(5);
      const rows = await s.rows("alice");
      expect(rows.map((r) => r.key)).toEqual(now.items.map((i) => i.id));
      expectAfter(rows, mamkitEra, prosodyEra);
      expect(await s.stopProsody()).toBe(0);
      // the one storage error Prosody logged: the query past 2038 (2040-01-01 is 2208988800 s)
      expect(readLog(s.p).split("\n").filter((l) => /\berror\b.*(sql|storage|archive)/i.test(l))).toEqual([
        expect.stringMatching(/\bsql\s+error\s+Error in SQL transaction: .*ERROR: +value "2208988800" is out of range for type integer$/),
      ]);
    }, 60_000);

    it("mamkit serves both eras, and appends after Prosody's", async () => {
      expect(prosodyEra).toHaveLength(2);
      const port = await s.startMamkit();
      const { alice, bob, aliceGot } = await pair(s, port);
      expect((await wholeArchive(alice)).items).toEqual([...mamkitEra, ...prosodyEra]);
      await bob.send(chat("alice@localhost", "mamkit last"));
      await waitFor(() => aliceGot.length === 1);
      const now = await wholeArchive(alice);
      expect(now.items.map((i) => i.body).at(-1)).toBe("mamkit last");
      const rows = await s.rows("alice");
      expect(rows.map((r) => r.key)).toEqual(now.items.map((i) => i.id));
      expectAfter(rows, prosodyEra, now.items.slice(7));
      await s.stopMamkit();
    }, 60_000);
  });
});
