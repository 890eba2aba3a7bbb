import { describe, expect, it } from "vitest";
import { JidError, parseJid, tryParseJid } from "../../src/xmpp/jid.js";

describe("parseJid", () => {
  it("splits and exposes bare and full forms", () => {
    const j = parseJid("Juliet@Capulet.Example/Balcony");
    expect(j.local).toBe("juliet");
    expect(j.domain).toBe("capulet.example");
    expect(j.resource).toBe("Balcony"); // resources keep their case
    expect(j.bare).toBe("juliet@capulet.example");
    expect(j.full).toBe("juliet@capulet.example/Balcony");
    expect(j.toBare().isBare).toBe(true);
  });

  it("parses domain-only and domain/resource JIDs", () => {
    expect(parseJid("example.org").local).toBeUndefined();
    const j = parseJid("example.org/res@with/slash");
    expect(j.domain).toBe("example.org");
    expect(j.resource).toBe("res@with/slash");
  });

  it("normalises: trailing dot, NFKC local, Unicode domains", () => {
    expect(parseJid("a@example.org.").full).toBe("a@example.org");
    expect(parseJid("ÄLICE@ÉXAMPLE.org").bare).toBe("älice@éxample.org");
    expect(parseJid("user@[::1]").domain).toBe("[::1]");
    expect(parseJid("user@127.0.0.1").domain).toBe("127.0.0.1");
  });

  it.each([
    ["", "empty"],
    ["@example.org", "empty localpart"],
    ["a@", "empty domainpart"],
    ["a@example.org/", "empty resourcepart"],
    ["a b@example.org", "forbidden character"],
    ["a<b@example.org", "forbidden character"],
    ["a@exa mple.org", "invalid domainpart"],
    ["a@@example.org", "invalid domainpart"],
    ["a@example..org", "invalid domainpart"],
    ["a@example.org/x\u0001", "control character"],
    [`${"a".repeat(1024)}@example.org`, "localpart longer than 1023"],
    [`a@example.org/${"r".repeat(1024)}`, "resourcepart longer than 1023"],
    [`a@example.org/${"é".repeat(600)}`, "resourcepart longer than 1023"],
  ])("rejects %j (%s)", (input, reason) => {
    expect(() => parseJid(input)).toThrow(JidError);
    expect(() => parseJid(input)).toThrow(reason);
    try {
      parseJid(input);
    } catch (e) {
      expect((e as JidError).condition).toBe("jid-malformed");
    }
  });

  it("accepts parts of exactly 1023 octets", () => {
    expect(parseJid(`${"a".repeat(1023)}@example.org`).local!.length).toBe(1023);
  });

  it("tryParseJid returns undefined instead of throwing", () => {
    expect(tryParseJid("bad@@jid")).toBeUndefined();
    expect(tryParseJid(undefined)).toBeUndefined();
    expect(tryParseJid("ok@example.org")?.bare).toBe("ok@example.org");
  });
});
