// The test kit without traps: a stopped server says so, one clock drives
// timers, tasks and now(), task names are checked, declared defaults apply,
// stores and events are typed.
import { defineModule, HostError, type StanzaEvent } from "mamkit";
import { createTestServer, type TestServer, xml } from "mamkit/testing";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe("a stopped test server", () => {
  it("refuses connect(), send(), request(), runScheduled() and fire() with a clear error", async () => {
    t = createTestServer({ config: { modules_enabled: ["ping"] } });
    const alice = t.connect("alice@localhost/a");
    await t.stop();
    const thrown = (() => {
      try {
        t.connect("bob@localhost/b");
      } catch (err) {
        return err as HostError;
      }
    })();
    expect(thrown).toBeInstanceOf(HostError);
    expect(thrown?.code).toBe("MAMKIT_ERR_STOPPED");
    expect(thrown?.message).toBe(
      'connect("bob@localhost/b"): this test server is stopped (create one per test, e.g. in beforeEach, and stop it in afterEach)',
    );
    await expect(alice.send(xml("presence"))).rejects.toThrow(/this test server is stopped/);
    await expect(alice.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })))).rejects.toThrow(
      /this test server is stopped/,
    );
    await expect(t.runScheduled()).rejects.toThrow(/this test server is stopped/);
    await expect(t.fire("user-exists", { username: "alice" })).rejects.toThrow(/this test server is stopped/);
  });
});

describe("one clock", () => {
  it("module timers fire as the manual clock advances, each at its own time, in milliseconds", async () => {
    const fired: number[] = [];
    const once: number[] = [];
    const mod = defineModule("ticker", (m) => {
      m.addTimerMs(1000, () => {
        fired.push(m.clock.now());
        return 1000; // again a second later
      });
      const cancelled = m.addTimerMs(1500, () => void once.push(1));
      m.addTimerMs(2500, () => {
        once.push(m.clock.now());
      });
      cancelled.cancel();
    });
    t = createTestServer({ modules: [mod] });
    const start = t.clock.now();
    await t.clock.advance(5000);
    expect(fired).toEqual([1000, 2000, 3000, 4000, 5000].map((d) => start + d));
    expect(once).toEqual([start + 2500]);
    expect(t.clock.now()).toBe(start + 5000);
    await t.clock.advance(999);
    expect(fired).toHaveLength(5);
  });

  it("scheduled tasks run as the clock passes their time, seeing that time", async () => {
    const runs: number[] = [];
    const mod = defineModule("nightly", (m) => {
      m.cron("every hour", "0 0 * * * *", async () => {
        await Promise.resolve();
        runs.push(m.clock.now());
      });
    });
    t = createTestServer({ modules: [mod] });
    const start = t.clock.now(); // 2026-01-01T00:00:00Z, on the hour
    await t.clock.advance(3 * 3600_000 + 1);
    expect(runs).toEqual([1, 2, 3].map((h) => start + h * 3600_000));
    expect(t.scheduledTasks).toEqual([{ name: "every hour", module: "nightly", expression: "0 0 * * * *" }]);
  });

  it("smart retention's daily cleanup runs as the clock passes a day", async () => {
    t = createTestServer({ config: { modules_enabled: ["mam", "smacks", "mam_smart_retention"] } });
    const before = t.logs.length;
    await t.clock.advance(86_400_000);
    expect(t.logs.slice(before).some((l) => l.task === "smart retention cleanup" && l.msg === "scheduled task done")).toBe(true);
  });
});

describe("runScheduled", () => {
  it("with an unknown name throws and lists the tasks there are", async () => {
    t = createTestServer({ config: { modules_enabled: ["mam", "smacks", "mam_smart_retention"] } });
    await expect(t.runScheduled("smart retention")).rejects.toThrow(
      'no scheduled task is named "smart retention"; the tasks are: archive expiry (mam), smart retention cleanup (mam_smart_retention)',
    );
    expect(await t.runScheduled("smart retention cleanup")).toBe(1);
  });
});

describe("declared options", () => {
  it("the getters fall back to the declared default and range", () => {
    const read: Record<string, unknown> = {};
    const mod = defineModule(
      "opts",
      (m) => {
        read.limit = m.getOptionNumber("opts_limit");
        read.name = m.getOptionString("opts_name");
        read.on = m.getOptionBoolean("opts_on");
        read.every = m.getOptionPeriod("opts_every");
        read.given = m.getOptionNumber("opts_limit", 7); // a default given at the read wins
        read.typed = m.options.opts_limit;
      },
      {
        options: {
          opts_limit: { type: "number", default: 10, min: 1, max: 20, integer: true },
          opts_name: { type: "string", default: "x" },
          opts_on: { type: "boolean", default: true },
          opts_every: { type: "period", default: "1h" },
        },
      },
    );
    t = createTestServer({ modules: [mod] });
    expect(read).toEqual({ limit: 10, name: "x", on: true, every: 3600, given: 7, typed: 10 });
  });

  it("a configured value is checked against the declared range", () => {
    const mod = defineModule("ranged", (m) => void m.getOptionNumber("ranged_limit"), {
      options: { ranged_limit: { type: "number", default: 10, max: 20 } },
    });
    expect(() => createTestServer({ modules: [mod], config: { ranged_limit: 50 } })).toThrow(/ranged_limit \(module ranged\): expected a number .*20, got 50/);
  });
});

describe("types", () => {
  it("stores are typed by the caller and events by the event map", async () => {
    interface Seen {
      at: number;
      where: string;
    }
    let stored: Seen | undefined;
    const mod = defineModule("typed", (m) => {
      const seen = m.openStore<"map", Seen>("seen", "map");
      const table = m.openStore<"keyval", { visits: number }>("visits", "keyval");
      m.hook("resource-bind", async ({ session }) => {
        expectTypeOf(session.jid).not.toBeAny();
        await seen.set(session.jid!.local, "last", { at: m.clock.now(), where: session.jid!.resource! });
        await table.set(session.jid!.local, { visits: ((await table.get(session.jid!.local))?.visits ?? 0) + 1 });
        stored = await seen.get(session.jid!.local, "last");
        return undefined;
      });
      expectTypeOf(seen.get).returns.resolves.toEqualTypeOf<Seen | undefined>();
      expectTypeOf(table.get).returns.resolves.toEqualTypeOf<{ visits: number } | undefined>();
    });
    t = createTestServer({ modules: [mod] });
    await t.connect("alice@localhost/phone").send(xml("presence"));
    expect(stored).toEqual({ at: t.clock.now(), where: "phone" });
    // fire() takes the payload the event map declares for the name
    expectTypeOf(t.fire<"user-exists">).parameter(1).toEqualTypeOf<{ username: string }>();
    expect(await t.fire("user-exists", { username: "alice" })).toBeUndefined();
    const ev: StanzaEvent | undefined = undefined;
    void ev;
  });
});
