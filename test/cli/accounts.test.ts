// mamkit adduser / passwd / deluser / serve as real processes.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { xml } from "../../src/xmpp/stanza.js";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-accounts-"));
const db = join(dir, "data", "db.sqlite");
const config = join(dir, "config.json");
writeFileSync(
  config,
  JSON.stringify({
    log: { level: "info" },
    storage: { driver: "sqlite", database: db },
    c2s_ports: [0],
    websocket_ports: [0],
    modules_enabled: ["saslauth", "mam"],
    hosts: { localhost: {} },
  }),
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bin = [process.execPath, "--import", "tsx", join(root, "src/cli/bin.ts")];
function mamkit(args: string[], input?: string) {
  const r = spawnSync(bin[0]!, [...bin.slice(1), ...args, "--config", config], { cwd: root, encoding: "utf8", input });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("account commands", () => {
  it("adduser stores Prosody's hashed credentials, never the password, and refuses duplicates", async () => {
    const r = mamkit(["adduser", "Alice@localhost"], "correct horse\n");
    expect([r.code, r.out.trim()]).toEqual([0, "created alice@localhost"]);
    const d = new SqliteDriver(db);
    const a = (await d.keyval("localhost", "accounts").get("alice"))!;
    await d.close();
    expect(Object.keys(a).sort()).toEqual(["iteration_count", "salt", "server_key", "server_key_sha256", "stored_key", "stored_key_sha256"]);
    expect(a.iteration_count).toBe(10000);
    expect(JSON.stringify(a)).not.toContain("correct horse");
    expect(mamkit(["adduser", "alice@localhost"], "x\n").code).toBe(1);
  });

  it("passwd changes the keys; refuses unknown accounts, bad JIDs, other hosts and empty passwords", async () => {
    const before = new SqliteDriver(db);
    const k1 = (await before.keyval("localhost", "accounts").get("alice"))!.stored_key;
    await before.close();
    expect(mamkit(["passwd", "alice@localhost"], "battery staple\n").code).toBe(0);
    const after = new SqliteDriver(db);
    expect((await after.keyval("localhost", "accounts").get("alice"))!.stored_key).not.toBe(k1);
    await after.close();
    expect(mamkit(["passwd", "nobody@localhost"], "x\n")).toMatchObject({ code: 1, err: "mamkit passwd: no account nobody@localhost\n" });
    expect(mamkit(["adduser", "bad@@jid"], "x\n").code).toBe(2);
    expect(mamkit(["adduser", "bob@elsewhere.example"], "x\n").err).toContain("elsewhere.example is not a host");
    expect(mamkit(["adduser", "bob@localhost"], "\n").err).toContain("empty password refused");
  });

  it("deluser removes the account, its archive and its other data", async () => {
    const d = new SqliteDriver(db);
    await d.archive("localhost", "archive").append("alice", { stanza: xml("message", {}, xml("body", {}, "x")), when: Date.now(), with: "bob@localhost" });
    await d.keyval("localhost", "archive_prefs").set("alice", { "bob@localhost": true });
    await d.close();
    expect(mamkit(["deluser", "--yes", "alice@localhost"]).code).toBe(0);
    const e = new SqliteDriver(db);
    expect(await e.keyval("localhost", "accounts").get("alice")).toBeUndefined();
    expect(await e.keyval("localhost", "archive_prefs").get("alice")).toBeUndefined();
    expect((await e.archive("localhost", "archive").summary("alice")).count).toBe(0);
    await e.close();
    expect(mamkit(["deluser", "-y", "alice@localhost"]).code).toBe(1);
  });

  it("deluser needs --yes when standard input is not a terminal, and then keeps the account", async () => {
    expect(mamkit(["adduser", "carol@localhost"], "pw\n").code).toBe(0);
    const r = mamkit(["deluser", "carol@localhost"], "y\n");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^mamkit deluser: standard input is not a terminal, so nobody can confirm: pass --yes to delete carol@localhost without asking\nusage: mamkit deluser/);
    const d = new SqliteDriver(db);
    expect(await d.keyval("localhost", "accounts").get("carol")).toBeDefined();
    await d.close();
    expect(mamkit(["deluser", "--yes", "carol@localhost"])).toMatchObject({ code: 0, err: "", out: "deleted carol@localhost and all its data\n" });
  });
});

/** Starts `mamkit serve`; resolves with the process and its c2s port once it listens. */
async function startServe() {
  const child = spawn(bin[0]!, [...bin.slice(1), "serve", "--config", config], { cwd: root });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 15_000);
    const check = () => {
      const line = out.split("\n").find((l) => l.includes('"msg":"server started"'));
      if (line) {
        clearTimeout(t);
        resolve(Number(String(JSON.parse(line).c2s[0]).split(":").pop()));
      } else setTimeout(check, 50);
    };
    check();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, port, exited, output: () => out };
}

describe("deluser beside a running server", () => {
  it("warns while mamkit serve holds the database, naming its pid; not after it stopped or was killed", async () => {
    const s = await startServe();
    expect(mamkit(["adduser", "dave@localhost"], "pw\n").code).toBe(0);
    const r = mamkit(["deluser", "-y", "dave@localhost"]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`mamkit deluser: warning: mamkit serve (pid ${s.child.pid}, since `);
    expect(r.err).toContain(`is using this database (${db}.serve-lock is locked)`);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    expect(mamkit(["adduser", "dave@localhost"], "pw\n").code).toBe(0);
    expect(mamkit(["deluser", "-y", "dave@localhost"])).toMatchObject({ code: 0, err: "" });
    // killed without a chance to clean up: the OS released its lock
    const k = await startServe();
    expect(mamkit(["adduser", "dave@localhost"], "pw\n").code).toBe(0);
    k.child.kill("SIGKILL");
    await k.exited;
    expect(mamkit(["deluser", "-y", "dave@localhost"])).toMatchObject({ code: 0, err: "" });
  }, 60_000);
});

describe("mamkit serve", () => {
  it("listens where configured and closes streams with system-shutdown on SIGTERM", async () => {
    const { child, port, exited, output } = await startServe();
    const socket = connect(port, "127.0.0.1");
    let got = "";
    socket.on("data", (d) => {
      got += d.toString();
    });
    socket.write("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>");
    while (!got.includes("</stream:features>")) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(got).toContain('<system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>');
    expect(output()).toContain('"msg":"server stopped"');
    socket.destroy();
  }, 30_000);
});
