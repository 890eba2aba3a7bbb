// The test kit on its memory driver needs no native build: better-sqlite3's
// addon is loaded only when a SQLite database is opened.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;

it("runs a kit test where better-sqlite3's addon cannot load, and says so only when SQLite is asked for", () => {
  const code = `
    const { createTestServer, xml } = await import(${JSON.stringify(join(root, "src/testing/index.ts"))});
    const t = createTestServer({ config: { modules_enabled: ["mam"] } });
    const alice = t.connect("alice@localhost/a");
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
    const items = (await t.host().openStore("archive", "archive").find("alice")).items.length;
    await t.stop();
    let sqlite = "opened";
    try { createTestServer({ storage: "sqlite" }); } catch (err) { sqlite = err.message; }
    console.log(JSON.stringify({ items, sqlite }));`;
  const r = spawnSync(
    process.execPath,
    ["--require", join(root, "test/fixtures/no-native-addon.cjs"), "--import", "tsx", "--input-type=module", "-e", code],
    { cwd: root, encoding: "utf8" },
  );
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout)).toEqual({ items: 1, sqlite: "cannot open SQLite database :memory:: no native addon here (test)" });
});
