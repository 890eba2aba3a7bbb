// The JSON config: Prosody's vocabulary. Core keys are checked here with zod;
// module options are checked against each module's declarations when the
// server starts (see server.ts). Unknown keys are warnings, not errors.
//
// Every error is a ConfigError in our words: the full key path, what was
// expected, what was there. zod's own messages never reach the user: each
// schema below says what it expects, and `issueExpected` words the rest.
//
// Paths in the config (the database, certificates, plugin_paths) are relative
// to the config file's folder, as in Prosody; `parseConfig` without a file
// takes the working directory (or `baseDir`).
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { closestName, ConfigError, HostError } from "./errors.js";
import { describeRange, type NumberRange } from "./options.js";
import { configErrorOf, firstIssue, issueExpected, oneOf } from "./config-issues.js";
import { lineAndColumn, jsonSyntaxError, v8Position } from "./config-json.js";
import { parseJid } from "../xmpp/jid.js";
import type { StorageConfig } from "../storage/types.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const LOG_FORMATS = ["auto", "pretty", "json"] as const;


/** A number schema that, whatever fails (type, integer, bound), expects the whole range. */
function numberIn(r: NumberRange, what = describeRange(r)) {
  const error = { error: () => what };
  let s = z.number(error);
  if (r.integer) s = s.int(error);
  if (r.min !== undefined) s = s.min(r.min, error);
  if (r.max !== undefined) s = s.max(r.max, error);
  return s;
}

const nonEmpty = (what: string) => z.string({ error: () => what }).min(1, { error: () => what });
const oneOfThese = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: () => oneOf(values) });
const flag = z.boolean({ error: () => "true or false" });

/**
 * An object with exactly these keys. `name` says whose keys they are in the
 * message about a key it does not take; `what` is what a non-object gets.
 */
function closed<S extends z.ZodRawShape>(name: string, shape: S, what = "an object") {
  const keys = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === "unrecognized_keys") return unknownKey(iss.keys[0]!, name, keys);
      if (iss.code === "invalid_type") return what;
      return undefined;
    },
  });
}

function unknownKey(key: string, name: string, keys: readonly string[]): string {
  const close = closestName(key, keys);
  return `no ${JSON.stringify(key)} here${close === undefined ? "" : ` (did you mean ${JSON.stringify(close)}?)`}: ${name} takes ${keys.join(", ")}`;
}

/** Group commit (see storage/group-commit.ts): how long a batch may wait, and how large it may grow. */
const commitKeys = {
  commit_delay_ms: numberIn({ integer: true, min: 0, max: 1000 }).optional(),
  commit_max_writes: numberIn({ integer: true, min: 1, max: 100000 }).optional(),
};

/**
 * The storage drivers: the object form's keys for each (`driver` included),
 * and how it becomes a StorageConfig. A new driver is one more entry.
 */
