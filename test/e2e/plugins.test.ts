// Your own modules in `mamkit serve` and the CLI, through Prosody's
// plugin_paths: the example module of examples/plugins (a file) and one
// written here (a folder), served over a real socket to @xmpp/client.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, Server } from "mamkit";
import { freePort, waitForPort } from "../helpers/net.js";
import { newClient } from "./helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "mamkit-plugins-"));
const configFile = join(dir, "config.json");
let child: ChildProcess | undefined;
let port = 0;

// a module in a folder of its own, a plain object (no import needed)
const GREETER = `export default {
  name: "greeter",
  options: { greeter_text: { type: "string", default: "hello" } },
  load(module) {
    module.hook("iq-get/host/urn:example:greet:greet", ({ origin, stanza }) => {
      const reply = stanza.clone();
      reply.attrs = { type: "result", id: stanza.attrs.id, to: stanza.attrs.from, from: stanza.attrs.to };
      reply.children = [];
      reply.c("greet", { xmlns: "urn:example:greet" }).t(module.options.greeter_text);
      origin.send(reply);
      return true;
    });
  },
};
`;

function config(extra: Record<string, unknown> = {}) {
  return {
    storage: { driver: "sqlite", database: join(dir, "db.sqlite") },
    interfaces: ["127.0.0.1"],
    c2s_ports: [port],
    websocket_ports: [],
    c2s_require_encryption: false,
    allow_unencrypted_plain_auth: true,
    plugin_paths: ["plugins", join(root, "examples/plugins")],
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
  mkdirSync(join(dir, "plugins/greeter"), { recursive: true });
  writeFileSync(join(dir, "plugins/greeter/index.mjs"), GREETER);
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
