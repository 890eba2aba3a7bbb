// The incoming XML stream (RFC 6120 §4): a streaming parser with limits.
// Restricted XML (§11.1) is refused before parsing: no DTD, entity
// declarations, comments or processing instructions (the XML declaration at
// the very start excepted). A top-level element larger than the limit is a
// policy violation.
import { Parser, type Element } from "@xmpp/xml";

type Condition = "not-well-formed" | "restricted-xml" | "policy-violation";
const NAME_START = /[A-Za-z_:\u00C0-\uFFFF]/;

export interface XmlStreamHandler {
  onStart(header: Element): void;
  onElement(el: Element): void;
  onEnd(): void;
  onError(condition: Condition, text: string): void;
}

export class XmlStreamParser {
  private parser!: Parser;
  private bytes = 0;
  private carry = "";
  private atStart = true;
  private failed = false;

  constructor(
    private readonly maxElementBytes: number,
    private readonly handler: XmlStreamHandler,
  ) {
    this.reset();
  }

  /** A new stream (after STARTTLS or SASL): a fresh parser. */
  reset(): void {
    const p = new Parser();
    p.on("start", (el) => {
      this.bytes = 0;
      if (!this.failed) this.handler.onStart(el);
    });
    p.on("element", (el) => {
      this.bytes = 0;
      if (!this.failed) this.handler.onElement(el);
    });
    p.on("end", () => {
      if (!this.failed) this.handler.onEnd();
    });
    p.on("error", (err) => this.fail("not-well-formed", err.message));
    this.parser = p;
    this.carry = "";
    this.atStart = true;
    this.bytes = 0;
  }

  write(data: string): void {
    if (this.failed) return;
    const bad = this.scan(data);
    if (bad) {
      this.fail(bad[0], bad[1]);
      return;
    }
    // The limit is per stanza: the parser gets the chunk in pieces ending at '>', and
    // the count restarts when a stanza ends, so neither many small stanzas in one read
    // add up, nor does what follows a stanza in the same read go uncounted.
    let from = 0;
    while (from < data.length && !this.failed) {
      const gt = data.indexOf(">", from);
      const to = gt < 0 ? data.length : gt + 1;
      const piece = from === 0 && to === data.length ? data : data.slice(from, to);
      from = to;
      this.bytes += Buffer.byteLength(piece, "utf8");
      if (this.bytes > this.maxElementBytes) {
        this.fail("policy-violation", `stanza larger than ${this.maxElementBytes} bytes`);
        return;
      }
      try {
        this.parser.write(piece);
      } catch (err) {
        this.fail("not-well-formed", (err as Error).message);
      }
    }
  }

  private fail(condition: Condition, text: string): void {
    if (this.failed) return;
    this.failed = true;
    this.handler.onError(condition, text);
  }

  /**
   * Looks for "<!" (other than CDATA), "<?" (other than the leading XML
   * declaration) and "<" not followed by a name (which ltx would skip over).
   */
  private scan(data: string): [Condition, string] | undefined {
    const s = this.carry + data;
    let i = s.indexOf("<");
    let keepFrom = s.length;
    while (i >= 0) {
      const next = s[i + 1];
      if (next === undefined) {
        keepFrom = i;
        break;
      }
      if (next === "?") {
        if (s.length < i + 5) {
          keepFrom = i;
          break;
        }
        if (!(this.atStart && s.startsWith("<?xml", i))) return ["restricted-xml", "processing instructions are not allowed"];
      } else if (next === "!") {
        if (s.length < i + 9 && "<![CDATA[".startsWith(s.slice(i))) {
          keepFrom = i;
          break;
        }
        if (!s.startsWith("<![CDATA[", i)) return ["restricted-xml", "DTDs, entity declarations and comments are not allowed"];
      } else if (next === "/" || NAME_START.test(next)) {
        this.atStart = false;
      } else {
        return ["not-well-formed", "'<' not followed by an element name"];
      }
      i = s.indexOf("<", i + 1);
    }
    this.carry = s.slice(keepFrom);
    return undefined;
  }
}
