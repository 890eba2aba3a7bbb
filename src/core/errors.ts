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
  MAMKIT_ERR_ACCOUNT: "an account that should exist does not, or one to create exists already, or a user name or password is not valid",
  MAMKIT_ERR_LISTEN: "a listener cannot bind its address (in use, not permitted, or not on this machine)",
  MAMKIT_ERR_STOPPED: "the server is stopped or stopping: it takes no new connection, session or listener",
  MAMKIT_ERR_TASK_UNKNOWN: "a scheduled task name no loaded module registered (the message lists the known ones)",
  MAMKIT_ERR_STORAGE_OPEN:
    "the storage cannot be opened: its server is out of reach, refuses the credentials, or has no such database (the message names the setting)",
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

/**
 * A module name that no known module has: where it is named (`modules_enabled[3]`,
 * `hosts["a.example"].modules_enabled[0]`; none when it is not from the config),
 * a close known name if there is one, and the known ones.
 */
export function unknownModuleError(name: string, where: string | undefined, known: Iterable<string>): HostError {
  const names = [...known].sort();
  const close = closestName(name, names);
  return new HostError(
    "MAMKIT_ERR_MODULE_UNKNOWN",
    `${where === undefined ? "" : `config: ${where}: `}unknown module ${JSON.stringify(name)}` +
      `${close === undefined ? "" : ` (did you mean ${JSON.stringify(close)}?)`}; known modules: ${names.join(", ") || "none"}`,
  );
}

/**
 * The known name `name` was most likely meant to be, if any: one at most two
 * edits away (a letter added, dropped, changed, or two swapped), Prosody's
 * `mod_` prefix written out, or a known name that begins or ends with `name`.
 */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const k of known) {
    if (k === name) return k;
    let score = editDistance(name, k);
    if (score > 2 || score >= name.length) score = Number.POSITIVE_INFINITY;
    if (name === `mod_${k}`) score = 0;
    else if (score === Number.POSITIVE_INFINITY && name.length >= 3 && (k.startsWith(name) || k.endsWith(name))) score = 3;
    if (score < bestScore || (score === bestScore && best !== undefined && k.length < best.length)) {
      best = k;
      bestScore = score;
    }
  }
  return bestScore === Number.POSITIVE_INFINITY ? undefined : best;
}

/** Edits from `a` to `b`: insertions, deletions, substitutions and swaps of neighbours (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const prev = rows[i - 1]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
