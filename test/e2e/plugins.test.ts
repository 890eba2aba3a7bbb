// Your own modules in `mamkit serve` and the CLI, through Prosody's
// plugin_paths: the example module of examples/plugins (a file) and one
// written here (a folder), served over a real socket to @xmpp/client.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, createServer, Server } from "mamkit";
import { freePort, waitForPort } from "../helpers/net.js";
import { newClient } from "./helpers.js";

// the server's certificate is the self-signed one it generates at first start
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "mamkit-plugins-"));
const configFile = join(dir, "config.json");
let child: ChildProcess | undefined;
let port = 0;

function config(extra: Record<string, unknown> = {}) {
  return {
    storage: { driver: "sqlite", database: join(dir, "db.sqlite") },
    interfaces: ["127.0.0.1"],
    c2s_ports: [port],
    websocket_ports: [],
    c2s_require_encryption: false,
    allow_unencrypted_plain_auth: true,
    // relative to the config file's folder: the example's folder, and the test's (a module in a folder)
    plugin_paths: [relative(dir, join(root, "examples/plugins")), relative(dir, join(root, "test/fixtures/plugins"))],
    modules_enabled: ["saslauth", "roster", "presence", "ping", "last_seen", "greeter"],
    last_seen_min_interval: 0,
    greeter_text: "welcome to mamkit",
    hosts: { localhost: {} },
    ...extra,
  };
}

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), ...args], { cwd: root, encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  port = await freePort();
  writeFileSync(configFile, JSON.stringify(config()));
  const setup = await Server.fromFile(configFile, { logger: createLogger({ level: "silent" }), timers: false });
  expect(setup.hosts.get("localhost")!.isLoaded("last_seen")).toBe(true);
  for (const u of ["alice", "bob"]) await setup.accounts("localhost").create(u, `${u}-password`);
  await setup.stop();
});

afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

describe("plugin_paths", () => {
  it("mamkit check loads the modules and validates their options", () => {
    const ok = cli("check", "--config", configFile);
    expect(ok.err).toBe("");
    expect(ok.out).toContain("hosts: localhost (auth_internal_hashed, saslauth, roster, presence, ping, last_seen, greeter)");
    expect(ok.code).toBe(0);

    const bad = join(dir, "bad-option.json");
    writeFileSync(bad, JSON.stringify({ ...config(), last_seen_min_interval: -5 }));
    const r = cli("check", "--config", bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/last_seen_min_interval \(module last_seen\): expected a whole number .*0.*, got -5/);
  });

  it("a module in no folder says where it was looked for", () => {
    const p = join(dir, "missing.json");
    writeFileSync(p, JSON.stringify({ ...config(), modules_enabled: ["ping", "lastseen"] }));
    const r = cli("check", "--config", p);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `modules_enabled[1]: unknown module "lastseen" (not in plugin_paths either: looked for lastseen.js, mod_lastseen.js, lastseen/index.js (or .mjs) in ${join(root, "examples/plugins")}, ${join(root, "test/fixtures/plugins")}); known modules:`,
    );
  });

  it("createServer (synchronous) says to use Server.create for a module that is in plugin_paths", () => {
    expect(() => createServer({ config: { ...config(), plugin_paths: [join(root, "examples/plugins")] } })).toThrow(
      /last_seen.js is there, but this server was built with `new Server`\/`createServer`, which does not import from plugin_paths: use `await Server.create\(...\)`/,
    );
  });

  it("a file that exports no module definition is an error naming it", () => {
    mkdirSync(join(dir, "broken"), { recursive: true });
    writeFileSync(join(dir, "broken/nothing.js"), "export const x = 1;\n");
    const p = join(dir, "broken.json");
    writeFileSync(p, JSON.stringify({ ...config(), plugin_paths: ["broken"], modules_enabled: ["nothing"] }));
    const r = cli("check", "--config", p);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`module "nothing" (${join(dir, "broken/nothing.js")}): expected a default export made with defineModule("nothing", …), got no default export`);
  });

  it("mamkit serve runs them for real clients", async () => {
    child = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), "serve", "--config", configFile], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitForPort(port);
    const service = `xmpp://127.0.0.1:${port}`;
    const alice = newClient(service, "alice");
    const bob = newClient(service, "bob");
    await alice.start();
    await bob.start();
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
    await new Promise((r) => setTimeout(r, 300));
    const last = await bob.iqCaller.request(xml("iq", { type: "get", to: "alice@localhost" }, xml("query", { xmlns: "jabber:iq:last" })));
    expect(Number(last.getChild("query", "jabber:iq:last")!.attrs.seconds)).toBeGreaterThanOrEqual(0);
    const greet = await bob.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("greet", { xmlns: "urn:example:greet" })));
    expect(greet.getChildText("greet", "urn:example:greet")).toBe("welcome to mamkit");
    await alice.stop();
    await bob.stop();
    child.kill("SIGTERM");
    await new Promise((r) => child!.once("exit", r));
    expect(out).toContain('"msg":"server started"');
  }, 30_000);
});
