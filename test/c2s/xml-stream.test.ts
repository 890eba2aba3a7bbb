// The strict stream parser on its own: restarts, discarding, frames.
import type { Element } from "@xmpp/xml";
import { describe, expect, it } from "vitest";
import { MAX_DEPTH, parseFrame, XmlFrameError, XmlStreamParser } from "../../src/c2s/xml-stream.js";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

function parser(limit = 1 << 20) {
  const log: string[] = [];
  const elements: Element[] = [];
  let onElement = (_el: Element) => {};
  const p = new XmlStreamParser(limit, {
    onStart: (h) => log.push(`start ${h.name}`),
    onElement: (el) => {
      elements.push(el);
      log.push(`element ${el.name}`);
      onElement(el);
    },
    onEnd: () => log.push("end"),
    onError: (c, t) => log.push(`error ${c}: ${t}`),
    onDiscarded: (rest) => log.push(`discarded ${JSON.stringify(rest)}`),
  });
  return { p, log, elements, on: (fn: (el: Element) => void) => (onElement = fn) };
}

describe("XmlStreamParser", () => {
  it("gives stanzas as detached elements with their children, text and namespaces", () => {
    const { p, elements } = parser();
    p.write(`${HEADER}<message to='a@b' id='1'><body>x &amp; y</body><x:t xmlns:x='urn:x'/></message>`);
    expect(elements).toHaveLength(1);
    expect(elements[0]!.parent).toBeNull();
    expect(elements[0]!.getChildText("body")).toBe("x & y");
    expect(elements[0]!.toString()).toBe('<message to="a@b" id="1"><body>x &amp; y</body><t xmlns="urn:x"/></message>');
  });

  it("resolves prefixes, those of the stream header included, so that a stanza stands on its own", () => {
    const { p, elements } = parser();
    p.write(HEADER.replace("to='localhost'", "to='localhost' xmlns:x='urn:x' xmlns:c='jabber:client'"));
    p.write("<c:message to='a@b'><x:y x:a='1'><z/></x:y><sm:r xmlns:sm='urn:xmpp:sm:3'/></c:message>");
    // (<z/> has no prefix: it is in the default namespace, the stream's jabber:client)
    expect(elements[0]!.toString()).toBe(
      '<message to="a@b"><y xmlns="urn:x" xmlns:x="urn:x" x:a="1"><z xmlns="jabber:client"/></y><r xmlns="urn:xmpp:sm:3"/></message>',
    );
  });

  it("refuses elements nested deeper than MAX_DEPTH", () => {
    const { p, log } = parser();
    p.write(`${HEADER}<message>${"<a>".repeat(MAX_DEPTH)}`);
    expect(log.at(-1)).toMatch(/^error policy-violation: elements nested more than/);
  });

  it("does not count whitespace keepalives between stanzas toward the size limit", () => {
    const { p, log } = parser(1100);
    p.write(HEADER);
    for (let i = 0; i < 3000; i++) p.write(" ");
    p.write("<message><body>after the keepalives</body></message>");
    expect(log.at(-1)).toBe("element message");
  });

  it.each([
    ["inside a start tag", "<message to='a@b' id='"],
    ["inside a comment", "<!--"],
    ["inside CDATA", "<message><body><![CDATA["],
    ["in text at the stream level", "x"],
  ])("counts reads of whitespace %s (they are part of it, and the parser holds them)", (_where, opening) => {
    const { p, log } = parser(2048);
    p.write(HEADER);
    p.write(opening);
    for (let i = 0; i < 50 && !log.at(-1)!.startsWith("error"); i++) p.write(" ".repeat(100));
    expect(log.at(-1)).toMatch(/^error policy-violation/);
  });

  it("skips only XML white space before a stream header", () => {
    const ok = parser();
    ok.p.write(` \r\n\t${HEADER}`);
    expect(ok.log).toEqual(["start stream:stream"]);
    const bad = parser();
    bad.p.write(`\u00a0${HEADER}`);
    expect(bad.log.at(-1)).toMatch(/^error not-well-formed/);
  });

  it("a restart in the middle of a read goes on with the rest of it, whitespace and declaration included", () => {
    const { p, log, on } = parser();
    on((el) => {
      if (el.name === "auth") p.restart();
    });
    p.write(`${HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\n ${HEADER}<presence/>`);
    expect(log).toEqual(["start stream:stream", "element auth", "start stream:stream", "element presence"]);
  });

  it("a discarding restart hands over the rest of the read instead of parsing it", () => {
    const { p, log, on } = parser();
    on((el) => {
      if (el.name === "starttls") p.restart("discard");
    });
    p.write(`${HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>${HEADER}`);
    expect(log).toEqual(["start stream:stream", "element starttls", `discarded ${JSON.stringify(HEADER)}`]);
    p.write(HEADER); // the next read belongs to the new stream
    expect(log.at(-1)).toBe("start stream:stream");
  });

  it("refuses comments, processing instructions and DTDs as restricted XML", () => {
    for (const bad of ["<!-- hi -->", "<?pi x?>", "<!DOCTYPE x>"]) {
      const { p, log } = parser();
      p.write(`${HEADER}${bad}`);
      expect(log.at(-1)).toMatch(/^error restricted-xml/);
    }
  });

  it("counts the size limit per stanza", () => {
    const { p, log } = parser(2048);
    p.write(HEADER);
    const small = `<message><body>${"x".repeat(1000)}</body></message>`;
    p.write(small + small + small);
    expect(log.filter((l) => l.startsWith("element"))).toHaveLength(3);
    p.write(`<message><body>${"x".repeat(3000)}</body></message>`);
    expect(log.at(-1)).toMatch(/^error policy-violation/);
  });
});

describe("parseFrame (RFC 7395)", () => {
  it("parses one element with its namespace", () => {
    const el = parseFrame("<message xmlns='jabber:client' to='a@b'><body>hi</body></message>");
    expect(el.getChildText("body")).toBe("hi");
    expect(el.attrs.xmlns).toBeUndefined(); // jabber:client is where a stanza stands, as on TCP
  });

  it.each([
    ["two elements", "<a xmlns='x'/><b xmlns='x'/>", "not-well-formed"],
    ["an unclosed element", "<a xmlns='x'>", "not-well-formed"],
    ["an undeclared prefix", "<p:a/>", "not-well-formed"],
    ["a comment", "<a xmlns='x'><!-- c --></a>", "restricted-xml"],
  ])("refuses %s", (_what, text, condition) => {
    try {
      parseFrame(text);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(XmlFrameError);
      expect((err as XmlFrameError).condition).toBe(condition);
    }
  });
});
