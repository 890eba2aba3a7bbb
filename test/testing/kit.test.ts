import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { defineModule } from "../../src/core/module.js";
import { createTestServer, ManualClock, type TestServer } from "../../src/testing/index.js";
import type { StanzaEvent } from "../../src/core/delivery.js";
import { iqResult, xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe("test kit", () => {
  it("builds a host from a config object on the memory driver", () => {
    t = createTestServer({ config: { modules_enabled: ["ping"], hosts: { "kit.example": {} } } });
    expect(t.host().name).toBe("kit.example");
    expect(t.server.storage.name).toBe("memory");
    expect(t.host().isLoaded("ping")).toBe(true);
  });

  it("runs on in-memory SQLite when asked", () => {
    t = createTestServer({ storage: "sqlite" });
    expect(t.server.storage.name).toBe("sqlite");
  });

  it("connects fake clients with JID and client id, and awaits replies", async () => {
    t = createTestServer({ config: { modules_enabled: ["ping"] } });
    const c = t.connect("Carol@LOCALHOST/Tablet", { clientId: "9b2cd35f-0c4f-4bd9-9d0b-8f6d0d1b2f1e" });
    expect(c.jid).toBe("carol@localhost/Tablet");
    expect(c.session.clientId).toBe("9b2cd35f-0c4f-4bd9-9d0b-8f6d0d1b2f1e");
    const r = await c.request("<iq type='get' to='localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(r.attrs).toMatchObject({ type: "result", id: "p1" });
  });

  it("waits for stanzas that arrive later, and times out clearly", async () => {
    t = createTestServer();
    const a = t.connect("a@localhost/1");
    const b = t.connect("b@localhost/1");
    const waiting = b.next((s) => s.name === "message");
    setTimeout(() => void a.send(xml("message", { to: "b@localhost/1" }, xml("body", {}, "late"))), 5);
    expect((await waiting).getChildText("body")).toBe("late");
    await expect(b.next(() => true, 20)).rejects.toThrow(/no matching stanza within 20 ms/);
  });

  it("injects a manual clock into the host", async () => {
    const clock = new ManualClock(Date.UTC(2030, 5, 1));
    let seen = 0;
    t = createTestServer({
      clock,
      modules: [defineModule("time", (m) => m.hook("iq-get/self/urn:t:now", ({ origin, stanza }: StanzaEvent) => {
        seen = m.clock.now();
        origin!.send(iqResult(stanza));
        return true;
      }))],
    });
    const a = t.connect("a@localhost/1");
    await clock.advance(86_400_000);
    await a.send(xml("iq", { type: "get", id: "n" }, xml("now", { xmlns: "urn:t" })));
    expect(seen).toBe(Date.UTC(2030, 5, 2));
  });

  it("refuses stream management when no module handles it, and uses the module that does", async () => {
    t = createTestServer();
    expect(() => t!.connect("a@localhost/1", { streamManagement: true })).toThrow(/load smacks/);
    await t.stop();
    t = createTestServer({
      modules: [defineModule("fake_sm", (m) => m.hook("stanza/urn:xmpp:sm:3:enable", ({ origin }: StanzaEvent) => {
        origin!.send(xml("enabled", { xmlns: "urn:xmpp:sm:3", id: "x", resume: "true" }));
        return true;
      }))],
    });
    const c = t.connect("a@localhost/1", { streamManagement: true });
    expect(c.take().map((s) => s.name)).toEqual(["enabled"]);
  });

  it("closes sessions and fires resource-unbind", () => {
    const unbound: string[] = [];
    t = createTestServer({
      modules: [defineModule("watch", (m) => m.hook("resource-unbind", ({ session }) => {
        unbound.push(session.jid!.full);
      }))],
    });
    const a = t.connect("a@localhost/1");
    a.close();
    expect(unbound).toEqual(["a@localhost/1"]);
    expect(t.host().sessionsOf("a")).toBeUndefined();
  });

  it("replaces a session that binds the same full JID (conflict)", () => {
    t = createTestServer();
    const first = t.connect("a@localhost/same");
    const second = t.connect("a@localhost/same");
    expect(first.closeReason).toBe("conflict");
    expect(first.session.closed).toBe(true);
    expect(t.host().fullSessions.get("a@localhost/same")).toBe(second.session);
  });

  it("docs/testing.md shows the example test exactly as it runs", () => {
    const doc = readFileSync(new URL("../../docs/testing.md", import.meta.url), "utf8");
    const example = readFileSync(new URL("../readme-example.test.ts", import.meta.url), "utf8");
    expect(doc).toContain(example.trim());
  });
});
