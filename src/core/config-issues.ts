// Config errors in our words: a zod issue becomes a ConfigError with the full
// key path, what was expected and what was there (zod's own text never shows).
import type { z } from "zod";
import { ConfigError } from "./errors.js";
import { describeRange } from "./options.js";

export const oneOf = (values: readonly unknown[]) => `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`;

/**
 * The issue to report: the first, unless an object on its way has a key it
 * does not take ("cert" and then a missing "certificate": the typo is news).
 */
export function firstIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  const first = issues[0]!;
  const within = (outer: readonly PropertyKey[]) => outer.every((p, i) => first.path[i] === p);
  return issues.find((i) => i.code === "unrecognized_keys" && within(i.path)) ?? first;
}

/** A zod issue as a ConfigError: the full path (an unknown key's own), our wording, the value found. */
export function configErrorOf(issue: z.core.$ZodIssue, root: unknown, prefix: readonly PropertyKey[]): ConfigError {
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
  const keyPath = formatPath([...prefix, ...path]);
  if (issue.code === "unrecognized_keys") return new ConfigError(keyPath, issue.message);
  const found = lookup(root, path);
  if (!found.present) return new ConfigError(keyPath, `${issue.message}; it is missing`);
  return new ConfigError(keyPath, issue.message, undefined, found.value);
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const [i, p] of path.entries()) {
    if (typeof p === "number") out += `[${p}]`;
    else if (out === "") out = String(p);
    else if (i === 1 && path[0] === "hosts") out += `[${JSON.stringify(String(p))}]`; // as everywhere: hosts["a.example"]
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p))) out += `.${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(top level)";
}

function lookup(root: unknown, path: readonly PropertyKey[]): { present: boolean; value?: unknown } {
  let v: unknown = root;
  for (const p of path) {
    if (typeof v !== "object" || v === null || !Object.hasOwn(v, p)) return { present: false };
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return { present: true, value: v };
}

/**
 * What an issue expected, in our words, for whatever a schema above does not
 * word itself (it is passed to every parse: zod's own text never shows).
 */
export function issueExpected(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return TYPE_WORDS[issue.expected] ?? `a value of type ${issue.expected}`;
    case "too_small":
    case "too_big": {
      const small = issue.code === "too_small";
      const limit = Number(small ? issue.minimum : issue.maximum);
      const bound =
        issue.inclusive === false ? `${small ? "more" : "fewer"} than ${limit}` : `${small ? "at least" : "at most"} ${limit}`;
      if (issue.origin === "string") return small && limit === 1 ? "a non-empty string" : `a string of ${bound} characters`;
      if (issue.origin === "array" || issue.origin === "set") return small && limit === 1 ? "a non-empty list" : `a list of ${bound} items`;
      return describeRange(small ? { min: limit } : { max: limit });
    }
    case "invalid_value":
      return oneOf(issue.values);
    case "unrecognized_keys":
      return `no ${issue.keys.map((k) => JSON.stringify(k)).join(", ")} here`;
    case "invalid_format":
      return issue.format === "regex" ? `a string matching ${issue.pattern ?? "its pattern"}` : `a string in ${issue.format} format`;
    case "not_multiple_of":
      return `a multiple of ${String(issue.divisor)}`;
    case "invalid_key":
      return "a valid key";
    case "invalid_element":
      return "valid elements";
    case "invalid_union":
      return "one of the accepted forms";
    default:
      return "a valid value";
  }
}

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "an object",
  record: "an object",
  null: "null",
};
