// Smart retention end to end: @xmpp/client with a SASL2 user-agent id and
// stream management, against the real server.
import { afterEach, describe, expect, it } from "vitest";
import { xml, type Element } from "@xmpp/xml";
import type { CleanupReport } from "mamkit";
import { mamBodies, newClient, type Running, startServer, waitFor } from "./helpers.js";

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
process.removeAllListeners("warning");

const A = "0f1e2d3c-4b5a-4697-8877-665544332211";
const B = "a1b2c3d4-e5f6-4071-8293-a4b5c6d7e8f9";
let run: Running | undefined;
afterEach(async () => {
  await run?.stop();
  run = undefined;
});

function fromCarol(r: Running, body: string) {
  const host = r.server.host("localhost");
  host.server.routeFromHost(host, xml("message", { from: "carol@localhost", to: "bob@localhost", type: "chat" }, xml("body", {}, body)));
}
const archived = async (r: Running) =>
  (await r.server.host("localhost").openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"));
const cleanup = async (r: Running) => (await r.server.host("localhost").events.fire("smart-retention-run", {})) as CleanupReport;


describe("smart retention with @xmpp/client", () => {
  it("one: a client catches up through MAM and acks; the next cleanup removes what it acked", async () => {
    run = await startServer({ modules_enabled: ["saslauth", "sasl2", "bind2", "smacks", "mam", "mam_smart_retention"] });
    for (const b of ["m1", "m2", "m3"]) fromCarol(run, b);
    const bob = newClient(run.tcp, "bob", "localhost", { userAgent: xml("user-agent", { id: A }) });
    await bob.start();
    expect(await mamBodies(bob)).toEqual(["m1", "m2", "m3"]);
    // the server asks for an ack after the burst; the client answers on its own
    const r = run;
    let report: CleanupReport | undefined;
    const start = Date.now();
    while ((await archived(r)).length > 0 && Date.now() - start < 5000) {
      await new Promise((res) => setTimeout(res, 100));
      report = await cleanup(r);
    }
    expect(await archived(r)).toEqual([]);
    expect(report?.deleted).toBe(3);
    await bob.stop();
  });

  it("all: a second client keeps a message alive until it too has acked", async () => {
    run = await startServer({
      modules_enabled: ["saslauth", "sasl2", "bind2", "smacks", "mam", "mam_smart_retention"],
      smart_retention_strategy: "all",
    });
    const phone = newClient(run.tcp, "bob", "localhost", { userAgent: xml("user-agent", { id: A }), resource: "phone" });
    const laptop = newClient(run.ws, "bob", "localhost", { userAgent: xml("user-agent", { id: B }), resource: "laptop" });
    const phoneGot: string[] = [];
    phone.on("stanza", (s: Element) => {
      if (s.name === "message" && s.getChild("body")) phoneGot.push(s.getChildText("body")!);
    });
    await phone.start();
    await laptop.start(); // seen, but not available: it gets no live message
    await phone.send(xml("presence"));
    const host = run.server.host("localhost");
    await waitFor(() => [...(host.sessionsOf("bob")?.values() ?? [])].some((s) => s.available));
    fromCarol(run, "hello");
    await waitFor(() => phoneGot.length === 1);
    await new Promise((res) => setTimeout(res, 500)); // the phone's ack
    await cleanup(run);
    expect(await archived(run)).toEqual(["hello"]); // the laptop has not got it
    expect(await mamBodies(laptop)).toEqual(["hello"]);
    const start = Date.now();
    while ((await archived(run)).length > 0 && Date.now() - start < 5000) {
      await new Promise((res) => setTimeout(res, 100));
      await cleanup(run);
    }
    expect(await archived(run)).toEqual([]);
    await phone.stop();
    await laptop.stop();
  });
});
