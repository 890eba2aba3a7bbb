// mamkit retention --dry-run / run, as a real process on a SQLite database.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { xml } from "../../src/xmpp/stanza.js";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-retention-"));
const db = join(dir, "db.sqlite");
const config = join(dir, "config.json");
writeFileSync(
  config,
  JSON.stringify({ storage: { driver: "sqlite", database: db }, modules_enabled: ["mam_smart_retention"], hosts: { localhost: {} } }),
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PHONE = "11111111-1111-4111-8111-111111111111";

function mamkit(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), ...args, "--config", config], {
    cwd: root,
    encoding: "utf8",
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("mamkit retention", () => {
  it("shows what would go and why, then deletes it", async () => {
    const d = new SqliteDriver(db);
    const a = d.archive("localhost", "archive");
    const acked = await a.append("bob", { stanza: xml("message", {}, xml("body", {}, "seen")), when: Date.now() - 60_000, with: "carol@localhost" });
    await a.append("bob", { stanza: xml("message", {}, xml("body", {}, "unseen")), when: Date.now() - 60_000, with: "carol@localhost" });
    await d.map("localhost", "mam_smart_retention").set("bob", PHONE, { delivered: [[acked.pos, acked.pos]], firstSeen: 0, lastSeen: Date.now() });
    await d.close();

    const dry = mamkit("retention", "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("bob@localhost: would delete 1 message(s) (strategy one)");
    expect(dry.out).toContain(`client ${PHONE}: acknowledged positions ${acked.pos}; first seen at position 0`);
    const check = new SqliteDriver(db);
    expect((await check.archive("localhost", "archive").summary("bob")).count).toBe(2);
    await check.close();

    expect(mamkit("retention", "--dry-run", "--user", "nobody@localhost").out).toContain("would delete 0 message(s)");
    const run = mamkit("retention", "run");
    expect(run.code).toBe(0);
    expect(run.out).toContain("bob@localhost: deleted 1 message(s)");
    const after = new SqliteDriver(db);
    expect((await after.archive("localhost", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"))).toEqual(["unseen"]);
    await after.close();
  });

  it("refuses other uses", () => {
    expect(mamkit("retention").code).toBe(2);
    expect(mamkit("retention", "run", "--dry-run").code).toBe(2);
  });
});
