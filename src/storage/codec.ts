// Prosody's value encodings (mod_storage_sql `serialize`/`deserialize`):
// `string`, `number`, `boolean`, `xml` (a serialised stanza), `json` (a table).
import { Element } from "@xmpp/xml";
import parse from "ltx/lib/parse.js";
import { StorageError } from "./types.js";

export type ValueType = "string" | "number" | "boolean" | "xml" | "json";

export function encodeValue(value: unknown): [ValueType, string] {
  switch (typeof value) {
    case "string":
      return ["string", value];
    case "number":
      if (!Number.isFinite(value)) throw new StorageError("bad-value", `cannot store the number ${value}`);
      return ["number", String(value)];
    case "boolean":
      return ["boolean", value ? "true" : "false"];
    case "object":
      if (value === null) break;
      if (value instanceof Element) return ["xml", serializeXml(value)];
      return ["json", encodeJson(value)];
  }
  throw new StorageError("bad-value", `cannot store a value of type ${value === null ? "null" : typeof value}`);
}

export function decodeValue(type: string, value: string): unknown {
  switch (type) {
    case "string":
      return value;
    case "number": {
      const n = Number(value);
      if (value.trim() === "" || Number.isNaN(n)) throw new StorageError("bad-value", "invalid number in store");
      return n;
    }
    case "boolean":
      if (value === "true") return true;
      if (value === "false") return false;
      throw new StorageError("bad-value", "invalid boolean in store");
    case "json":
      try {
        return JSON.parse(value);
      } catch (err) {
        throw new StorageError("bad-value", "invalid JSON in store", { cause: err });
      }
    case "xml":
      return parseXml(value);
  }
  throw new StorageError("bad-value", `unknown value type ${JSON.stringify(type)} in store`);
}

/** JSON as Prosody's util.json writes it: a Map (non-string keys) becomes `{"__hash":[k, v, ...]}`. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v instanceof Map) {
      const hash: unknown[] = [];
      for (const [k, x] of v) hash.push(k, x);
      return { __hash: hash };
    }
    if (v instanceof Element) throw new StorageError("bad-value", "a stanza inside a table cannot be stored");
    return v;
  });
}

export function parseXml(text: string): Element {
  try {
    return parse(text);
  } catch (err) {
    throw new StorageError("bad-value", "invalid XML in store", { cause: err });
  }
}

// Prosody's util.stanza serialisation: single-quoted attributes and all five
// entities escaped in text and attributes, so rows look like Prosody's own.
const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;" };
const ESCAPE_RE = /[&<>'"]/g;
const NEEDS_ESCAPE = /[&<>'"]/;

function escapeXml(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPE_RE, (c) => ESCAPES[c]!) : s;
}

export function serializeXml(el: Element): string {
  let out = "";
  const write = (e: Element): void => {
    out += `<${e.name}`;
    const attrs = e.attrs;
    for (const k in attrs) {
      const v = attrs[k];
      if (v === undefined || v === null) continue;
      out += ` ${k}='${escapeXml(String(v))}'`;
    }
    const children = e.children;
    if (children.length === 0) {
      out += "/>";
      return;
    }
    out += ">";
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c === "string") out += escapeXml(c);
      else write(c);
    }
    out += `</${e.name}>`;
  };
  write(el);
  return out;
}