const STORAGE_DRIVERS = {
  memory: {
    keys: { driver: z.literal("memory"), ...commitKeys },
    config: (s: { commit_delay_ms?: number; commit_max_writes?: number }, _baseDir: string): StorageConfig => ({
      driver: "memory",
      ...commitOptions(s),
    }),
  },
  sqlite: {
    keys: {
      driver: z.literal("sqlite"),
      database: nonEmpty("a file name (a non-empty string)").optional(),
      synchronous: oneOfThese(["full", "normal"]).optional(),
      ...commitKeys,
    },
    config: (
      s: { database?: string; synchronous?: "full" | "normal"; commit_delay_ms?: number; commit_max_writes?: number },
      baseDir: string,
    ): StorageConfig => ({
      driver: "sqlite",
      database: resolveDatabase(s.database ?? DEFAULT_SQLITE_DATABASE, baseDir),
      synchronous: s.synchronous ?? "full",
      ...commitOptions(s),
    }),
  },
  postgres: {
    keys: {
      driver: z.literal("postgres"),
      url: z
        .string({ error: () => PG_URL })
        .refine((u) => /^postgres(ql)?:\/\//.test(u) && URL.canParse(u), { error: () => PG_URL }),
      pool: numberIn({ integer: true, min: 1, max: 1000 }).optional(),
      ...commitKeys,
    },
    config: (s: { url: string; pool?: number; commit_delay_ms?: number; commit_max_writes?: number }, _baseDir: string): StorageConfig => ({
      driver: "postgres",
      url: s.url,
      pool: s.pool ?? DEFAULT_PG_POOL,
      setting: "storage.url",
      ...commitOptions(s),
    }),
  },
} as const;
type DriverName = keyof typeof STORAGE_DRIVERS;
const DRIVER_NAMES = Object.keys(STORAGE_DRIVERS) as DriverName[];
const driverSchemas = new Map(
  DRIVER_NAMES.map((d) => [d, closed(`storage with driver ${JSON.stringify(d)}`, STORAGE_DRIVERS[d].keys)] as const),
);

function commitOptions(s: { commit_delay_ms?: number; commit_max_writes?: number }) {
  return {
    ...(s.commit_delay_ms !== undefined && { commitDelayMs: s.commit_delay_ms }),
    ...(s.commit_max_writes !== undefined && { commitMaxWrites: s.commit_max_writes }),
  };
}

const moduleName = z
  .string({ error: () => "a string" })
  .regex(/^[a-z0-9_]+$/, { error: () => "a module name (lower-case letters, digits, _)" });
const moduleList = z.array(moduleName, { error: () => "a list of module names" });

/** Keys every section may carry (the host sections override the global one). */
const sharedKeys = {
  modules_enabled: moduleList.optional(),
  modules_disabled: moduleList.optional(),
  authentication: oneOfThese(["internal_hashed", "none"]).optional(),
  c2s_require_encryption: flag.optional(),
  allow_unencrypted_plain_auth: flag.optional(),
  sasl_max_retries: numberIn({ integer: true, min: 2, max: 5 }).optional(),
  ssl: closed(
    "ssl",
    { certificate: nonEmpty("a file name (a non-empty string)"), key: nonEmpty("a file name (a non-empty string)") },
    'an object { "certificate": FILE, "key": FILE }',
  ).optional(),
};

const port = numberIn({ integer: true, min: 0, max: 65535 });
const seconds = numberIn({ min: 0 }, "a number of seconds greater than 0").positive({
  error: () => "a number of seconds greater than 0",
});
const list = <T extends z.ZodType>(item: T, what: string) => z.array(item, { error: () => what });

const globalSchema = z.looseObject({
  log: closed("log", { level: oneOfThese(LOG_LEVELS).optional(), format: oneOfThese(LOG_FORMATS).optional() }).optional(),
  // checked by `parseStorage`, which picks the schema by driver
  storage: z.unknown().optional(),
  interfaces: list(nonEmpty('an address (a non-empty string, "*" for all)'), "a list of addresses").optional(),
  c2s_ports: list(port, "a list of port numbers").optional(),
  websocket_ports: list(port, "a list of port numbers").optional(),
  c2s_stanza_size_limit: numberIn({ integer: true, min: 1024 }).optional(),
  c2s_timeout: seconds.optional(),
  c2s_read_timeout: seconds.optional(),
  c2s_tcp_keepalives: flag.optional(),
  consider_websocket_secure: flag.optional(),
  plugin_paths: list(nonEmpty("a folder (a non-empty string)"), "a list of folders").optional(),
  hosts: z
    .record(z.string(), z.looseObject({ ...sharedKeys }, { error: () => "an object of options for this host" }), {
      error: () => 'an object { "domain": { ...options } }',
    })
    .optional(),
  ...sharedKeys,
});

/** Keys that belong to the global section only. */
export const GLOBAL_ONLY_KEYS = new Set([
  "log",
  "storage",
  "sql",
  "hosts",
  "interfaces",
  "c2s_ports",
  "websocket_ports",
  "c2s_stanza_size_limit",
  "c2s_timeout",
  "c2s_read_timeout",
  "c2s_tcp_keepalives",
  "consider_websocket_secure",
  "plugin_paths",
]);
/** Keys the core itself reads. */
export const CORE_KEYS = new Set([...GLOBAL_ONLY_KEYS, ...Object.keys(sharedKeys)]);

export type { StorageConfig };

export interface Config {
  /**
   * The global section as written (module options included), except that
   * its paths (`storage.database`, `ssl`, `plugin_paths`) are absolute.
   */
  readonly global: Readonly<Record<string, unknown>>;
  /** Per-host sections, keyed by normalised domain; their `ssl` paths are absolute. */
  readonly hosts: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
  readonly storage: StorageConfig;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** `log.format`: "pretty" (human-readable), "json" (one object per line), "auto" (pretty on a terminal). */
  readonly logFormat: (typeof LOG_FORMATS)[number];
  /** The folder relative paths were resolved against: the config file's (absolute). */
  readonly baseDir: string;
  /** `plugin_paths`: folders searched for modules that are not built in (absolute; default none). */
  readonly pluginPaths: readonly string[];
}

export interface ParseConfigOptions {
  /** The folder relative paths in the config are taken from (default: the working directory). */
  baseDir?: string;
}

/** The default SQLite file, relative to the config's folder. */
export const DEFAULT_SQLITE_DATABASE = "data/mamkit.sqlite";

/**
 * Checks the core keys of a config object and normalises it, resolving its
 * paths against `baseDir`. Module options are left for the server to check
 * against module declarations.
 */
export function parseConfig(input: unknown, opts: ParseConfigOptions = {}): Config {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ConfigError("(top level)", "a JSON object", undefined, input);
  }
  const baseDir = resolve(opts.baseDir ?? process.cwd());
  const result = globalSchema.safeParse(input, { error: issueExpected });
  if (!result.success) throw configErrorOf(firstIssue(result.error.issues), input, []);
  const raw = input as Record<string, unknown>;
  const storage = parseStorage(raw.storage, baseDir, raw.sql);
  const path = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  /** A section with its paths resolved (a copy: the input is left as it was). */
  const resolved = (section: Record<string, unknown>): Record<string, unknown> => {
    const ssl = section.ssl as { certificate: string; key: string } | undefined;
    return ssl === undefined ? section : { ...section, ssl: { certificate: path(ssl.certificate), key: path(ssl.key) } };
  };
  const hosts = new Map<string, Record<string, unknown>>();
  const writtenHosts: Record<string, Record<string, unknown>> = {};
  for (const [name, section] of Object.entries((raw.hosts as Record<string, Record<string, unknown>>) ?? {})) {
    let domain: string;
    try {
      const jid = parseJid(name);
      if (jid.local !== undefined || jid.resource !== undefined) throw new Error("not a domain");
      domain = jid.domain;
    } catch {
      throw new ConfigError(`hosts[${JSON.stringify(name)}]`, "a domain name as the key", undefined, name);
    }
    for (const key of GLOBAL_ONLY_KEYS) {
      if (key in section) {
        throw new ConfigError(`hosts[${JSON.stringify(name)}].${key}`, `no "${key}" here: it is a global option`);
      }
    }
    writtenHosts[name] = resolved(section);
    hosts.set(domain, writtenHosts[name]);
  }
  const pluginPaths = ((raw.plugin_paths as string[] | undefined) ?? []).map(path);
  const global: Record<string, unknown> = { ...resolved(raw) };
  if (raw.hosts !== undefined) global.hosts = writtenHosts;
  if (raw.plugin_paths !== undefined) global.plugin_paths = pluginPaths;
  if (typeof raw.storage === "object" && storage.driver === "sqlite" && "database" in (raw.storage as object)) {
    global.storage = { ...(raw.storage as object), database: storage.database };
  }
  return { global, hosts, storage, logLevel: result.data.log?.level ?? "info", logFormat: result.data.log?.format ?? "auto", baseDir, pluginPaths };
}

