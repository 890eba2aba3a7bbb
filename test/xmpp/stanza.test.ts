import { describe, expect, it } from "vitest";
import {
  cloneStanza,
  copyMeta,
  errorReply,
  findChild,
  getMeta,
  iqResult,
  removeChildren,
  setMeta,
  StanzaError,
  xml,
} from "../../src/xmpp/stanza.js";
import { serializeXml } from "../../src/storage/codec.js";

describe("stanza helpers", () => {
  it("builds RFC 6120 error replies: swapped addresses, same id, type and condition, text", () => {
    const iq = xml("iq", { type: "get", id: "q1", from: "a@x/r", to: "x" }, xml("query", { xmlns: "urn:test" }));
    const r = errorReply(iq, "modify", "bad-request", "which field");
    expect(r.toString()).toBe(
      '<iq type="error" id="q1" to="a@x/r" from="x"><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>' +
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">which field</text></error></iq>',
    );
  });

  it("gives StanzaError the condition's usual type unless told otherwise", () => {
    expect(new StanzaError("forbidden").type).toBe("auth");
    expect(new StanzaError("item-not-found").type).toBe("cancel");
    expect(new StanzaError("bad-request", "x", "cancel").type).toBe("cancel");
    const el = new StanzaError("feature-not-implemented", "field foo").toElement();
    expect(el.attrs.type).toBe("cancel");
    expect(el.getChild("feature-not-implemented", "urn:ietf:params:xml:ns:xmpp-stanzas")).toBeDefined();
  });

  it("builds iq results", () => {
    const iq = xml("iq", { type: "get", id: "p", from: "a@x/r", to: "x" });
    expect(iqResult(iq).toString()).toBe('<iq type="result" id="p" to="a@x/r" from="x"/>');
  });

  it("finds children by name and namespace, inherited namespaces included", () => {
    const m = xml(
      "message",
      {},
      xml("body", {}, "hi"),
      xml("stanza-id", { xmlns: "urn:xmpp:sid:0", id: "1" }),
      xml("x", { xmlns: "urn:other" }, xml("stanza-id", { id: "nested" })),
    );
    expect(findChild(m, "stanza-id", "urn:xmpp:sid:0")?.attrs.id).toBe("1");
    expect(findChild(m, "stanza-id", "urn:other")).toBeUndefined();
    expect(findChild(m.getChild("x")!, "stanza-id", "urn:other")?.attrs.id).toBe("nested");
    expect(removeChildren(m, (c) => c.attrs.xmlns === "urn:xmpp:sid:0")).toBe(1);
    expect(m.children.length).toBe(2);
  });

  it("keeps meta on the stanza object but never serialises it", () => {
    const m = xml("message", { to: "a@x" }, xml("body", {}, "hi"));
    setMeta(m, "archive-id", "abc");
    setMeta(m, "archive-pos", 7);
    expect(getMeta(m, "archive-id")).toBe("abc");
    expect(m.toString()).toBe('<message to="a@x"><body>hi</body></message>');
    expect(serializeXml(m)).not.toContain("abc");
    const c = cloneStanza(m);
    expect(getMeta(c, "archive-id")).toBeUndefined();
    copyMeta(m, c);
    expect(getMeta(c, "archive-pos")).toBe(7);
  });
});
