// Prosody compatibility of the SQLite driver: databases Prosody wrote open in
// mamkit, and what mamkit writes has the shape of Prosody's rows.
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../../src/storage/sqlite/driver.js";
import { NON_STRING_KEYS } from "../../../src/storage/types.js";
import { xml } from "../../../src/xmpp/stanza.js";

const FIXTURE = new URL("../../fixtures/prosody-0.12.3-sample.sqlite", import.meta.url).pathname;
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "mamkit-prosody-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// Prosody 0.12's DDL for SQLite (mod_storage_sql create_table), written out here on purpose.
const DDL = `
CREATE TABLE "prosody" ("host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL);
CREATE INDEX "prosody_index" ON "prosody" ("host", "user", "store", "key");
CREATE TABLE "prosodyarchive" ("sort_id" INTEGER PRIMARY KEY AUTOINCREMENT, "host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "when" INTEGER NOT NULL, "with" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL);
CREATE UNIQUE INDEX "prosodyarchive_index" ON "prosodyarchive" ("host", "user", "store", "key");
CREATE INDEX "prosodyarchive_with_when" ON "prosodyarchive" ("host", "user", "store", "with", "when");
CREATE INDEX "prosodyarchive_when" ON "prosodyarchive" ("host", "user", "store", "when");
CREATE INDEX "prosodyarchive_sort" ON "prosodyarchive" ("host", "user", "store", "sort_id");
`;

