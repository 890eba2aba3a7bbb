// The example module of examples/plugins, in the test kit as docs/modules.md shows it.
import { createTestServer, xml } from "mamkit/testing";
import { expect, it } from "vitest";
import lastSeen from "../../examples/plugins/last_seen.js";

it("answers Last Activity with the seconds since the user's last message, on the kit's clock", async () => {
  const t = createTestServer({ modules: [lastSeen], config: { last_seen_min_interval: 0 } });
  const alice = t.connect("alice@localhost/phone");
  const bob = t.connect("bob@localhost/laptop");
  await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
  await t.clock.advance(90_000);
  const reply = await bob.request(xml("iq", { type: "get", to: "alice@localhost" }, xml("query", { xmlns: "jabber:iq:last" })));
  expect(reply.getChild("query", "jabber:iq:last")!.attrs.seconds).toBe("90");
  const unknown = await bob.request(xml("iq", { type: "get", to: "carol@localhost" }, xml("query", { xmlns: "jabber:iq:last" })));
  expect(unknown.getChild("error")!.getChild("item-not-found")).toBeDefined();
  await t.stop();
});

it("declares its option with a default and a range", () => {
  expect(lastSeen.options?.last_seen_min_interval).toMatchObject({ type: "number", default: 60, min: 0 });
  expect(() => createTestServer({ modules: [lastSeen], config: { last_seen_min_interval: -5 } })).toThrow(
    "config: last_seen_min_interval (module last_seen): expected a whole number of at least 0, got -5",
  );
});
