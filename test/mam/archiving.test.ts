// What is archived, where, with which stanza-id — on both drivers.
import { afterEach, describe, expect, it } from "vitest";
import type { Element } from "@xmpp/xml";
import { defineModule } from "../../src/core/module.js";
import { META_ARCHIVE_ID, META_ARCHIVE_POS, type ArchiveMessageAdded, type ArchiveShouldStore } from "../../src/mam/index.js";
import { shouldStore } from "../../src/mam/should-store.js";
import type { TestServer } from "../../src/testing/index.js";
import { getMeta, xml } from "../../src/xmpp/stanza.js";
import { chat, DRIVERS, mamServer } from "./helpers.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const msg = (attrs: Record<string, string>, ...children: Element[]) => xml("message", attrs, ...children);

describe("shouldStore (Prosody's rules, in order)", () => {
  it.each([
    ["headline with body", msg({ type: "headline" }, xml("body", {}, "x")), false, "headline"],
    ["error to a full JID", msg({ type: "error", to: "a@x/r" }), true, "bounce"],
    ["error to a bare JID", msg({ type: "error", to: "a@x" }, xml("body", {}, "x")), false, "error to a bare JID"],
    ["groupchat", msg({ type: "groupchat" }, xml("body", {}, "x")), false, "groupchat"],
    ["no-store hint", msg({ type: "chat" }, xml("body", {}, "x"), xml("no-store", { xmlns: "urn:xmpp:hints" })), false, "hint"],
    ["no-permanent-store hint", msg({}, xml("body", {}, "x"), xml("no-permanent-store", { xmlns: "urn:xmpp:hints" })), false, "hint"],
    ["store hint", msg({}, xml("store", { xmlns: "urn:xmpp:hints" })), true, "hint"],
    ["body", msg({ type: "chat" }, xml("body", {}, "x")), true, "body"],
    ["subject", msg({}, xml("subject", {}, "s")), true, "subject"],
    ["encryption", msg({}, xml("encryption", { xmlns: "urn:xmpp:eme:0", namespace: "eu.siacs.conversations.axolotl" })), true, "encrypted"],
    ["receipt request", msg({}, xml("request", { xmlns: "urn:xmpp:receipts" })), true, "receipt"],
    ["receipt", msg({}, xml("received", { xmlns: "urn:xmpp:receipts", id: "1" })), true, "receipt"],
    ["chat marker", msg({}, xml("displayed", { xmlns: "urn:xmpp:chat-markers:0", id: "1" })), true, "marker"],
    ["direct invite", msg({}, xml("x", { xmlns: "jabber:x:conference", jid: "room@muc" })), true, "invite"],
    ["mediated invite", msg({}, xml("x", { xmlns: "http://jabber.org/protocol/muc#user" }, xml("invite", { from: "a@x" }))), true, "invite"],
    ["muc#user without invite", msg({}, xml("x", { xmlns: "http://jabber.org/protocol/muc#user" })), false, "default"],
    ["jingle message", msg({}, xml("propose", { xmlns: "urn:xmpp:jingle-message:0", id: "c" })), true, "jingle call"],
    ["chat state only", msg({ type: "chat" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })), false, "default"],
    ["body in another namespace", msg({}, xml("body", { xmlns: "urn:other" }, "x")), false, "default"],
  ])("%s", (_what, stanza, store, reason) => {
    expect(shouldStore(stanza)).toEqual([store, reason]);
  });
});

