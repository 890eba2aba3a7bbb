import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI as a real process (in the repository, or in `cwd`). */
function mamkit(...args: string[]) {
  return mamkitIn(root, undefined, ...args);
}

// tsx by its file, so that a process in another folder finds it
const tsx = pathToFileURL(createRequire(join(root, "package.json")).resolve("tsx")).href;

function mamkitIn(cwd: string, input: string | undefined, ...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", tsx, join(root, "src/cli/bin.ts"), ...args], { cwd, encoding: "utf8", input });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function config(name: string, value: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof value === "string" ? value : JSON.stringify(value));
  return p;
}

describe("mamkit check", () => {
  it("accepts config.example.json", () => {
    const r = mamkit("check", "--config", "config.example.json");
    expect(r.err).toBe("");
    expect(r.out).toMatch(/config.example.json: OK — hosts: localhost \(auth_internal_hashed, saslauth, sasl2, bind2, roster, presence, disco, ping, smacks, carbons, mam, mam_smart_retention\)/);
    expect(r.code).toBe(0);
  });

  it("exits non-zero naming the key of a bad value", () => {
    const r = mamkit("check", "--config", config("bad.json", { hosts: { "a.example": { modules_enabled: ["ping", 3] } } }));
    expect(r.code).toBe(1);
    expect(r.err).toContain('config: hosts["a.example"].modules_enabled[1]: expected a string, got 3');
  });

  it("exits non-zero for an unknown module, listing the known ones", () => {
    const r = mamkit("check", "-c", config("unknown.json", { modules_enabled: ["mam_typo"], hosts: { x: {} } }));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mamkit check: config: modules_enabled\[0\]: unknown module "mam_typo"; known modules: auth_internal_hashed, bind2, carbons, disco, mam, mam_smart_retention, ping, presence, roster, sasl2, saslauth, smacks\n$/);
  });

  it("names the position of an unknown module and a close known name", () => {
    const r = mamkit("check", "-c", config("typo.json", { modules_enabled: ["ping"], hosts: { "a.example": { modules_enabled: ["mam", "mam_smart_retenton"] } } }));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mamkit check: config: hosts\["a.example"\]\.modules_enabled\[1\]: unknown module "mam_smart_retenton" \(did you mean "mam_smart_retention"\?\); known modules: auth_internal_hashed, /);
  });

  it("warns about a disabled module nobody provides, and passes", () => {
    const r = mamkit("check", "-c", config("disabled.json", { modules_disabled: ["mam_typo"], hosts: { x: {} } }));
    expect(r.code).toBe(0);
    expect(r.err).toContain('warning: modules_disabled names no known module "mam_typo" (ignored): modules_disabled[0]');
  });

  it("names the full path of a bad storage key, in its own words", () => {
    const r = mamkit("check", "-c", config("sync.json", { storage: { driver: "sqlite", synchronous: "fast" }, hosts: { x: {} } }));
    expect([r.code, r.err]).toEqual([1, 'mamkit check: config: storage.synchronous: expected one of "full", "normal", got "fast"\n']);
    const p = mamkit("check", "-c", config("port.json", { c2s_ports: [70000], hosts: { x: {} } }));
    expect([p.code, p.err]).toEqual([1, "mamkit check: config: c2s_ports[0]: expected a whole number from 0 to 65535, got 70000\n"]);
  });

  it("exits non-zero for a file that is not JSON, naming it", () => {
    const p = config("broken.json", "{ hosts: ");
    const r = mamkit("check", "--config", p);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mamkit check: config: ${p}:1:3: not valid JSON: expected a key in double quotes\n`);
    const q = config("comma.json", '{\n  "storage": "memory",\n  "c2s_ports": [5222]\n  "hosts": { "x": {} }\n}\n');
    expect(mamkit("check", "--config", q).err).toBe(`mamkit check: config: ${q}:3:22: not valid JSON: expected ',' or '}' after this value\n`);
  });

  it("warns about unknown keys but passes", () => {
    const r = mamkit("check", "--config", config("warn.json", { hosts: { x: {} }, archive_expire_after: "1w" }));
    expect(r.code).toBe(0);
    expect(r.err).toContain("warning: unknown config key (no known module reads it): archive_expire_after");
  });

  it("reads paths relative to the config file, whatever the working directory", () => {
    const etc = join(dir, "etc");
    const elsewhere = join(dir, "elsewhere");
    mkdirSync(etc, { recursive: true });
    mkdirSync(elsewhere, { recursive: true });
    writeFileSync(join(etc, "mamkit.json"), JSON.stringify({ storage: { driver: "sqlite", database: "db/mamkit.sqlite" }, hosts: { localhost: {} } }));
    // --config relative to the working directory; the database relative to the file
    const c = mamkitIn(elsewhere, undefined, "check", "--config", "../etc/mamkit.json");
    expect([c.code, c.err]).toEqual([0, ""]);
    const r = mamkitIn(elsewhere, "secret\n", "adduser", "alice@localhost", "--config", "../etc/mamkit.json");
    expect([r.code, r.out.trim()]).toEqual([0, "created alice@localhost"]);
    expect(existsSync(join(etc, "db", "mamkit.sqlite"))).toBe(true);
    expect(readdirSync(elsewhere)).toEqual([]); // no database, no data/ created where it was run
  });

  it("refuses unknown commands and options with usage", () => {
    expect(mamkit("frobnicate").code).toBe(2);
    const r = mamkit("check", "--colour");
    expect(r.code).toBe(2);
    expect(r.err).toContain("usage: mamkit");
  });
});
