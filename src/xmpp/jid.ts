// JIDs (RFC 7622): parsing, normalisation, comparison.
//
// Normalisation follows RFC 7622's profiles closely enough for routing and
// storage keys: the localpart is NFC + lower-cased (UsernameCaseMapped) and may
// not contain the characters RFC 7622 §3.3.1 excludes; the domain is NFC +
// lower-cased without a trailing dot and must be a valid hostname, IDN or IP
// literal; the resource is NFC (OpaqueString) without control characters.
// Each part is at most 1023 octets (RFC 7622 §3.1).
import { domainToASCII } from "node:url";

export class JidError extends Error {
  readonly condition = "jid-malformed";
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`invalid JID ${JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input)}: ${reason}`);
    this.name = "JidError";
  }
}

const MAX_PART = 1023;
// RFC 7622 §3.3.1: these may not appear in a localpart (plus space and controls).
const BAD_LOCAL = /[\s"&'/:<>@\u0000-\u001f\u007f]/;
const BAD_RESOURCE = /[\u0000-\u001f\u007f]/;
const ASCII_HOST = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const NON_ASCII = /[^\u0000-\u007f]/;

export class Jid {
  /** `local@domain` or `domain`. */
  readonly bare: string;
  /** `local@domain/resource`, or the bare form when there is no resource. */
  readonly full: string;

  constructor(
    readonly local: string | undefined,
    readonly domain: string,
    readonly resource: string | undefined,
  ) {
    this.bare = local === undefined ? domain : `${local}@${domain}`;
    this.full = resource === undefined ? this.bare : `${this.bare}/${resource}`;
  }

  get isBare(): boolean {
    return this.resource === undefined;
  }

  toBare(): Jid {
    return this.resource === undefined ? this : new Jid(this.local, this.domain, undefined);
  }

  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, normaliseResource(resource, resource));
  }

  equals(other: Jid): boolean {
    return this.full === other.full;
  }

  toString(): string {
    return this.full;
  }
}

/** Parses and normalises a JID; throws `JidError` (condition `jid-malformed`). */
export function parseJid(input: string): Jid {
  if (typeof input !== "string" || input.length === 0) throw new JidError(String(input), "empty");
  const slash = input.indexOf("/");
  const head = slash < 0 ? input : input.slice(0, slash);
  const at = head.indexOf("@");
  const rawLocal = at < 0 ? undefined : head.slice(0, at);
  const rawDomain = at < 0 ? head : head.slice(at + 1);
  const rawResource = slash < 0 ? undefined : input.slice(slash + 1);

  const local = rawLocal === undefined ? undefined : normaliseLocal(rawLocal, input);
  const domain = normaliseDomain(rawDomain, input);
  const resource = rawResource === undefined ? undefined : normaliseResource(rawResource, input);
  return new Jid(local, domain, resource);
}

/** Like `parseJid` but returns `undefined` instead of throwing. */
export function tryParseJid(input: string | undefined): Jid | undefined {
  if (input === undefined) return undefined;
  try {
    return parseJid(input);
  } catch {
    return undefined;
  }
}

/** The normalised form of a JID string (throws `JidError`). */
export function normaliseJid(input: string): string {
  return parseJid(input).full;
}

function normaliseLocal(s: string, input: string): string {
  if (s.length === 0) throw new JidError(input, "empty localpart");
  const n = NON_ASCII.test(s) ? s.normalize("NFKC").toLowerCase().normalize("NFC") : s.toLowerCase();
  if (BAD_LOCAL.test(n)) throw new JidError(input, "forbidden character in localpart");
  if (tooLong(n)) throw new JidError(input, "localpart longer than 1023 octets");
  return n;
}

function normaliseDomain(s: string, input: string): string {
  let d = s.endsWith(".") ? s.slice(0, -1) : s;
  if (d.length === 0) throw new JidError(input, "empty domainpart");
  if (tooLong(d)) throw new JidError(input, "domainpart longer than 1023 octets");
  if (d.startsWith("[")) {
    // IPv6 literal
    if (!/^\[[0-9a-fA-F:.]+\]$/.test(d)) throw new JidError(input, "bad IPv6 literal");
    return d.toLowerCase();
  }
  if (NON_ASCII.test(d)) {
    d = d.normalize("NFC").toLowerCase();
    const ascii = domainToASCII(d);
    if (ascii === "" || !ASCII_HOST.test(ascii)) throw new JidError(input, "invalid domainpart");
    return d;
  }
  d = d.toLowerCase();
  if (!ASCII_HOST.test(d)) throw new JidError(input, "invalid domainpart");
  return d;
}

function normaliseResource(s: string, input: string): string {
  if (s.length === 0) throw new JidError(input, "empty resourcepart");
  const n = NON_ASCII.test(s) ? s.normalize("NFC") : s;
  if (BAD_RESOURCE.test(n)) throw new JidError(input, "control character in resourcepart");
  if (tooLong(n)) throw new JidError(input, "resourcepart longer than 1023 octets");
  return n;
}

/** More than 1023 octets in UTF-8? (A UTF-16 unit is at most 3 octets, so short strings skip the count.) */
function tooLong(s: string): boolean {
  return s.length * 3 > MAX_PART && Buffer.byteLength(s, "utf8") > MAX_PART;
}

// Fast helpers for JIDs the router has already normalised (stanza `to`/`from`).

/** The bare part of a normalised JID string. */
export function bareOf(jid: string): string {
  const i = jid.indexOf("/");
  return i < 0 ? jid : jid.slice(0, i);
}

/** The localpart of a normalised JID string, or undefined for a domain JID. */
export function localOf(jid: string): string | undefined {
  const at = jid.indexOf("@");
  const slash = jid.indexOf("/");
  return at < 0 || (slash >= 0 && slash < at) ? undefined : jid.slice(0, at);
}
