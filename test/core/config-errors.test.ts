// Config errors in our words: every core key with a bad value names its full
// path, what was expected and what was there; no zod wording gets through.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CORE_KEYS, GLOBAL_ONLY_KEYS, issueExpected, parseConfig } from "../../src/core/config.js";
import { ConfigError } from "../../src/core/errors.js";

/** What zod says in its own words (v4): none of it may reach a message. */
const ZOD_WORDING = /Invalid input|Invalid string|Invalid option|Too (big|small)|received|expected (number|int|string|record|array) to|<=|>=|Unrecognized key|must match pattern/;

function errorOf(input: Record<string, unknown>): ConfigError {
  try {
    parseConfig({ hosts: { "a.example": {} }, ...input });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`accepted: ${JSON.stringify(input)}`);
}

const GLOBAL_ONLY_EXAMPLES: Record<string, unknown> = {
  log: { level: "info" },
  storage: "memory",
  hosts: {},
  interfaces: ["*"],
  c2s_ports: [5222],
  websocket_ports: [5280],
  c2s_stanza_size_limit: 4096,
  c2s_timeout: 30,
  c2s_read_timeout: 30,
  c2s_tcp_keepalives: true,
  consider_websocket_secure: false,
  plugin_paths: ["plugins"],
};

// [config, the message after "config: "]
const CASES: [Record<string, unknown>, string][] = [
  [{ log: "info" }, "log: expected an object, got \"info\""],
  [{ log: { level: "loud" } }, 'log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"'],
  [{ log: { colour: true } }, 'log.colour: expected no "colour" here: log takes level, format'],
  [{ storage: 42 }, 'storage: expected one of "memory", "sqlite", "postgres", "sql" or an object { "driver": "memory" | "sqlite" | "postgres", ... }, got 42'],
  [{ storage: null }, 'storage: expected one of "memory", "sqlite", "postgres", "sql" or an object { "driver": "memory" | "sqlite" | "postgres", ... }, got null'],
  [{ storage: ["sqlite"] }, 'storage: expected one of "memory", "sqlite", "postgres", "sql" or an object { "driver": "memory" | "sqlite" | "postgres", ... }, got a list'],
  [{ storage: "postgres" }, 'storage: expected an object { "driver": "postgres", "url": "postgres://..." }: the postgres driver needs its URL, got "postgres"'],
  [{ storage: "mysql" }, 'storage: expected one of "memory", "sqlite", "postgres", "sql" or an object { "driver": "memory" | "sqlite" | "postgres", ... }, got "mysql"'],
  [{ storage: { driver: "postgres" } }, "storage.url: expected a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE); it is missing"],
  [{ storage: { driver: "postgres", url: "mysql://x" } }, 'storage.url: expected a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE), got "mysql://x"'],
  [{ storage: { driver: "postgres", url: "postgres://h/db", pool: 0 } }, "storage.pool: expected a whole number from 1 to 1000, got 0"],
  [{ storage: "sql" }, 'sql: expected an object { "driver": "PostgreSQL" | "SQLite3", ... }, which storage "sql" needs; it is missing'],
  [{ storage: "sql", sql: { driver: "MySQL" } }, 'sql.driver: expected one of "PostgreSQL", "SQLite3", got "MySQL"'],
  [{ storage: "sql", sql: { driver: "PostgreSQL", port: "5432" } }, "sql.port: expected a whole number from 1 to 65535, got \"5432\""],
  [{ storage: {} }, 'storage.driver: expected one of "memory", "sqlite", "postgres"; it is missing'],
  [{ storage: { driver: "mysql" } }, 'storage.driver: expected one of "memory", "sqlite", "postgres", got "mysql"'],
  [{ storage: { driver: 1 } }, 'storage.driver: expected one of "memory", "sqlite", "postgres", got 1'],
  [{ storage: { driver: "sqlite", synchronous: "fast" } }, 'storage.synchronous: expected one of "full", "normal", got "fast"'],
  [{ storage: { driver: "sqlite", database: "" } }, 'storage.database: expected a file name (a non-empty string), got ""'],
  [{ storage: { driver: "sqlite", database: 7 } }, "storage.database: expected a file name (a non-empty string), got 7"],
  [{ storage: { driver: "sqlite", commit_delay_ms: 5000 } }, "storage.commit_delay_ms: expected a whole number from 0 to 1000, got 5000"],
  [{ storage: { driver: "memory", commit_delay_ms: 0.5 } }, "storage.commit_delay_ms: expected a whole number from 0 to 1000, got 0.5"],
  [{ storage: { driver: "sqlite", commit_max_writes: 0 } }, "storage.commit_max_writes: expected a whole number from 1 to 100000, got 0"],
  [
    { storage: { driver: "sqlite", databse: "x.db" } },
    'storage.databse: expected no "databse" here (did you mean "database"?): storage with driver "sqlite" takes driver, database, synchronous, commit_delay_ms, commit_max_writes',
  ],
  [
    { storage: { driver: "memory", database: "x.db" } },
    'storage.database: expected no "database" here: storage with driver "memory" takes driver, commit_delay_ms, commit_max_writes',
  ],
  [{ interfaces: "*" }, 'interfaces: expected a list of addresses, got "*"'],
  [{ interfaces: [""] }, 'interfaces[0]: expected an address (a non-empty string, "*" for all), got ""'],
  [{ c2s_ports: [70000] }, "c2s_ports[0]: expected a whole number from 0 to 65535, got 70000"],
  [{ c2s_ports: [5222, -1] }, "c2s_ports[1]: expected a whole number from 0 to 65535, got -1"],
  [{ c2s_ports: [52.5] }, "c2s_ports[0]: expected a whole number from 0 to 65535, got 52.5"],
  [{ c2s_ports: ["5222"] }, 'c2s_ports[0]: expected a whole number from 0 to 65535, got "5222"'],
  [{ c2s_ports: 5222 }, "c2s_ports: expected a list of port numbers, got 5222"],
  [{ websocket_ports: [2 ** 60] }, `websocket_ports[0]: expected a whole number from 0 to 65535, got ${2 ** 60}`],
  [{ c2s_stanza_size_limit: 100 }, "c2s_stanza_size_limit: expected a whole number of at least 1024, got 100"],
  [{ c2s_timeout: 0 }, "c2s_timeout: expected a number of seconds greater than 0, got 0"],
  [{ c2s_read_timeout: "14m" }, 'c2s_read_timeout: expected a number of seconds greater than 0, got "14m"'],
  [{ c2s_tcp_keepalives: "yes" }, 'c2s_tcp_keepalives: expected true or false, got "yes"'],
  [{ consider_websocket_secure: 1 }, "consider_websocket_secure: expected true or false, got 1"],
  [{ plugin_paths: "plugins" }, 'plugin_paths: expected a list of folders, got "plugins"'],
  [{ plugin_paths: ["ok", ""] }, 'plugin_paths[1]: expected a folder (a non-empty string), got ""'],
  [{ hosts: [] }, 'hosts: expected an object { "domain": { ...options } }, got a list'],
  [{ hosts: { "a.example": 3 } }, 'hosts["a.example"]: expected an object of options for this host, got 3'],
  [{ hosts: { "a@b.example": {} } }, 'hosts["a@b.example"]: expected a domain name as the key, got "a@b.example"'],
  [{ modules_enabled: "mam" }, 'modules_enabled: expected a list of module names, got "mam"'],
  [{ modules_enabled: ["mam", 3] }, "modules_enabled[1]: expected a string, got 3"],
  [{ modules_disabled: ["Mod-Mam"] }, 'modules_disabled[0]: expected a module name (lower-case letters, digits, _), got "Mod-Mam"'],
  [{ authentication: "ldap" }, 'authentication: expected one of "internal_hashed", "none", got "ldap"'],
  [{ c2s_require_encryption: "no" }, 'c2s_require_encryption: expected true or false, got "no"'],
  [{ allow_unencrypted_plain_auth: null }, "allow_unencrypted_plain_auth: expected true or false, got null"],
  [{ sasl_max_retries: 6 }, "sasl_max_retries: expected a whole number from 2 to 5, got 6"],
  [{ ssl: "cert.pem" }, 'ssl: expected an object { "certificate": FILE, "key": FILE }, got "cert.pem"'],
  [{ ssl: { certificate: "c.pem" } }, "ssl.key: expected a file name (a non-empty string); it is missing"],
  [{ ssl: { certificate: "", key: "k.pem" } }, 'ssl.certificate: expected a file name (a non-empty string), got ""'],
  [{ ssl: { cert: "c.pem", key: "k.pem" } }, 'ssl.cert: expected no "cert" here (did you mean "certificate"?): ssl takes certificate, key'],
  // shared keys in a host section carry the host's path
  [{ hosts: { "a.example": { modules_enabled: ["ping", 3] } } }, 'hosts["a.example"].modules_enabled[1]: expected a string, got 3'],
  [{ hosts: { "a.example": { ssl: { certificate: "c", key: "k", chain: "x" } } } }, 'hosts["a.example"].ssl.chain: expected no "chain" here: ssl takes certificate, key'],
  [{ hosts: { "a.example": { sasl_max_retries: 1 } } }, 'hosts["a.example"].sasl_max_retries: expected a whole number from 2 to 5, got 1'],
  [{ hosts: { "a.example": { authentication: true } } }, 'hosts["a.example"].authentication: expected one of "internal_hashed", "none", got true'],
];

