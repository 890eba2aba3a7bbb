import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI as a real process. */
function mamkit(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
  });
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
    expect(r.err).toMatch(/unknown module "mam_typo"; known modules: auth_internal_hashed, bind2, carbons, disco, mam, mam_smart_retention, ping, presence, roster, sasl2, saslauth, smacks/);
  });

  it("exits non-zero for a file that is not JSON, naming it", () => {
    const p = config("broken.json", "{ hosts: ");
    const r = mamkit("check", "--config", p);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`config: ${p}:1:3: not valid JSON: expected a key in double quotes\n`);
    const q = config("comma.json", '{\n  "storage": "memory",\n  "c2s_ports": [5222]\n  "hosts": { "x": {} }\n}\n');
    expect(mamkit("check", "--config", q).err).toBe(`config: ${q}:3:22: not valid JSON: expected ',' or '}' after this value\n`);
  });

  it("warns about unknown keys but passes", () => {
    const r = mamkit("check", "--config", config("warn.json", { hosts: { x: {} }, archive_expire_after: "1w" }));
    expect(r.code).toBe(0);
    expect(r.err).toContain("warning: unknown config key (no known module reads it): archive_expire_after");
  });

  it("refuses unknown commands and options with usage", () => {
    expect(mamkit("frobnicate").code).toBe(2);
    const r = mamkit("check", "--colour");
    expect(r.code).toBe(2);
    expect(r.err).toContain("usage: mamkit");
  });
});
