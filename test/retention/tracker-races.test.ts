// Regression tests from the independent review of the asynchronous storage change.
import { describe, expect, it } from "vitest";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import type { MapStore } from "../../src/storage/types.js";
import { Tracker } from "../../src/retention/tracking.js";
import { decide } from "../../src/retention/policy.js";
import { xml } from "../../src/xmpp/stanza.js";

const msg = () => ({ stanza: xml("message", {}, xml("body", {}, "x")), when: Date.now(), with: "bob@h" });
const ticks = async (n = 20) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe("Tracker", () => {
  it("an update while a flush's write is not applied yet re-creates the client, first seen later, and overwrites the stored record", async () => {
    const d = new MemoryDriver();
    const archive = d.archive("h", "archive");
    for (let i = 0; i < 3; i++) await archive.append("u", msg()); // positions 1..3
    const real = d.map("h", "mam_smart_retention");
    // the store as the contract allows it: a write's promise resolves once applied, which may
    // take a while (here: queued one turn, as GroupCommit.write queues behind a transaction)
    const store: MapStore = {
      get: (u, k) => real.get(u, k),
      set: (u, k, v) => real.set(u, k, v),
      getAll: (u) => real.getAll(u),
      users: () => real.users(),
      setKeys: async (u, data) => {
        await new Promise<void>((r) => setImmediate(r));
        return real.setKeys(u, data);
      },
    };
    const tracker = new Tracker(store, d, () => {}, async (u) => (await archive.summary(u)).last?.pos ?? 0);

    await tracker.seen("u", "c1", 1000); // new client: first seen at 3, written at once
    await tracker.seen("u", "c2", 1000);
    await ticks(); // the flush took the buffer; its write is under way
    await archive.append("u", msg()); // position 4: c1 never gets it
    await tracker.seen("u", "c1", 2000); // c1 seen again (resumption, a cleanup's "connected now"...)
    await tracker.delivered("u", "c2", 4, 4, 2000); // c2 acknowledges 4
    await tracker.flush();
    await new Promise((r) => setTimeout(r, 20));
    await tracker.flush();

    const records = await tracker.load("u");
    expect(records.get("c1")!.firstSeen).toBe(3);
    // consequence under "all": 4 is deletable although c1 never acknowledged it
    expect(decide(records, "all", 2000, 1e12).deletable.has(4)).toBe(false);
  });
});