describe("core key errors", () => {
  it.each(CASES)("%j", (input, message) => {
    const e = errorOf(input);
    expect(e.message).toBe(`config: ${message}`);
    expect(e.code).toBe("MAMKIT_ERR_CONFIG_INVALID");
    expect(e.message).not.toMatch(ZOD_WORDING);
  });

  it("the table covers every core key", () => {
    const covered = new Set(CASES.flatMap(([input]) => Object.keys(input)));
    for (const [input] of CASES) if (typeof input.hosts === "object") for (const s of Object.values(input.hosts as object)) if (typeof s === "object") for (const k of Object.keys(s)) covered.add(k);
    expect([...CORE_KEYS].filter((k) => !covered.has(k))).toEqual([]);
  });

  it("a global-only key in a host section names the host and the key", () => {
    for (const key of GLOBAL_ONLY_KEYS) {
      const e = errorOf({ hosts: { "a.example": { [key]: GLOBAL_ONLY_EXAMPLES[key] } } });
      expect(e.message).toBe(`config: hosts["a.example"].${key}: expected no "${key}" here: it is a global option`);
    }
  });

  it("any value of any core key is accepted or refused in our words", () => {
    fc.assert(
      fc.property(fc.constantFrom(...CORE_KEYS), fc.jsonValue(), fc.boolean(), (key, value, inHost) => {
        const input =
          inHost && !GLOBAL_ONLY_KEYS.has(key) ? { hosts: { "a.example": { [key]: value } } } : { hosts: { "a.example": {} }, [key]: value };
        try {
          parseConfig(input);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          expect((e as Error).message).toMatch(/^config: .+: expected /s);
          // the message's own words, without the keys and values it quotes from the input
          expect((e as Error).message.replace(/"(?:[^"\\]|\\.)*"/g, '""')).not.toMatch(ZOD_WORDING);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("words every zod issue code, even those our schemas do not raise today", () => {
    const base = { input: undefined, path: [] };
    const words = [
      issueExpected({ ...base, code: "invalid_type", expected: "bigint" }),
      issueExpected({ ...base, code: "too_small", origin: "string", minimum: 3, inclusive: true }),
      issueExpected({ ...base, code: "too_big", origin: "array", maximum: 4, inclusive: true }),
      issueExpected({ ...base, code: "too_small", origin: "number", minimum: 0, inclusive: false }),
      issueExpected({ ...base, code: "invalid_value", values: ["a", 1] }),
      issueExpected({ ...base, code: "unrecognized_keys", keys: ["x"] }),
      issueExpected({ ...base, code: "invalid_format", format: "email" }),
      issueExpected({ ...base, code: "invalid_format", format: "regex", pattern: "/^a$/" }),
      issueExpected({ ...base, code: "not_multiple_of", divisor: 5 }),
      issueExpected({ ...base, code: "invalid_key", origin: "record", issues: [] }),
      issueExpected({ ...base, code: "invalid_element", origin: "map", key: 1, issues: [] }),
      issueExpected({ ...base, code: "invalid_union", errors: [] }),
      issueExpected({ ...base, code: "custom" }),
    ];
    expect(words).toEqual([
      "a value of type bigint",
      "a string of at least 3 characters",
      "a list of at most 4 items",
      "a number of at least 0",
      'one of "a", 1',
      'no "x" here',
      "a string in email format",
      "a string matching /^a$/",
      "a multiple of 5",
      "a valid key",
      "valid elements",
      "one of the accepted forms",
      "a valid value",
    ]);
  });

  it("reads the postgres driver's form, and Prosody's sql table", () => {
    expect(parseConfig({ storage: { driver: "postgres", url: "postgres://m:pw@db.example:5433/mamkit", pool: 4, commit_delay_ms: 2 } }).storage).toEqual({
      driver: "postgres",
      url: "postgres://m:pw@db.example:5433/mamkit",
      pool: 4,
      setting: "storage.url",
      commitDelayMs: 2,
    });
    expect(parseConfig({ storage: { driver: "postgres", url: "postgresql://localhost/x" } }).storage).toMatchObject({ pool: 10 });
    const sql = { driver: "PostgreSQL", database: "prosody", host: "db.example", port: 5433, username: "prosody", password: "s@cret/" };
    expect(parseConfig({ storage: "sql", sql }).storage).toEqual({
      driver: "postgres",
      url: "postgres://prosody:s%40cret%2F@db.example:5433/prosody",
      pool: 10,
      setting: "sql",
    });
    expect(parseConfig({ storage: "sql", sql: { driver: "PostgreSQL" } }).storage).toMatchObject({ url: "postgres://localhost:5432/prosody" });
    expect(parseConfig({ storage: "sql", sql: { driver: "SQLite3", database: "p.sqlite" } }, { baseDir: "/etc/mamkit" }).storage).toMatchObject({
      driver: "sqlite",
      database: "/etc/mamkit/p.sqlite",
    });
  });

  it("keeps accepting every storage form it accepted", () => {
    const forms: unknown[] = [
      "memory",
      "sqlite",
      { driver: "memory" },
      { driver: "memory", commit_delay_ms: 0, commit_max_writes: 1 },
      { driver: "sqlite" },
      { driver: "sqlite", database: "x.db", synchronous: "normal", commit_delay_ms: 1000, commit_max_writes: 100000 },
    ];
    for (const storage of forms) expect(() => parseConfig({ storage, hosts: {} })).not.toThrow();
    expect(parseConfig({ storage: { driver: "memory", commit_delay_ms: 5, commit_max_writes: 10 }, hosts: {} }).storage).toEqual({
      driver: "memory",
      commitDelayMs: 5,
      commitMaxWrites: 10,
    });
  });
});
