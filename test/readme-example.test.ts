import { defineModule, iqResult, xml, type StanzaEvent } from "mamkit";
import { createTestServer } from "mamkit/testing";
import { afterEach, expect, it } from "vitest";

// A module that counts the chat messages each user sends and answers
// <count xmlns="urn:example:count"/> with the number. A daily task resets it.
const counter = defineModule("counter", (module) => {
  const counts = module.openStore("message_counts", "map");

  module.hook("pre-message/bare", async ({ origin, stanza }: StanzaEvent) => {
    if (origin && stanza.attrs.type === "chat") {
      const user = origin.jid!.local!;
      const sent = ((await counts.get(user, "sent")) as number) ?? 0;
      await counts.set(user, "sent", sent + 1);
    }
    return undefined; // let the message go on
  });

  module.hook("iq-get/self/urn:example:count:count", async ({ origin, stanza }: StanzaEvent) => {
    const sent = ((await counts.get(origin!.jid!.local!, "sent")) as number) ?? 0;
    origin!.send(iqResult(stanza, xml("count", { xmlns: "urn:example:count", sent: String(sent) })));
    return true;
  });

  module.daily("reset message counts", async () => {
    for (const user of await counts.users()) await counts.set(user, "sent", undefined);
  });
});

const server = createTestServer({ modules: [counter] });
afterEach(() => server.stop());

it("counts chat messages and resets them daily", async () => {
  const alice = server.connect("alice@localhost/phone");
  const bob = server.connect("bob@localhost/laptop");

  // send() resolves once the server handled the stanza and what it stored is durable
  await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
  await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "there")));
  expect(bob.take().map((m) => m.getChildText("body"))).toEqual(["hi", "there"]);

  const ask = () => alice.request(xml("iq", { type: "get" }, xml("count", { xmlns: "urn:example:count" })));
  expect((await ask()).getChild("count")!.attrs.sent).toBe("2");

  await server.runScheduled("reset message counts");
  expect((await ask()).getChild("count")!.attrs.sent).toBe("0");
});
