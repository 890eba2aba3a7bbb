// mam serving the archives and honouring the prefs of a database Prosody 0.12.3 wrote.
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";
import { chat, NS_MAM, runQuery } from "./helpers.js";

const FIXTURE = new URL("../fixtures/prosody-0.12.3-sample.sqlite", import.meta.url).pathname;
const HOST = "shakespeare.example";
let t: TestServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function open() {
  dir = mkdtempSync(join(tmpdir(), "mamkit-fixture-"));
  const path = join(dir, "prosody.sqlite");
  copyFileSync(FIXTURE, path);
  t = createTestServer({
    storage: new SqliteDriver(path),
    config: { modules_enabled: ["disco", "mam"], archive_expires_after: "never", hosts: { [HOST]: {} } },
  });
  return path;
}

function rows(path: string, user: string): { key: string; value: string }[] {
  const db = new Database(path, { readonly: true });
  const r = db.prepare('SELECT "key","value" FROM "prosodyarchive" WHERE "user"=? ORDER BY "sort_id"').all(user) as {
    key: string;
    value: string;
  }[];
  db.close();
  return r;
}

describe("mam on a database Prosody 0.12.3 wrote", () => {
  it("serves romeo's 89 archived messages in Prosody's order, with Prosody's ids", async () => {
    const path = open();
    const romeo = t!.connect(`romeo@${HOST}/balcony`);
    const expected = rows(path, "romeo");
    expect(expected).toHaveLength(89);
    const seen: string[] = [];
    let page = await runQuery(romeo, { max: 50 });
    expect(page.count).toBe(89);
    seen.push(...page.ids);
    page = await runQuery(romeo, { max: 50, after: page.last });
    expect(page.complete).toBe(true);
    seen.push(...page.ids);
    expect(seen).toEqual(expected.map((r) => r.key));
    expect(page.bodies.at(-1)).toBe("Good night, good night!");
    const fromMercutio = await runQuery(romeo, { fields: { with: `mercutio@${HOST}` } });
    expect(fromMercutio.count).toBe(8);
  });

  it("reads juliet's prefs as Prosody stored them, and honours them", async () => {
    open();
    const juliet = t!.connect(`juliet@${HOST}/garden`);
    const prefs = (await juliet.request(xml("iq", { type: "get" }, xml("prefs", { xmlns: NS_MAM })))).getChild("prefs", NS_MAM)!;
    expect(prefs.attrs.default).toBe("always");
    expect(prefs.getChild("never")!.getChildren("jid").map((j) => j.getText())).toEqual([`mercutio@${HOST}`]);
    const before = (await runQuery(juliet, { max: 0 })).count;
    await t!.connect(`mercutio@${HOST}/street`).send(chat(`juliet@${HOST}`, "a plague on both your houses"));
    await t!.connect(`romeo@${HOST}/balcony`).send(chat(`juliet@${HOST}`, "it is the east"));
    const after = await runQuery(juliet, { max: 0 });
    expect(after.count).toBe(before! + 1);
  });

  it("appends after Prosody's rows and answers metadata from them", async () => {
    const path = open();
    const romeo = t!.connect(`romeo@${HOST}/balcony`);
    const juliet = t!.connect(`juliet@${HOST}/garden`);
    await romeo.send(chat(`juliet@${HOST}`, "new from mamkit"));
    const delivered = juliet.take()[0]!;
    const id = delivered.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id as string;
    const all = rows(path, "juliet");
    expect(all.at(-1)!.key).toBe(id);
    expect(all.at(-1)!.value).toContain("<body>new from mamkit</body>");
    const md = (await juliet.request(xml("iq", { type: "get" }, xml("metadata", { xmlns: NS_MAM })))).getChild("metadata", NS_MAM)!;
    expect(md.getChild("start")!.attrs.id).toBe(all[0]!.key);
    expect(md.getChild("end")!.attrs.id).toBe(id);
  });
});
