// The JSON config: Prosody's vocabulary. Core keys are checked here with zod;
// module options are checked against each module's declarations when the
// server starts (see server.ts). Unknown keys are warnings, not errors.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError, HostError } from "./errors.js";
import { parseJid } from "../xmpp/jid.js";
import type { StorageConfig } from "../storage/types.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const DRIVERS = ["memory", "sqlite"] as const;

/** Group commit (see storage/group-commit.ts): how long a batch may wait, and how large it may grow. */
const commitKeys = {
  commit_delay_ms: z.number().int().min(0).max(1000).optional(),
  commit_max_writes: z.number().int().min(1).max(100000).optional(),
};

const storageSchema = z.union([
  z.enum(DRIVERS),
  z.strictObject({ driver: z.literal("memory"), ...commitKeys }),
  z.strictObject({
    driver: z.literal("sqlite"),
    database: z.string().min(1).optional(),
    synchronous: z.enum(["full", "normal"]).optional(),
    ...commitKeys,
  }),
]);

const moduleList = z.array(z.string().regex(/^[a-z0-9_]+$/, "a module name (lower-case letters, digits, _)"));

/** Keys every section may carry (the host sections override the global one). */
const sharedKeys = {
  modules_enabled: moduleList.optional(),
  modules_disabled: moduleList.optional(),
  authentication: z.enum(["internal_hashed", "none"]).optional(),
  c2s_require_encryption: z.boolean().optional(),
  allow_unencrypted_plain_auth: z.boolean().optional(),
  sasl_max_retries: z.number().int().min(2).max(5).optional(),
  ssl: z.strictObject({ certificate: z.string().min(1), key: z.string().min(1) }).optional(),
};

const port = z.number().int().min(0).max(65535);
const seconds = z.number().positive();

const globalSchema = z.looseObject({
  log: z.strictObject({ level: z.enum(LOG_LEVELS).optional() }).optional(),
  storage: storageSchema.optional(),
  interfaces: z.array(z.string().min(1)).optional(),
  c2s_ports: z.array(port).optional(),
  websocket_ports: z.array(port).optional(),
  c2s_stanza_size_limit: z.number().int().min(1024).optional(),
  c2s_timeout: seconds.optional(),
  c2s_read_timeout: seconds.optional(),
  c2s_tcp_keepalives: z.boolean().optional(),
  consider_websocket_secure: z.boolean().optional(),
  hosts: z.record(z.string(), z.looseObject({ ...sharedKeys })).optional(),
  ...sharedKeys,
});

/** Keys that belong to the global section only. */
export const GLOBAL_ONLY_KEYS = new Set([
  "log",
  "storage",
  "hosts",
  "interfaces",
  "c2s_ports",
  "websocket_ports",
  "c2s_stanza_size_limit",
  "c2s_timeout",
  "c2s_read_timeout",
  "c2s_tcp_keepalives",
  "consider_websocket_secure",
]);
/** Keys the core itself reads. */
export const CORE_KEYS = new Set([...GLOBAL_ONLY_KEYS, ...Object.keys(sharedKeys)]);

export type { StorageConfig };

export interface Config {
  /** The global section, as written (module options included). */
  readonly global: Readonly<Record<string, unknown>>;
  /** Per-host sections, keyed by normalised domain. */
  readonly hosts: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
  readonly storage: StorageConfig;
  readonly logLevel: (typeof LOG_LEVELS)[number];
}

export const DEFAULT_SQLITE_DATABASE = "data/mamkit.sqlite";

/**
 * Checks the core keys of a config object and normalises it. Module options
 * are left for the server to check against module declarations.
 */
export function parseConfig(input: unknown): Config {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ConfigError("(top level)", "a JSON object", undefined, input);
  }
  const result = globalSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(formatPath(issue.path), zodExpected(issue), undefined, valueAt(input, issue.path));
  }
  const raw = input as Record<string, unknown>;
  const hosts = new Map<string, Record<string, unknown>>();
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
    hosts.set(domain, section);
  }
  const s = result.data.storage ?? "sqlite";
  const commit = {
    ...(typeof s === "object" && s.commit_delay_ms !== undefined && { commitDelayMs: s.commit_delay_ms }),
    ...(typeof s === "object" && s.commit_max_writes !== undefined && { commitMaxWrites: s.commit_max_writes }),
  };
  const storage: StorageConfig =
    s === "memory" || (typeof s === "object" && s.driver === "memory")
      ? { driver: "memory", ...commit }
      : {
          driver: "sqlite",
          database: (typeof s === "object" && s.driver === "sqlite" && s.database) || DEFAULT_SQLITE_DATABASE,
          synchronous: (typeof s === "object" && s.driver === "sqlite" && s.synchronous) || "full",
          ...commit,
        };
  return { global: raw, hosts, storage, logLevel: result.data.log?.level ?? "info" };
}

/** Reads and checks a JSON config file. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new HostError("MAMKIT_ERR_CONFIG_FILE", `config: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new HostError("MAMKIT_ERR_CONFIG_FILE", `config: ${path} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseConfig(data);
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (out === "" ) out = String(p);
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p))) out += `.${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(top level)";
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const p of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function zodExpected(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected === "array" ? "a list" : issue.expected === "int" ? "a whole number" : `a ${issue.expected}`;
    case "too_small":
    case "too_big": {
      const small = issue.code === "too_small";
      const limit = String(small ? issue.minimum : issue.maximum);
      const bound = issue.inclusive === false ? `${small ? "greater" : "less"} than ${limit}` : `of ${small ? "at least" : "at most"} ${limit}`;
      if (issue.origin === "string") return limit === "1" && small ? "a non-empty text" : `a text ${bound} characters`;
      if (issue.origin === "array") return `a list ${bound} items`;
      return `a number ${bound}`;
    }
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return `no key(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    case "invalid_union":
      return 'one of "memory", "sqlite", { "driver": "memory" } or { "driver": "sqlite", "database": "<file>", "synchronous": "full" | "normal" } (both objects may add "commit_delay_ms": 0-1000 and "commit_max_writes": 1-100000)';
    default:
      return issue.message;
  }
}
