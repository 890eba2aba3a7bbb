// Sessions smart retention cannot track are remembered (for the CLI's dry
// run), with the reason, buffered, the newest few per user; tracked sessions
// are not; and the dry run's explanation counts what the dry run counts.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CleanupReport } from "../../src/retention/index.js";
import { KEEP } from "../../src/retention/untracked.js";
import { RowKeyValueStore } from "../../src/storage/rows.js";
import { createTestServer, type TestServer, xml } from "../../src/testing/index.js";

const PHONE = "11111111-1111-4111-8111-111111111111";
const DESK = "33333333-3333-4333-8333-333333333333";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

function setup() {
  t = createTestServer({ config: { modules_enabled: ["mam_smart_retention"] } });
  return t;
}
const stored = async (user: string) =>
  ((await t!.host().openStore("mam_smart_retention_untracked", "keyval").get(user)) as { sessions?: { resource: string; reason: string }[] } | undefined)
    ?.sessions ?? [];

describe("untracked sessions", () => {
  it("records each with its reason, once, not the tracked ones, in one write per user", async () => {
    const t = setup();
    const set = vi.spyOn(RowKeyValueStore.prototype, "set");
    t.connect("bob@localhost/legacy", { streamManagement: true });
    t.connect("bob@localhost/odd", { clientId: "phone-1", streamManagement: true });
    const desk = t.connect("bob@localhost/desk", { clientId: DESK, streamManagement: false });
    const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await t.settle();
    expect(await stored("bob")).toEqual([]); // buffered
    desk.close();
    phone.close();
    await t.settle();
    await new Promise((r) => setTimeout(r, 1100));
    expect((await stored("bob")).map((s) => `${s.resource} ${s.reason}`)).toEqual([
      "legacy no-client-id",
      "odd bad-client-id",
      "desk no-stream-management",
    ]);
    expect(set.mock.calls.filter(([user]) => user === "bob")).toHaveLength(1);
    set.mockRestore();
  });

  it("keeps the newest few, and forgets them with the account", async () => {
    const t = setup();
    for (let i = 0; i < KEEP + 3; i++) {
      t.connect(`bob@localhost/r${i}`).close();
      await t.clock.advance(1000);
    }
    await t.settle();
    let report = (await t.host().events.fire("smart-retention-run", { dryRun: true, explain: true })) as CleanupReport;
    // a user known only for untracked sessions is explained too (buffered ones included)
    expect(report.users.map((u) => u.explanation?.untracked.map((s) => s.resource))).toEqual([[3, 4, 5, 6, 7].map((i) => `r${i}`)]);
    await t.host().deleteUser("bob");
    await new Promise((r) => setTimeout(r, 1100));
    expect(await stored("bob")).toEqual([]);
    report = (await t.host().events.fire("smart-retention-run", { dryRun: true, explain: true })) as CleanupReport;
    expect(report.users).toEqual([]);
  });

  it("the explanation counts what the dry run would delete, and changes nothing", async () => {
    const t = setup();
    const carol = t.connect("carol@localhost/x");
    const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
    await t.settle();
    for (let i = 0; i < 5; i++) await carol.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, `m${i}`)));
    await t.settle();
    await phone.ack();
    await t.settle();
    const archive = t.host().openStore("archive", "archive");
    const before = (await archive.find("bob")).items.length;
    const report = (await t.host().events.fire("smart-retention-run", { dryRun: true, explain: true, user: "bob" })) as CleanupReport;
    const u = report.users[0]!;
    expect(u.explanation!.messages).toBe(before);
    expect(u.explanation!.deletable).toBe(u.deleted);
    expect(u.explanation!.runs.reduce((n, r) => n + r.count, 0)).toBe(before);
    expect((await archive.find("bob")).items.length).toBe(before);
  });
});
