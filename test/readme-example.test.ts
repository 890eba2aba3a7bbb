import { defineModule, iqResult, xml, type StanzaEvent } from "mamkit";
import { createTestServer, type TestServer } from "mamkit/testing";
import { afterEach, beforeEach, expect, it } from "vitest";

// A module that counts the chat messages each user sends and answers
// <count xmlns="urn:example:count"/> with the number. A daily task resets it.
const counter = defineModule("counter", (module) => {
  const counts = module.openStore<"map", number>("message_counts", "map");

  module.hook("pre-message/bare", async ({ origin, stanza }: StanzaEvent) => {
    if (origin && stanza.attrs.type === "chat") {
      const user = origin.jid!.local!;
      await counts.set(user, "sent", ((await counts.get(user, "sent")) ?? 0) + 1);
    }
    return undefined; // let the message go on
  });

  module.hook("iq-get/self/urn:example:count:count", async ({ origin, stanza }: StanzaEvent) => {
    const sent = (await counts.get(origin!.jid!.local!, "sent")) ?? 0;
    origin!.send(iqResult(stanza, xml("count", { xmlns: "urn:example:count", sent: String(sent) })));
    return true;
  });

  module.daily("reset message counts", async () => {
    for (const user of await counts.users()) await counts.set(user, "sent", undefined);
  });
});

// a fresh server for each test: a stopped one refuses connect()
let server: TestServer;
beforeEach(() => {
  server = createTestServer({ modules: [counter] });
});
afterEach(() => server.stop());

const ask = (client: ReturnType<TestServer["connect"]>) =>
  client.request(xml("iq", { type: "get" }, xml("count", { xmlns: "urn:example:count" })));

it("counts chat messages", async () => {
  const alice = server.connect("alice@localhost/phone");
  const bob = server.connect("bob@localhost/laptop");

  // send() resolves once the server handled the stanza and what it stored is durable
  await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
  await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "there")));
  expect(bob.take().map((m) => m.getChildText("body"))).toEqual(["hi", "there"]);
  expect((await ask(alice)).getChild("count")!.attrs.sent).toBe("2");
});

it("resets the counts daily", async () => {
  const alice = server.connect("alice@localhost/phone");
  await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
  expect((await ask(alice)).getChild("count")!.attrs.sent).toBe("1");

  // the manual clock drives timers and scheduled tasks: a day later, the task has run
  await server.clock.advance(24 * 60 * 60 * 1000);
  expect((await ask(alice)).getChild("count")!.attrs.sent).toBe("0");
  // or run a task by its name, now
  expect(await server.runScheduled("reset message counts")).toBe(1);
});
