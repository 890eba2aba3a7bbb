// Errors of the host itself: configuration and module loading. Each carries a
// stable `code` (documented in the README) so embedders can branch on it.

/**
 * Every code a HostError can carry, with its meaning: the one catalogue. The
 * README's error table says the same (test/core/errors.test.ts holds them equal).
 */
export const HOST_ERROR_CODES = {
  MAMKIT_ERR_CONFIG_INVALID: "a config value has the wrong type or range, or a cron expression is invalid",
  MAMKIT_ERR_CONFIG_FILE: "the config file cannot be read or is not JSON",
  MAMKIT_ERR_MODULE_UNKNOWN: "a module name nobody provides (the message lists the known ones)",
  MAMKIT_ERR_MODULE_LOAD: "a module threw while loading, or two modules share a name",
  MAMKIT_ERR_MODULE_CYCLE: "modules depend on each other in a circle",
  MAMKIT_ERR_HOST_UNKNOWN: "a host name that is not configured",
  MAMKIT_ERR_STORAGE:
    "the storage cannot give what is asked: an unknown store kind, or an archive that can reuse positions (smart retention refuses it)",
} as const;

export type HostErrorCode = keyof typeof HOST_ERROR_CODES;

export class HostError extends Error {
  constructor(
    readonly code: HostErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HostError";
  }
}

/** A config value that is wrong: names the key path, the module and what was expected. */
export class ConfigError extends HostError {
  constructor(
    readonly keyPath: string,
    readonly expected: string,
    readonly moduleName?: string,
    readonly got?: unknown,
  ) {
    super(
      "MAMKIT_ERR_CONFIG_INVALID",
      `config: ${keyPath}${moduleName ? ` (module ${moduleName})` : ""}: expected ${expected}` +
        (got === undefined ? "" : `, got ${describe(got)}`),
    );
    this.name = "ConfigError";
  }
}

export function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return String(v);
}
