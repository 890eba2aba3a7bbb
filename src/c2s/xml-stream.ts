// The incoming XML stream (RFC 6120 §4, §11): a strict, namespace-aware
// streaming parser (saxes) with limits. What is not well-formed XML 1.0 with
// well-formed namespaces ends the stream: control characters, a raw '<' in an
// attribute, a duplicated attribute, an undeclared prefix, text before the
// stream header (an HTTP request, say). Restricted XML (§11.1) is refused too:
// no DTD, comments or processing instructions (the XML declaration at the very
// start excepted). A top-level element larger than the limit, or nested
// deeper than MAX_DEPTH, is a policy violation. Elements come out as
// @xmpp/xml (ltx) elements, standing on their own: prefixes are resolved into
// `xmlns` attributes, so no stanza depends on declarations of the stream.
import { Element } from "@xmpp/xml";
import { SaxesParser, type SaxesTagNS } from "saxes";

export type XmlCondition = "not-well-formed" | "restricted-xml" | "policy-violation";

type Sax = SaxesParser<{ xmlns: true; position: false }>;

export interface XmlStreamHandler {
  onStart(header: Element): void;
  onElement(el: Element): void;
  onEnd(): void;
  onError(condition: XmlCondition, text: string): void;
  /**
   * After `restart("discard")` during a write: what that read held past the
   * element that restarted the stream (STARTTLS: bytes sent in plaintext, which
   * the new stream must never see, RFC 6120 §5.4.3.3).
   */
  onDiscarded?(rest: string): void;
}

type Events = { start(el: Element): void; element(el: Element): void; end(root: Element): void; error(c: XmlCondition, t: string): void };

/**
 * saxes keeps each handler in a property of its own. Set one by one after the
 * parser is built, they turn it into a dictionary-mode object in V8 and parsing
 * runs three to four times slower; set in the constructor, always the same ones
 * in the same order, the parser keeps its fast shape.
 */
class StrictSax extends SaxesParser<{ xmlns: true; position: false }> {
  constructor(handlers: { [E in "doctype" | "comment" | "processinginstruction" | "error" | "opentag" | "closetag" | "text" | "cdata"]: Parameters<Sax["on"]>[1] }) {
    super({ xmlns: true, position: false });
    for (const name of ["doctype", "comment", "processinginstruction", "error", "opentag", "closetag", "text", "cdata"] as const) {
      this.on(name, handlers[name] as never);
    }
  }
}

const NS_CLIENT = "jabber:client";
/** XML's white space (not Unicode's: U+00A0 before a stream header is not well-formed). */
const ONLY_WHITESPACE = /^[ \t\r\n]*$/;
const LEADING_WHITESPACE = /^[ \t\r\n]+/;
/** A stanza nesting elements deeper than this ends the stream (recursion over it must not overflow the stack). */
export const MAX_DEPTH = 100;

/** Sets an attribute, even one named `__proto__` (which plain assignment would swallow). */
function setAttr(attrs: Record<string, string>, name: string, value: string): void {
  if (name === "__proto__") Object.defineProperty(attrs, name, { value, enumerable: true, writable: true, configurable: true });
  else attrs[name] = value;
}

/**
 * The element as the stanza carries it on its own, away from the stream: its
 * name without a prefix and `xmlns` where its namespace differs from its
 * parent's, so that prefixes declared on the stream header (or anywhere above)
 * never leave the stanza undeclared; a prefixed attribute brings its
 * declaration along.
 */
function toElement(tag: SaxesTagNS, inheritedNs: string): Element {
  const attrs: Record<string, string> = {};
  if (tag.uri !== inheritedNs) attrs.xmlns = tag.uri;
  const all = tag.attributes;
  for (const name in all) {
    const a = all[name]!;
    if (name === "xmlns" || a.prefix === "xmlns") continue; // declarations: names above and below carry namespaces
    if (a.prefix !== "" && a.prefix !== "xml") attrs[`xmlns:${a.prefix}`] = a.uri;
    setAttr(attrs, name, a.value);
  }
  return new Element(tag.local, attrs);
}

/**
 * Builds ltx elements from saxes events. In a stream the root is the stream
 * header, kept as written, and its children are the stanzas; in a WebSocket
 * frame (`frame`) the root is the stanza.
 */
