// The RSM <count/> of unfiltered pages comes from a count kept in memory: it
// must stay exact with this connection's appends and deletes, with a batch
// rolled back, and with another connection (Prosody taking its turn, a second
// process, the CLI) writing to the same file.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../../src/storage/sqlite/driver.js";
import { xml } from "../../../src/xmpp/stanza.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-counts-"));
  dirs.push(dir);
  return join(dir, "db.sqlite");
}
const T = 1_700_000_000_000;
const msg = (n: number) => xml("message", { type: "chat", id: `m${n}` }, xml("body", {}, `m${n}`));

describe("SQLite: cached archive counts stay exact", () => {
  for (const checkpoints of ["inline", "worker"] as const) {
    it(`with this connection's writes, rollbacks, and other connections' writes (${checkpoints} checkpoints)`, async () => {
      const path = file();
      const d = new SqliteDriver(path, { checkpoints });
      const a = d.archive("h", "archive");
      const total = async (user = "u") => (await a.find(user, { total: true, limit: 1 })).total;
      const withP = async () => (await a.find("u", { with: "p@h", total: true, limit: 1 })).total;
      const withQ = async () => (await a.find("u", { with: "q@h", total: true, limit: 1 })).total;
      for (let i = 0; i < 5; i++) await a.append("u", { stanza: msg(i), when: T + i * 1000, with: "p@h" });
      expect(await total()).toBe(5);
      expect(await withP()).toBe(5);
      expect(await withQ()).toBe(0);
      await a.append("u", { stanza: msg(50), when: T, with: "q@h" });
      expect([await total(), await withP(), await withQ()]).toEqual([6, 5, 1]);
      expect(await a.delete("u", { with: "q@h" })).toBe(1);
      expect([await total(), await withP(), await withQ()]).toEqual([5, 5, 0]);
      // a second archive object of the same store (another module's) sees the same count
      const other = d.archive("h", "archive");
      await other.append("u", { stanza: msg(5), when: T, with: "p@h" });
      expect(await total()).toBe(6);
      expect(await other.delete("u", { limit: 2 })).toBe(2);
      expect(await total()).toBe(4);
      await a.append("u", { stanza: msg(6), when: T, with: "p@h", id: "fixed" });
      await a.append("u", { stanza: msg(7), when: T, with: "p@h", id: "fixed" }); // replaces
      expect(await total()).toBe(5);
      await d.durable();
      // a batch rolled back: its append is gone from the count too
      d.injectCommitFailures(1);
      await a.append("u", { stanza: msg(8), when: T, with: "p@h" });
      expect(await total()).toBe(6); // visible before its commit
      await expect(d.durable()).rejects.toThrow(/commit/);
      expect(await total()).toBe(5);
      // another connection writes to the file (as Prosody would)
      const prosody = new Database(path);
      prosody
        .prepare('INSERT INTO "prosodyarchive" ("host","user","store","when","with","key","type","value") VALUES (?,?,?,?,?,?,?,?)')
        .run("h", "u", "archive", T / 1000, "p@h", "from-prosody", "xml", "<message xmlns='jabber:client'/>");
      expect(await total()).toBe(6);
      prosody.prepare('DELETE FROM "prosodyarchive" WHERE "key" = ?').run("from-prosody");
      prosody.prepare('DELETE FROM "prosodyarchive" WHERE "user" = ? AND "key" = ?').run("u", "fixed");
      expect(await total()).toBe(4);
      expect(await withP()).toBe(4);
      prosody.close();
      await d.deleteUser("h", "u");
      expect(await total()).toBe(0);
      await d.close();
    });
  }
});
