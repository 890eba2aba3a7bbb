// Paths in the config are relative to the config file's folder, not to the
// working directory (as in Prosody): the database, the certificates, plugin_paths.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfigFile, parseConfig } from "../../src/core/config.js";
import { ConfigError } from "../../src/core/errors.js";
import { createServer } from "../../src/server.js";
import { captureLog } from "../helpers/log.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A config file in a folder of its own (never the working directory, which is the repository). */
function configFile(value: unknown): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-paths-"));
  dirs.push(dir);
  mkdirSync(join(dir, "etc"));
  const file = join(dir, "etc", "mamkit.json");
  writeFileSync(file, JSON.stringify(value));
  return { dir: join(dir, "etc"), file };
}

describe("paths in a config file", () => {
  it("resolves the database, ssl files and plugin_paths against the file's folder", () => {
    const { dir, file } = configFile({
      storage: { driver: "sqlite", database: "../var/db.sqlite", synchronous: "normal" },
      ssl: { certificate: "certs/server.crt", key: "/srv/keys/server.key" },
      plugin_paths: ["plugins", "/usr/lib/mamkit/plugins", "./more/../others"],
      hosts: { "a.example": { ssl: { certificate: "a.crt", key: "a.key" } }, "b.example": {} },
    });
    expect(process.cwd()).not.toBe(dir);
    const c = loadConfigFile(file);
    expect(c.baseDir).toBe(dir);
    expect(c.storage).toEqual({ driver: "sqlite", database: resolve(dir, "../var/db.sqlite"), synchronous: "normal" });
    expect(c.pluginPaths).toEqual([join(dir, "plugins"), "/usr/lib/mamkit/plugins", join(dir, "others")]);
    // what c2s/tls.ts reads through host.option("ssl")
    expect(c.global.ssl).toEqual({ certificate: join(dir, "certs/server.crt"), key: "/srv/keys/server.key" });
    expect(c.hosts.get("a.example")!.ssl).toEqual({ certificate: join(dir, "a.crt"), key: join(dir, "a.key") });
    expect(c.hosts.get("b.example")!.ssl).toBeUndefined();
    expect(c.global.plugin_paths).toEqual(c.pluginPaths);
    expect((c.global.storage as { database: string }).database).toBe(c.storage.driver === "sqlite" && c.storage.database);
  });

  it("a host sees the resolved certificate, its own or the global one", async () => {
    const { dir, file } = configFile({
      storage: "memory",
      ssl: { certificate: "g.crt", key: "g.key" },
      hosts: { "a.example": { ssl: { certificate: "a.crt", key: "a.key" } }, "b.example": {} },
    });
    const server = createServer({ config: loadConfigFile(file), logger: captureLog().logger });
    expect(server.host("a.example").option("ssl")).toEqual({ certificate: join(dir, "a.crt"), key: join(dir, "a.key") });
    expect(server.host("b.example").option("ssl")).toEqual({ certificate: join(dir, "g.crt"), key: join(dir, "g.key") });
    await server.stop();
  });

  it("the default database is data/mamkit.sqlite beside the file; :memory: and absolute paths stay", () => {
    expect(loadConfigFile(configFile({ hosts: {} }).file).storage).toMatchObject({ database: join(dirs.at(-1)!, "etc", "data", "mamkit.sqlite") });
    const { dir, file } = configFile({ storage: "sqlite", hosts: {} });
    expect(loadConfigFile(file).storage).toMatchObject({ database: join(dir, "data/mamkit.sqlite") });
    expect(loadConfigFile(configFile({ storage: { driver: "sqlite", database: ":memory:" }, hosts: {} }).file).storage).toMatchObject({
      database: ":memory:",
    });
    expect(loadConfigFile(configFile({ storage: { driver: "sqlite", database: "/var/lib/x.db" }, hosts: {} }).file).storage).toMatchObject({
      database: "/var/lib/x.db",
    });
  });

  it("a file named by a relative path: the path is the working directory's, what is in it the file's", () => {
    const { dir, file } = configFile({ storage: { driver: "sqlite", database: "db.sqlite" }, hosts: {} });
    const c = loadConfigFile(relative(process.cwd(), file));
    expect(c.baseDir).toBe(dir);
    expect(c.storage).toMatchObject({ database: join(dir, "db.sqlite") });
  });

  it("leaves the object it was given as it was", () => {
    const input = { ssl: { certificate: "c", key: "k" }, plugin_paths: ["p"], storage: { driver: "sqlite", database: "d" }, hosts: { x: { ssl: { certificate: "c", key: "k" } } } };
    const copy = structuredClone(input);
    parseConfig(input, { baseDir: "/etc/mamkit" });
    expect(input).toEqual(copy);
  });
});

describe("parseConfig's baseDir", () => {
  it("is the working directory by default", () => {
    const c = parseConfig({ plugin_paths: ["p"], hosts: {} });
    expect(c.baseDir).toBe(process.cwd());
    expect(c.pluginPaths).toEqual([join(process.cwd(), "p")]);
  });

  it("can be given, and is made absolute", () => {
    const c = parseConfig({ ssl: { certificate: "c.pem", key: "k.pem" }, storage: { driver: "sqlite" }, hosts: {} }, { baseDir: "/etc/mamkit" });
    expect(c.baseDir).toBe("/etc/mamkit");
    expect(c.global.ssl).toEqual({ certificate: "/etc/mamkit/c.pem", key: "/etc/mamkit/k.pem" });
    expect(c.storage).toMatchObject({ database: "/etc/mamkit/data/mamkit.sqlite" });
    expect(parseConfig({ hosts: {} }, { baseDir: "conf" }).baseDir).toBe(resolve("conf"));
  });

  it("parsing a parsed config's global section again gives the same paths", () => {
    const c = parseConfig({ ssl: { certificate: "c", key: "k" }, plugin_paths: ["p"], storage: { driver: "sqlite", database: "d" }, hosts: {} }, { baseDir: "/etc/mamkit" });
    const again = parseConfig(c.global, { baseDir: "/elsewhere" });
    expect([again.global.ssl, again.pluginPaths, again.storage]).toEqual([c.global.ssl, c.pluginPaths, c.storage]);
  });

  it("plugin_paths is a global option, defaulting to none", () => {
    expect(parseConfig({ hosts: {} }).pluginPaths).toEqual([]);
    expect(() => parseConfig({ hosts: { x: { plugin_paths: ["p"] } } })).toThrow(ConfigError);
  });
});
