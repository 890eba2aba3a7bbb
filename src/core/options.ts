// Typed module options with Prosody's precedence: the host's section, else the
// global section, else the default. A value of the wrong type or range is a
// ConfigError naming the key path, the module and what was expected.
import cron from "node-cron";
import { ConfigError } from "./errors.js";
import { PERIOD_EXPECTED, parsePeriod } from "./period.js";

export type OptionDecl =
  | { type: "number"; default?: number; min?: number; max?: number; integer?: boolean; doc?: string }
  | { type: "boolean"; default?: boolean; doc?: string }
  | { type: "string"; default?: string; doc?: string }
  | { type: "enum"; values: readonly (string | boolean)[]; default?: string | boolean; doc?: string }
  | { type: "list"; default?: readonly string[]; doc?: string }
  | { type: "period"; default?: number | string; doc?: string }
  /** A node-cron expression (six fields, seconds first, or the usual five). */
  | { type: "cron"; default?: string; doc?: string }
  /** An option whose shape the module checks itself (e.g. an object). */
  | { type: "any"; default?: unknown; doc?: string };

export type OptionDecls = Readonly<Record<string, OptionDecl>>;

/** What reading a declared option gives: its type, `undefined` only where it has no default. */
export type OptionValue<D extends OptionDecl> = D extends { type: "list" }
  ? string[]
  : D extends { type: "any" }
    ? unknown
    : (D extends { type: "number" | "period" }
        ? number
        : D extends { type: "boolean" }
          ? boolean
          : D extends { type: "string" | "cron" }
            ? string
            : D extends { type: "enum"; values: readonly (infer V)[] }
              ? V
              : never) | (D extends { default: unknown } ? never : undefined);

/** A module's options, read once with its declarations: `module.options.smacks_max_queue_size`. */
export type OptionValues<D extends OptionDecls> = { readonly [K in keyof D]: OptionValue<D[K]> };

export const CRON_EXPECTED = 'a node-cron expression like "0 0 4 * * *" (sec min hour day month weekday)';

export function checkCron(v: unknown, path: string, mod: string | undefined): string {
  if (typeof v !== "string" || !cron.validate(v)) throw new ConfigError(path, CRON_EXPECTED, mod, v);
  return v;
}

/** A declared option's value: the configured one (checked), else its default (a period in seconds). */
export function readDeclared(decl: OptionDecl, v: unknown, path: string, mod: string | undefined): unknown {
  if (v !== undefined) return checkDeclared(decl, v, path, mod);
  if (decl.default === undefined) return decl.type === "list" ? [] : undefined;
  if (decl.type === "period") return checkPeriod(decl.default, `${path} (default)`, mod);
  return decl.type === "list" ? [...decl.default] : decl.default;
}

/** Where an option value came from, for error messages: `smacks_max_queue_size` or `hosts["a.example"].x`. */
export function optionPath(name: string, host: string | undefined): string {
  return host === undefined ? name : `hosts[${JSON.stringify(host)}].${name}`;
}

export interface NumberRange {
  min?: number;
  max?: number;
  integer?: boolean;
}

export function checkNumber(v: unknown, path: string, mod: string | undefined, r: NumberRange = {}): number {
  const expected = describeRange(r);
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(path, expected, mod, v);
  if (r.integer && !Number.isInteger(v)) throw new ConfigError(path, expected, mod, v);
  if (r.min !== undefined && v < r.min) throw new ConfigError(path, expected, mod, v);
  if (r.max !== undefined && v > r.max) throw new ConfigError(path, expected, mod, v);
  return v;
}

/** What a range accepts, in words: "a whole number from 0 to 65535", "a number of at least 1". */
export function describeRange(r: NumberRange): string {
  let s = r.integer ? "a whole number" : "a number";
  if (r.min !== undefined && r.max !== undefined) s += ` from ${r.min} to ${r.max}`;
  else if (r.min !== undefined) s += ` of at least ${r.min}`;
  else if (r.max !== undefined) s += ` of at most ${r.max}`;
  return s;
}

export function checkBoolean(v: unknown, path: string, mod: string | undefined): boolean {
  if (typeof v !== "boolean") throw new ConfigError(path, "true or false", mod, v);
  return v;
}

export function checkString(v: unknown, path: string, mod: string | undefined): string {
  if (typeof v !== "string") throw new ConfigError(path, "a string", mod, v);
  return v;
}

export function checkEnum<T extends string | boolean>(
  v: unknown,
  values: readonly T[],
  path: string,
  mod: string | undefined,
): T {
  if (!values.includes(v as T)) {
    throw new ConfigError(path, `one of ${values.map((x) => JSON.stringify(x)).join(", ")}`, mod, v);
  }
  return v as T;
}

export function checkList(v: unknown, path: string, mod: string | undefined): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new ConfigError(path, "a list of strings", mod, v);
  }
  return v as string[];
}

/** Seconds, or `Infinity` for "never". */
export function checkPeriod(v: unknown, path: string, mod: string | undefined): number {
  const p = parsePeriod(v);
  if (p === undefined) throw new ConfigError(path, PERIOD_EXPECTED, mod, v);
  return p;
}

/** Validates a value against its declaration (used at start-up for every declared option). */
export function checkDeclared(decl: OptionDecl, v: unknown, path: string, mod: string | undefined): unknown {
  switch (decl.type) {
    case "number":
      return checkNumber(v, path, mod, decl);
    case "boolean":
      return checkBoolean(v, path, mod);
    case "string":
      return checkString(v, path, mod);
    case "enum":
      return checkEnum(v, decl.values, path, mod);
    case "list":
      return checkList(v, path, mod);
    case "period":
      return checkPeriod(v, path, mod);
    case "cron":
      return checkCron(v, path, mod);
    case "any":
      return v;
  }
}
