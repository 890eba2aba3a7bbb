// The typed event map: known names give handlers typed data (checked by the
// type-check of `npm run check`, and at run time by firing them).
import type { Element } from "@xmpp/xml";
import { expect, expectTypeOf, it } from "vitest";
import type { StanzaEvent } from "../../src/core/delivery.js";
import { defineModule } from "../../src/core/module.js";
import type { Session } from "../../src/core/session.js";
import type { ArchiveMessageAdded } from "../../src/mam/index.js";
import { createTestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

it("types the payloads of the core's events, the features' (by declaration merging), and stanza events", async () => {
  const seen: string[] = [];
  const watcher = defineModule("watcher", (m) => {
    m.hook("resource-bind", (d) => {
      expectTypeOf(d.session).toEqualTypeOf<Session>();
      seen.push(`bind ${d.session.jid!.full}`);
      return undefined;
    });
    m.hook("archive-message-added", (d) => {
      expectTypeOf(d).toEqualTypeOf<ArchiveMessageAdded>();
      seen.push(`archived ${d.user} ${d.direction}`);
      return undefined;
    });
    m.hook("iq-get/self/urn:example:t:now", (d) => {
      expectTypeOf(d).toEqualTypeOf<StanzaEvent>();
      expectTypeOf(d.stanza).toEqualTypeOf<Element>();
      return undefined;
    });
    m.hook("my-own-event", (d: { n: number }) => seen.push(`own ${d.n}`)); // undeclared: whatever the firer says
  });
  const t = createTestServer({ config: { modules_enabled: ["mam"], archive_expires_after: "never" }, modules: [watcher] });
  const a = t.connect("alice@localhost/a");
  await a.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
  t.host().events.fire("my-own-event", { n: 7 });
  expect(seen).toEqual(["bind alice@localhost/a", "archived alice outgoing", "archived bob incoming", "own 7"]);
  await t.stop();
});