function schemaOf(path: string): string[] {
  const db = new Database(path, { readonly: true });
  const rows = db
    .prepare("SELECT sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
    .all() as { sql: string }[];
  db.close();
  return rows.map((r) => r.sql);
}

describe("SQLite driver and Prosody's schema", () => {
  it("creates exactly Prosody's tables and indexes in a new database", async () => {
    const dir = tmp();
    await new SqliteDriver(join(dir, "new.sqlite")).close();
    const prosody = new Database(join(dir, "prosody.sqlite"));
    prosody.exec(DDL);
    prosody.close();
    expect(schemaOf(join(dir, "new.sqlite"))).toEqual(schemaOf(join(dir, "prosody.sqlite")));
    expect(schemaOf(join(dir, "new.sqlite"))).toEqual(schemaOf(FIXTURE));
  });

  it("uses WAL", async () => {
    const d = new SqliteDriver(join(tmp(), "wal.sqlite"));
    expect(d.db.pragma("journal_mode", { simple: true })).toBe("wal");
    await d.close();
  });

  it("reads Prosody-shaped rows written by hand", async () => {
    const path = join(tmp(), "hand.sqlite");
    const db = new Database(path);
    db.exec(DDL);
    const row = db.prepare('INSERT INTO "prosody" VALUES (?,?,?,?,?,?)');
    row.run("example.org", "alice", "accounts", "salt", "string", "abc-123");
    row.run("example.org", "alice", "accounts", "iteration_count", "number", "4096");
    row.run("example.org", "alice", "archive_prefs", "", "json", '{"__hash":[false,"roster"]}');
    row.run("example.org", "alice", "archive_prefs", "bob@example.org", "boolean", "true");
    row.run("example.org", "alice", "vcard", "", "xml", "<vCard xmlns='vcard-temp'><FN>Alice &amp; co</FN></vCard>");
    row.run("example.org", "", "cron", "last_run", "number", "1700000000.5");
    const arch = db.prepare(
      'INSERT INTO "prosodyarchive" ("host","user","store","key","when","with","type","value") VALUES (?,?,?,?,?,?,?,?)',
    );
    arch.run("example.org", "alice", "archive", "id-1", 1700000000, "bob@example.org", "xml",
      "<message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org' type='chat'><body>one &apos;1&apos;</body></message>");
    arch.run("example.org", "alice", "archive", "id-2", 1700000060, "carol@example.org", "xml",
      "<message from='carol@example.org/y' type='chat'><body>two</body></message>");
    db.close();

    const d = new SqliteDriver(path);
    expect(await d.keyval("example.org", "accounts").get("alice")).toEqual({ salt: "abc-123", iteration_count: 4096 });
    const prefs = (await d.keyval("example.org", "archive_prefs").get("alice"))!;
    expect(prefs["bob@example.org"]).toBe(true);
    expect(prefs[NON_STRING_KEYS]!.get(false)).toBe("roster");
    expect(await d.map("example.org", "archive_prefs").get("alice", "bob@example.org")).toBe(true);
    expect(await d.map("example.org", "cron").get(undefined, "last_run")).toBe(1700000000.5);
    const a = d.archive("example.org", "archive");
    const page = await a.find("alice", { total: true });
    expect(page.total).toBe(2);
    expect(page.items.map((i) => [i.id, i.pos, i.when, i.with])).toEqual([
      ["id-1", 1, 1700000000000, "bob@example.org"],
      ["id-2", 2, 1700000060000, "carol@example.org"],
    ]);
    expect(page.items[0]!.stanza.getChildText("body")).toBe("one '1'");
    expect((await a.find("alice", { after: "id-1" })).items.map((i) => i.id)).toEqual(["id-2"]);
    expect((await a.find("alice", { with: "carol@example.org" })).items).toHaveLength(1);
    await d.close();
  });

  it("writes rows of the same shape as Prosody's", async () => {
    const path = join(tmp(), "shape.sqlite");
    const d = new SqliteDriver(path);
    await d.keyval("shakespeare.example", "accounts").set("romeo", {
      salt: "c61b2a2f",
      iteration_count: 10000,
    });
    await d.keyval("shakespeare.example", "archive_prefs").set("juliet", {
      "mercutio@shakespeare.example": false,
      [NON_STRING_KEYS]: new Map([[false, true]]),
    });
    await d.map("shakespeare.example", "roster").set("romeo", "juliet@shakespeare.example", {
      groups: {},
      name: "Juliet",
      subscription: "none",
    });
    const { id } = await d.archive("shakespeare.example", "archive").append("romeo", {
      stanza: xml("message", { type: "chat", id: "x1", from: "romeo@shakespeare.example/r", to: "juliet@shakespeare.example" },
        xml("body", {}, `O 'Romeo' & "Juliet" <3`)),
      when: 1795505090_123,
      with: "juliet@shakespeare.example",
    });
    await d.close();

    const db = new Database(path, { readonly: true });
    const rows = db.prepare('SELECT "host","user","store","key","type","value" FROM "prosody" ORDER BY "store","key"').all();
    expect(rows).toEqual([
      { host: "shakespeare.example", user: "romeo", store: "accounts", key: "iteration_count", type: "number", value: "10000" },
      { host: "shakespeare.example", user: "romeo", store: "accounts", key: "salt", type: "string", value: "c61b2a2f" },
      { host: "shakespeare.example", user: "juliet", store: "archive_prefs", key: "", type: "json", value: '{"__hash":[false,true]}' },
      { host: "shakespeare.example", user: "juliet", store: "archive_prefs", key: "mercutio@shakespeare.example", type: "boolean", value: "false" },
      { host: "shakespeare.example", user: "romeo", store: "roster", key: "juliet@shakespeare.example", type: "json", value: '{"groups":{},"name":"Juliet","subscription":"none"}' },
    ]);
    const arch = db.prepare('SELECT * FROM "prosodyarchive"').all();
    expect(arch).toEqual([
      {
        sort_id: 1,
        host: "shakespeare.example",
        user: "romeo",
        store: "archive",
        key: id,
        when: 1795505090,
        with: "juliet@shakespeare.example",
        type: "xml",
        value:
          "<message type='chat' id='x1' from='romeo@shakespeare.example/r' to='juliet@shakespeare.example'>" +
          "<body>O &apos;Romeo&apos; &amp; &quot;Juliet&quot; &lt;3</body></message>",
      },
    ]);
    expect((db.prepare('SELECT typeof("when") AS t FROM "prosodyarchive"').get() as { t: string }).t).toBe("integer");
    db.close();
  });

  describe("the database Prosody 0.12.3 wrote (test/fixtures)", () => {
    function open() {
      const path = join(tmp(), "prosody.sqlite");
      copyFileSync(FIXTURE, path);
      return { d: new SqliteDriver(path), path };
    }

    it("reads its accounts, prefs and roster", async () => {
      const { d } = open();
      const romeo = (await d.keyval("shakespeare.example", "accounts").get("romeo"))!;
      expect(romeo).toEqual({
        salt: "c61b2a2f-192a-4deb-870b-ab1bd3544401",
        iteration_count: 10000,
        stored_key: "b8116d5d1ac0834841e94e846ae7939e94e0026a",
        server_key: "b8e144d94651c48790f5c797fbbf7fbb3e732068",
      });
      expect((await d.keyval("shakespeare.example", "accounts").users()).sort()).toEqual(["juliet", "mercutio", "romeo"]);
      const prefs = (await d.keyval("shakespeare.example", "archive_prefs").get("juliet"))!;
      expect(prefs["mercutio@shakespeare.example"]).toBe(false);
      expect(prefs[NON_STRING_KEYS]!.get(false)).toBe(true);
      const roster = (await d.keyval("shakespeare.example", "roster").get("romeo"))!;
      expect(roster["juliet@shakespeare.example"]).toEqual({ groups: {}, name: "Juliet", subscription: "none" });
      expect(roster[NON_STRING_KEYS]!.get(false)).toEqual({ pending: {}, version: 1 });
      await d.close();
    });

    it("serves its archives: counts, order, content, paging", async () => {
      const { d } = open();
      const a = d.archive("shakespeare.example", "archive");
      expect((await a.users()).sort()).toEqual(["juliet", "mercutio", "romeo"]);
      expect((await a.find("romeo", { total: true, limit: 0 })).total).toBe(89);
      expect((await a.find("juliet", { total: true, limit: 0 })).total).toBe(81);
      expect((await a.find("mercutio", { total: true, limit: 0 })).total).toBe(8);
      const first = (await a.find("romeo", { limit: 1 })).items[0]!;
      expect(first.id).toBe("cc454548-b164-4ab4-b2f8-dd464dbb776d");
      expect(first.stanza.getChildText("body")).toBe("But, soft! what light through yonder window breaks? (0)");
      const last = (await a.find("juliet", { limit: 1, reverse: true })).items[0]!;
      expect(last.id).toBe("4f4806d2-acf3-47a8-8ac4-f3503e588f0f");
      expect(last.stanza.getChild("request", "urn:xmpp:receipts")).toBeDefined();
      const fromMercutio = await a.find("romeo", { with: "mercutio@shakespeare.example", total: true });
      expect(fromMercutio.total).toBe(8);
      const page2 = await a.find("romeo", { after: first.id, limit: 5 });
      expect(page2.items).toHaveLength(5);
      expect(page2.items[0]!.pos).toBeGreaterThan(first.pos);
      await d.close();
    });

    it("continues Prosody's sort_id sequence when mamkit appends", async () => {
      const { d, path } = open();
      const a = d.archive("shakespeare.example", "archive");
      const ref = await a.append("romeo", { stanza: xml("message", { type: "chat" }, xml("body", {}, "new")), when: Date.now(), with: "juliet@shakespeare.example" });
      expect(ref.pos).toBe(179);
      await d.close();
      const db = new Database(path, { readonly: true });
      expect(db.prepare('SELECT COUNT(*) AS n FROM "prosodyarchive" WHERE "user"=\'romeo\'').get()).toEqual({ n: 90 });
      db.close();
    });
  });
});