function newSax(isCurrent: () => boolean, stack: Element[], frame: boolean, on: Events): Sax {
  const uris: string[] = [];
  const top = frame ? 0 : 1; // the depth of a stanza
  const restricted = (what: string) => () => isCurrent() && on.error("restricted-xml", `${what} are not allowed`);
  const text = (t: string) => {
    // text at the stream level (whitespace keepalives) belongs to no stanza
    if (stack.length > top && isCurrent()) stack[stack.length - 1]!.t(t);
  };
  return new StrictSax({
    doctype: restricted("DTDs and entity declarations"),
    comment: restricted("comments"),
    processinginstruction: restricted("processing instructions"),
    // saxes reports a DOCTYPE after the root's start as misplaced, not as a doctype
    // event: it is restricted XML all the same (RFC 6120 §11.1)
    error: (err: Error) => isCurrent() && on.error(/doctype/i.test(err.message) ? "restricted-xml" : "not-well-formed", err.message),
    opentag: (tag: SaxesTagNS) => {
      if (!isCurrent()) return;
      const depth = stack.length;
      if (depth - top >= MAX_DEPTH) {
        on.error("policy-violation", `elements nested more than ${MAX_DEPTH} deep`);
        return;
      }
      let el: Element;
      if (depth < top) {
        const attrs: Record<string, string> = {};
        for (const name in tag.attributes) setAttr(attrs, name, tag.attributes[name]!.value);
        el = new Element(tag.name, attrs);
      } else el = toElement(tag, depth === top ? NS_CLIENT : uris[depth - 1]!);
      if (depth > top) stack[depth - 1]!.cnode(el);
      stack.push(el);
      uris.push(tag.uri);
      if (depth === 0) on.start(el);
    },
    closetag: () => {
      if (!isCurrent()) return;
      const el = stack.pop()!;
      uris.pop();
      if (stack.length === top && !frame) on.element(el);
      else if (stack.length === 0) on.end(el);
    },
    text,
    cdata: text,
  });
}

export class XmlStreamParser {
  private sax!: Sax;
  private bytes = 0;
  private failed = false;
  private writing = false;
  private discardRest = false;
  /** Nothing but whitespace seen since the stream (re)started. */
  private fresh = true;
  /** The last piece ended the stream header or a stanza: the parser is between two stanzas. */
  private between = false;

  constructor(
    private readonly maxElementBytes: number,
    private readonly handler: XmlStreamHandler,
  ) {
    this.restart();
  }

  /**
   * A new stream (after STARTTLS or SASL): a fresh parser. With "discard", the
   * rest of the read being parsed is not parsed but given to `onDiscarded`.
   */
  restart(rest: "keep" | "discard" = "keep"): void {
    const stack: Element[] = [];
    const sax: Sax = newSax(() => sax === this.sax && !this.failed, stack, false, {
      start: (el) => {
        this.between = true;
        this.handler.onStart(el);
      },
      element: (el) => {
        this.bytes = 0;
        this.between = true;
        this.handler.onElement(el);
      },
      end: () => this.handler.onEnd(),
      error: (c, t) => this.fail(c, t),
    });
    this.sax = sax;
    this.bytes = 0;
    this.fresh = true;
    this.between = false;
    if (this.writing && rest === "discard") this.discardRest = true;
  }

  write(data: string): void {
    if (this.failed) return;
    // The limit is per stanza: the parser gets the read in pieces ending at '>', and
    // the count restarts when a stanza ends, so neither many small stanzas in one read
    // add up, nor does what follows a stanza in the same read go uncounted. An element
    // always ends at a '>', so a restart it causes happens exactly at a piece's end.
    this.writing = true;
    try {
      let from = 0;
      while (from < data.length && !this.failed) {
        const gt = data.indexOf(">", from);
        const to = gt < 0 ? data.length : gt + 1;
        const piece = from === 0 && to === data.length ? data : data.slice(from, to);
        from = to;
        // Whitespace right after the header or a stanza (keepalives) belongs to no stanza:
        // not counted, and not given to saxes, which would buffer it. Only there: a read of
        // spaces inside a start tag, a comment or CDATA is part of what it is in. (Every
        // stanza and the header end at a '>', so at a piece's end.)
        if (this.between && ONLY_WHITESPACE.test(piece)) continue;
        this.between = false;
        this.bytes += Buffer.byteLength(piece, "utf8");
        if (this.bytes > this.maxElementBytes) {
          this.fail("policy-violation", `stanza larger than ${this.maxElementBytes} bytes`);
          return;
        }
        if (this.fresh) {
          // whitespace between two streams (a keepalive, a newline after </auth>) would
          // put the new stream's XML declaration off the start of its document
          const trimmed = piece.replace(LEADING_WHITESPACE, "");
          if (trimmed === "") continue;
          this.fresh = false;
          this.sax.write(trimmed);
        } else this.sax.write(piece);
        if (this.discardRest) {
          this.discardRest = false;
          this.handler.onDiscarded?.(data.slice(from));
          return;
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private fail(condition: XmlCondition, text: string): void {
    if (this.failed) return;
    this.failed = true;
    this.handler.onError(condition, text);
  }
}

export class XmlFrameError extends Error {
  constructor(
    readonly condition: XmlCondition,
    message: string,
  ) {
    super(message);
  }
}

/**
 * One WebSocket frame (RFC 7395 §3.3.3): a complete element, declaring its own
 * namespaces, held to the same rules as the TCP stream. Throws XmlFrameError.
 */
export function parseFrame(text: string): Element {
  let root: Element | undefined;
  let problem: XmlFrameError | undefined;
  const stack: Element[] = [];
  const sax = newSax(() => problem === undefined, stack, true, {
    start: () => {},
    element: () => {},
    end: (el) => {
      root = el;
    },
    error: (c, t) => {
      problem = new XmlFrameError(c, t);
    },
  });
  sax.write(text);
  if (problem === undefined) sax.close();
  if (problem) throw problem;
  if (!root) throw new XmlFrameError("not-well-formed", "a frame holds one complete element");
  return root;
}
