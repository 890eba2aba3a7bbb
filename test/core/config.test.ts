import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_SQLITE_DATABASE, loadConfigFile, parseConfig } from "../../src/core/config.js";
import { ConfigError, type HostError } from "../../src/core/errors.js";
import { createServer } from "../../src/server.js";
import { captureLog } from "../helpers/log.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function expectConfigError(input: unknown, keyPath: string, expected: RegExp) {
  try {
    parseConfig(input);
    expect.unreachable();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).keyPath).toBe(keyPath);
    expect((e as ConfigError).message).toMatch(expected);
  }
}

describe("parseConfig", () => {
  it("accepts a minimal config and fills defaults", () => {
    const c = parseConfig({ hosts: { "Example.ORG": {} } });
    expect([...c.hosts.keys()]).toEqual(["example.org"]);
    // without a file, relative paths are the working directory's
    expect(c.storage).toEqual({ driver: "sqlite", database: resolve(DEFAULT_SQLITE_DATABASE), synchronous: "full" });
    expect(c.logLevel).toBe("info");
  });

  it("accepts the storage shorthands", () => {
    expect(parseConfig({ storage: "memory", hosts: {} }).storage).toEqual({ driver: "memory" });
    expect(parseConfig({ storage: { driver: "sqlite", database: "x.db" }, hosts: {} }).storage).toEqual({
      driver: "sqlite",
      database: resolve("x.db"),
      synchronous: "full",
    });
    expect(parseConfig({ storage: { driver: "sqlite", synchronous: "normal" }, hosts: {} }).storage).toMatchObject({
      synchronous: "normal",
    });
  });

  it("names the key path and what was expected", () => {
    expectConfigError({ modules_enabled: "mam" }, "modules_enabled", /expected a list of module names, got "mam"/);
    expectConfigError({ modules_enabled: ["mam", 3] }, "modules_enabled[1]", /expected a string, got 3/);
    expectConfigError({ modules_enabled: ["Bad-Name"] }, "modules_enabled[0]", /module name/);
    expectConfigError({ log: { level: "loud" } }, "log.level", /expected one of "fatal", .*"silent"/);
    expectConfigError({ log: { level: "info", colour: true } }, "log.colour", /no "colour" here: log takes level/);
    expectConfigError({ storage: "mongodb" }, "storage", /one of "memory", "sqlite", "postgres"/);
    expectConfigError({ hosts: { "a.example": { modules_disabled: [1] } } }, 'hosts["a.example"].modules_disabled[0]', /a string/);
    expectConfigError({ hosts: { "not a domain": {} } }, 'hosts["not a domain"]', /a domain name/);
    expectConfigError({ hosts: { "a.example": { storage: "memory" } } }, 'hosts["a.example"].storage', /global option/);
    expectConfigError({ hosts: [] }, "hosts", /expected an object \{ "domain": \{ \.\.\.options \} \}, got a list/);
    expectConfigError([1], "(top level)", /a JSON object/);
    // RFC 6120 §6.4.5: at least 2 retries, at most 5
    expectConfigError({ sasl_max_retries: 1 }, "sasl_max_retries", /expected a whole number from 2 to 5, got 1/);
    expectConfigError({ hosts: { "a.example": { sasl_max_retries: 9 } } }, 'hosts["a.example"].sasl_max_retries', /from 2 to 5, got 9/);
    expectConfigError({ sasl_max_retries: 2.5 }, "sasl_max_retries", /expected a whole number from 2 to 5, got 2.5/);
  });
});

describe("loadConfigFile", () => {
  function file(text: string): string {
    const d = mkdtempSync(join(tmpdir(), "mamkit-config-"));
    dirs.push(d);
    const p = join(d, "config.json");
    writeFileSync(p, text);
    return p;
  }

  it("reads a JSON file", () => {
    expect(loadConfigFile(file('{"hosts":{"a.example":{}}}')).hosts.has("a.example")).toBe(true);
  });

  it("reports an unreadable file and bad JSON with the file name", () => {
    try {
      loadConfigFile("/nonexistent/mamkit.json");
      expect.unreachable();
    } catch (e) {
      expect((e as HostError).code).toBe("MAMKIT_ERR_CONFIG_FILE");
      expect((e as Error).message).toContain("/nonexistent/mamkit.json");
    }
    const bad = file('{"hosts": {');
    expect(() => loadConfigFile(bad)).toThrow(`config: ${bad}:1:11: not valid JSON: an object opened here has no closing '}'`);
  });

  it("the shipped config.example.json is valid and starts a server", async () => {
    const c = loadConfigFile(new URL("../../config.example.json", import.meta.url).pathname);
    const { logger, lines } = captureLog();
    const server = createServer({ config: { ...c.global, storage: "memory" }, logger });
    expect([...server.host("localhost").modules.keys()]).toEqual(["auth_internal_hashed", "saslauth", "sasl2", "bind2", "roster", "presence", "disco", "ping", "smacks", "carbons", "mam", "mam_smart_retention"]);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]); // no unknown keys, no warnings
    await server.stop();
  });

  it("refuses a config without hosts", () => {
    expect(() => createServer({ config: { storage: "memory" }, logger: captureLog().logger })).toThrow(
      /config: hosts: expected at least one host/,
    );
  });
});