/** The database file against the config's folder; SQLite's ":memory:" stays what it is. */
function resolveDatabase(file: string, baseDir: string): string {
  return file === ":memory:" || isAbsolute(file) ? file : resolve(baseDir, file);
}

const PG_URL = "a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)";
/** Connections a PostgreSQL driver keeps for reads and transactions (the writer has one more). */
export const DEFAULT_PG_POOL = 10;

/**
 * Prosody's `storage = "sql"` with its `sql = { driver = ..., ... }` table:
 * "PostgreSQL" becomes the postgres driver (its keys make the URL), "SQLite3"
 * the sqlite one (its `database` a file next to the config).
 */
function prosodySql(value: unknown, baseDir: string): StorageConfig {
  const sqlSchema = closed("sql", {
    driver: oneOfThese(["PostgreSQL", "SQLite3"]),
    database: nonEmpty("a database name (a non-empty string)").optional(),
    host: nonEmpty("a host name (a non-empty string)").optional(),
    port: numberIn({ integer: true, min: 1, max: 65535 }).optional(),
    username: z.string({ error: () => "a string" }).optional(),
    password: z.string({ error: () => "a string" }).optional(),
  }, 'an object { "driver": "PostgreSQL" | "SQLite3", "database": ..., ... }');
  if (value === undefined) throw new ConfigError("sql", 'an object { "driver": "PostgreSQL" | "SQLite3", ... }, which storage "sql" needs; it is missing');
  const r = sqlSchema.safeParse(value, { error: issueExpected });
  if (!r.success) throw configErrorOf(firstIssue(r.error.issues), value, ["sql"]);
  const s = r.data;
  if (s.driver === "SQLite3") return STORAGE_DRIVERS.sqlite.config({ database: s.database ?? "prosody.sqlite" }, baseDir);
  const auth = s.username === undefined ? "" : `${encodeURIComponent(s.username)}${s.password === undefined ? "" : `:${encodeURIComponent(s.password)}`}@`;
  const host = s.host ?? "localhost";
  const url = `postgres://${auth}${host.includes(":") ? `[${host}]` : host}:${s.port ?? 5432}/${encodeURIComponent(s.database ?? "prosody")}`;
  return { driver: "postgres", url, pool: DEFAULT_PG_POOL, setting: "sql" };
}