describe.each(DRIVERS)("archiving (%s)", (driver) => {
  async function archiveOf(user: string) {
    return (await t!.host().openStore("archive", "archive").find(user)).items;
  }

  it("stores a chat in the sender's and the recipient's archive, with the partner's bare JID", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    await alice.send(chat("bob@localhost", "hello"));
    const [a] = await archiveOf("alice");
    const [b] = await archiveOf("bob");
    expect(a).toMatchObject({ with: "bob@localhost" });
    expect(b).toMatchObject({ with: "alice@localhost" });
    expect(a!.stanza.getChildText("body")).toBe("hello");
    expect(b!.stanza.attrs.from).toBe("alice@localhost/phone");
    expect(a!.id).not.toBe(b!.id);
    // the delivered copy carries the recipient's archive id, as stanza-id and as meta
    const [delivered] = bob.take();
    const sid = delivered!.getChild("stanza-id", "urn:xmpp:sid:0")!;
    expect(sid.attrs).toMatchObject({ by: "bob@localhost", id: b!.id });
    expect(getMeta(delivered!, META_ARCHIVE_ID)).toBe(b!.id);
    expect(getMeta(delivered!, META_ARCHIVE_POS)).toBe(b!.pos);
    expect(delivered!.toString()).not.toContain("mam:");
  });

  it("gives every delivered copy the stanza-id (several resources)", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    const b1 = t.connect("bob@localhost/1");
    const b2 = t.connect("bob@localhost/2");
    await alice.send(chat("bob@localhost", "hello"));
    const id = (await archiveOf("bob"))[0]!.id;
    for (const c of [b1, b2]) {
      const [m] = c.take();
      expect(m!.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id).toBe(id);
      expect(getMeta(m!, META_ARCHIVE_ID)).toBe(id);
    }
  });

  it("removes forged stanza-ids (by the recipient or the host) from the delivered and the stored copy", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    await alice.send(
      chat(
        "bob@localhost",
        "forged",
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "bob@localhost", id: "fake-1" }),
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "localhost", id: "fake-2" }),
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "room@muc.example", id: "muc-id" }),
      ),
    );
    const [delivered] = bob.take();
    const ids = delivered!.getChildren("stanza-id", "urn:xmpp:sid:0").map((s) => s.attrs.id);
    expect(ids).not.toContain("fake-1");
    expect(ids).not.toContain("fake-2");
    expect(ids).toContain("muc-id");
    expect(ids).toContain((await archiveOf("bob"))[0]!.id);
    for (const user of ["bob", "alice"]) {
      const stored = (await archiveOf(user))[0]!.stanza.toString();
      expect(stored).not.toContain("fake-1");
      expect(stored).not.toContain("fake-2");
    }
  });

  it("removes a forged stanza-id even from a message that is not archived", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    await alice.send(xml("message", { to: "bob@localhost", type: "headline" }, xml("body", {}, "news"),
      xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "bob@localhost", id: "fake" })));
    expect(bob.take()[0]!.toString()).not.toContain("fake");
    expect(await archiveOf("bob")).toEqual([]);
  });

  it("does not archive headlines, groupchat, no-store, or what has nothing archivable", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    t.connect("bob@localhost/pc");
    await alice.send(xml("message", { to: "bob@localhost", type: "headline" }, xml("body", {}, "x")));
    await alice.send(xml("message", { to: "bob@localhost/pc", type: "groupchat" }, xml("body", {}, "x")));
    await alice.send(chat("bob@localhost", "x", xml("no-store", { xmlns: "urn:xmpp:hints" })));
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("active", { xmlns: "http://jabber.org/protocol/chatstates" })));
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("x", { xmlns: "urn:unknown" })));
    expect(await archiveOf("bob")).toEqual([]);
    expect(await archiveOf("alice")).toEqual([]);
  });

  it("strips chat states before storing, and stores what else there is", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    await alice.send(chat("bob@localhost", "hi", xml("active", { xmlns: "http://jabber.org/protocol/chatstates" })));
    expect((await archiveOf("bob"))[0]!.stanza.toString()).not.toContain("chatstates");
    // the delivered copy keeps it
    expect(bob.take()[0]!.getChild("active", "http://jabber.org/protocol/chatstates")).toBeDefined();
  });

  it("honours dont_archive_namespaces", async () => {
    t = mamServer(driver, { dont_archive_namespaces: ["urn:xmpp:receipts"] });
    const alice = t.connect("alice@localhost/phone");
    t.connect("bob@localhost/pc");
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("received", { xmlns: "urn:xmpp:receipts", id: "1" })));
    expect(await archiveOf("bob")).toEqual([]);
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("active", { xmlns: "http://jabber.org/protocol/chatstates" })));
    expect(await archiveOf("bob")).toEqual([]); // chat states alone are still not archivable
  });

  it("archives receipts, markers, encrypted messages, invites and call proposals", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    t.connect("bob@localhost/pc");
    const payloads = [
      xml("request", { xmlns: "urn:xmpp:receipts" }),
      xml("displayed", { xmlns: "urn:xmpp:chat-markers:0", id: "1" }),
      xml("encryption", { xmlns: "urn:xmpp:eme:0", namespace: "x" }),
      xml("x", { xmlns: "jabber:x:conference", jid: "room@muc" }),
      xml("propose", { xmlns: "urn:xmpp:jingle-message:0", id: "c" }),
      xml("store", { xmlns: "urn:xmpp:hints" }),
    ];
    for (const p of payloads) await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, p));
    expect(await archiveOf("bob")).toHaveLength(payloads.length);
  });

  it("archives an error bounced to a full JID, not one to a bare JID", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    t.connect("bob@localhost/pc");
    await alice.send(xml("message", { to: "bob@localhost/pc", type: "error", id: "e1" }, xml("error", { type: "cancel" })));
    await alice.send(xml("message", { to: "bob@localhost", type: "error", id: "e2" }, xml("body", {}, "x")));
    expect((await archiveOf("bob")).map((i) => i.stanza.attrs.id)).toEqual(["e1"]);
  });

  it("archives a message to one's own account once: no to, own bare JID, own other resource", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    t.connect("alice@localhost/laptop");
    await alice.send(xml("message", { type: "chat" }, xml("body", {}, "no to")));
    await alice.send(chat("alice@localhost", "bare"));
    await alice.send(chat("alice@localhost/laptop", "other resource"));
    const items = await archiveOf("alice");
    expect(items.map((i) => i.stanza.getChildText("body"))).toEqual(["no to", "bare", "other resource"]);
    expect(items.every((i) => i.with === "alice@localhost")).toBe(true);
  });

  it("keeps a chat for an offline user in the archive instead of bouncing it", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    await alice.send(chat("bob@localhost", "while you were away"));
    expect(alice.take()).toEqual([]);
    expect((await archiveOf("bob"))[0]!.stanza.getChildText("body")).toBe("while you were away");
  });

  it("still bounces an offline chat that is not archived", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    await alice.send(chat("bob@localhost", "secret", xml("no-store", { xmlns: "urn:xmpp:hints" })));
    expect(alice.take()[0]!.attrs.type).toBe("error");
  });

  it("lets archive-should-store veto, force, and fires archive-message-added", async () => {
    const added: ArchiveMessageAdded[] = [];
    const policy = defineModule("policy", (m) => {
      m.hook("archive-should-store", (d: ArchiveShouldStore) => {
        if (d.stanza.getChildText("body") === "veto") return false;
        if (d.stanza.getChild("x", "urn:force")) return true;
        return undefined;
      });
      m.hook("archive-message-added", (d: ArchiveMessageAdded) => void added.push(d));
    });
    t = mamServer(driver, {}, { modules: [policy] });
    const alice = t.connect("alice@localhost/phone");
    t.connect("bob@localhost/pc");
    await alice.send(chat("bob@localhost", "veto"));
    await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("x", { xmlns: "urn:force" })));
    expect(await archiveOf("bob")).toHaveLength(1);
    expect(added.map((a) => [a.user, a.direction, a.with])).toEqual([
      ["alice", "outgoing", "bob@localhost"],
      ["bob", "incoming", "alice@localhost"],
    ]);
    expect(added[1]!.id).toBe((await archiveOf("bob"))[0]!.id);
    expect(added[1]!.pos).toBe((await archiveOf("bob"))[0]!.pos);
    expect(added[0]!.origin).toBeDefined();
  });

  it("does not archive for users who do not exist", async () => {
    const accounts = defineModule("accounts", (m) => m.hook("user-exists", ({ username }: { username: string }) => username === "alice"));
    t = mamServer(driver, {}, { modules: [accounts] });
    const alice = t.connect("alice@localhost/phone");
    await alice.send(chat("ghost@localhost", "anyone?"));
    expect(await archiveOf("ghost")).toEqual([]);
    expect(await archiveOf("alice")).toHaveLength(1);
  });

  it("stamps archive times from the host clock", async () => {
    t = mamServer(driver);
    await t.clock.set(Date.UTC(2026, 3, 1, 10, 0, 0));
    const alice = t.connect("alice@localhost/phone");
    await alice.send(chat("bob@localhost", "t"));
    expect((await archiveOf("bob"))[0]!.when).toBe(Date.UTC(2026, 3, 1, 10, 0, 0));
  });
});