const STORAGE_EXPECTED = `${oneOf([...DRIVER_NAMES, "sql"])} or an object { "driver": ${DRIVER_NAMES.map((d) => JSON.stringify(d)).join(" | ")}, ... }`;

/** `storage`: a driver's name, or an object checked by its driver's schema (absent: sqlite). */
function parseStorage(value: unknown, baseDir: string, sql: unknown): StorageConfig {
  if (value === undefined) return STORAGE_DRIVERS.sqlite.config({}, baseDir);
  if (value === "sql") return prosodySql(sql, baseDir);
  if (typeof value === "string") {
    if (!(DRIVER_NAMES as string[]).includes(value)) throw new ConfigError("storage", STORAGE_EXPECTED, undefined, value);
    if (value === "postgres") throw new ConfigError("storage", 'an object { "driver": "postgres", "url": "postgres://..." }: the postgres driver needs its URL', undefined, value);
    return STORAGE_DRIVERS[value as "memory" | "sqlite"].config({}, baseDir);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError("storage", STORAGE_EXPECTED, undefined, value);
  }
  const driver = (value as { driver?: unknown }).driver;
  if (typeof driver !== "string" || !(DRIVER_NAMES as string[]).includes(driver)) {
    if (driver === undefined) throw new ConfigError("storage.driver", `${oneOf(DRIVER_NAMES)}; it is missing`);
    throw new ConfigError("storage.driver", oneOf(DRIVER_NAMES), undefined, driver);
  }
  const result = driverSchemas.get(driver as DriverName)!.safeParse(value, { error: issueExpected });
  if (!result.success) throw configErrorOf(firstIssue(result.error.issues), value, ["storage"]);
  // each driver's config() takes what its own schema gave
  return STORAGE_DRIVERS[driver as DriverName].config(result.data as never, baseDir);
}

/** A config `parseConfig` made already (rather than an object in the JSON file's shape). */
export function isParsedConfig(c: Config | Record<string, unknown>): c is Config {
  return c.hosts instanceof Map && typeof (c as Config).storage === "object" && "global" in c;
}

/** Reads and checks a JSON config file; its paths are relative to its folder. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new HostError("MAMKIT_ERR_CONFIG_FILE", `config: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (text.startsWith("\uFEFF")) text = text.slice(1); // a byte order mark some editors write
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    const found = jsonSyntaxError(text) ?? { at: v8Position(err as Error, text), what: (err as Error).message };
    const { line, column } = lineAndColumn(text, found.at);
    throw new HostError("MAMKIT_ERR_CONFIG_FILE", `config: ${path}:${line}:${column}: not valid JSON: ${found.what}`, {
      cause: err,
    });
  }
  return parseConfig(data, { baseDir: dirname(resolve(path)) });
}

export { issueExpected, jsonSyntaxError };
