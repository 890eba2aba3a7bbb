// Host and module loader, module API (options, stores, disco, tasks, timers, filters, unload).
import { afterEach, describe, expect, it, vi } from "vitest";
import { defineModule, type ModuleApi } from "../../src/core/module.js";
import { createServer } from "../../src/server.js";
import { ConfigError, HostError } from "../../src/core/errors.js";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { xml } from "../../src/xmpp/stanza.js";
import { captureLog } from "../helpers/log.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
  vi.useRealTimers();
});

/** A module that records its loading order into `log`. */
function recorder(name: string, log: string[], extra: Partial<{ deps: string[]; inside: (m: ModuleApi) => void }> = {}) {
  return defineModule(
    name,
    (m) => {
      extra.inside?.(m);
      log.push(`${name}@${m.host}`);
    },
    extra.deps ? { dependencies: extra.deps } : {},
  );
}

describe("module loader", () => {
  it("loads global modules_enabled plus a host's, minus modules_disabled (Prosody's rule)", async () => {
    const log: string[] = [];
    const mods = ["a", "b", "c", "d"].map((n) => recorder(n, log));
    const server2 = createServer({
      config: {
        storage: "memory",
        modules_enabled: ["a", "b"],
        modules_disabled: ["b"],
        authentication: "none",
        hosts: { "one.example": { modules_enabled: ["c"] }, "two.example": { modules_disabled: ["a"], authentication: "internal_hashed" } },
      },
      modules: mods,
      logger: captureLog().logger,
    });
    expect([...server2.host("one.example").modules.keys()]).toEqual(["a", "c", "d"]);
    expect([...server2.host("two.example").modules.keys()]).toEqual(["auth_internal_hashed", "c", "d"]);
    await server2.stop();
  });

  it("refuses an unknown module name at start-up, listing the known ones", () => {
    try {
      createServer({ config: { storage: "memory", modules_enabled: ["nosuch"], hosts: { x: {} } }, logger: captureLog().logger });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(HostError);
      expect((e as HostError).code).toBe("MAMKIT_ERR_MODULE_UNKNOWN");
      expect((e as Error).message).toMatch(/unknown module "nosuch"; known modules: .*disco.*ping/);
    }
  });

  it("loads dependencies first, once, from dependsOn and from the definition", () => {
    const log: string[] = [];
    const base = recorder("base", log);
    const mid = recorder("mid", log, { deps: ["base"] });
    const top = recorder("top", log, { inside: (m) => m.dependsOn("mid") });
    t = createTestServer({ config: { modules_enabled: ["top", "base"] }, modules: [base, mid, top] });
    expect(log).toEqual(["base@localhost", "mid@localhost", "top@localhost"]);
  });

  it("reports a dependency cycle", () => {
    const a = defineModule("a", (m) => m.dependsOn("b"));
    const b = defineModule("b", (m) => m.dependsOn("a"));
    expect(() => createTestServer({ modules: [a, b] })).toThrow(/circle: a → b → a/);
  });

  it("turns a module that throws while loading into a start-up error naming it", () => {
    const bad = defineModule("bad", () => {
      throw new Error("cannot start");
    });
    try {
      createTestServer({ modules: [bad] });
      expect.unreachable();
    } catch (e) {
      expect((e as HostError).code).toBe("MAMKIT_ERR_MODULE_LOAD");
      expect((e as Error).message).toBe("module bad failed to load on localhost: cannot start");
    }
  });

  it("refuses two different modules with one name", () => {
    const a1 = defineModule("dup", () => {});
    const a2 = defineModule("dup", () => {});
    expect(() => createTestServer({ modules: [a1, a2] })).toThrow(/two different modules are named "dup"/);
  });

  it("unloading removes hooks, timers, tasks, features, identities and filters", async () => {
    let timerRuns = 0;
    let taskRuns = 0;
    let filtered = 0;
    const mod = defineModule("gadget", (m) => {
      m.hook("message/bare", () => undefined, 5);
      m.addFeature("urn:example:gadget");
      m.addIdentity("gadget", "thing", "Gadget");
      m.addTimerMs(1000, () => {
        timerRuns++;
        return 1000;
      });
      m.daily("gadget task", () => {
        taskRuns++;
      });
      m.addSessionFilter("stanzas/out", (s) => {
        filtered++;
        return s;
      });
    });
    t = createTestServer({ config: { modules_enabled: ["disco"] }, modules: [mod] });
    const host = t.host();
    const alice = t.connect("alice@localhost/a");
    await t.clock.advance(2500);
    expect(timerRuns).toBe(2);
    expect(host.events.count("message/bare")).toBe(2);
    expect(host.disco.features).toContain("urn:example:gadget");
    expect(host.disco.identities.some((i) => i.category === "gadget")).toBe(true);
    expect(await t.runScheduled("gadget task")).toBe(1);
    expect(taskRuns).toBe(1);
    await alice.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    expect(filtered).toBe(1);

    expect(host.unloadModule("gadget")).toBe(true);
    await t.clock.advance(5000);
    expect(timerRuns).toBe(2);
    expect(host.events.count("message/bare")).toBe(1); // only the core delivery handler is left
    expect(host.disco.features).not.toContain("urn:example:gadget");
    expect(host.disco.identities.some((i) => i.category === "gadget")).toBe(false);
    await expect(t.runScheduled("gadget task")).rejects.toThrow('no scheduled task is named "gadget task"');
    await alice.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    expect(filtered).toBe(1);
    expect(host.isLoaded("gadget")).toBe(false);
  });

  it("unloads the modules that depend on a module being unloaded", () => {
    const unloaded: string[] = [];
    const base = defineModule("base", (m) =>
      m.onUnload(() => {
        unloaded.push("base");
      }),
    );
    const user = defineModule("user", (m) => {
      m.dependsOn("base");
      return () => unloaded.push("user");
    });
    t = createTestServer({ modules: [base, user] });
    t.host().unloadModule("base");
    expect(unloaded).toEqual(["user", "base"]);
    expect(t.host().modules.size).toBe(0);
  });

  it("loads a module object at run time", () => {
    t = createTestServer();
    let loaded = 0;
    const m = defineModule("late", () => {
      loaded++;
    });
    t.host().loadModule(m);
    t.host().loadModule(m);
    expect(loaded).toBe(1);
  });
});

describe("module options", () => {
  function probe(fn: (m: ModuleApi) => void) {
    return defineModule("probe", fn, {
      options: { probe_number: { type: "number", min: 1, integer: true }, probe_mode: { type: "enum", values: ["one", "all"] } },
    });
  }

  it("reads host → global → default", () => {
    const seen: Record<string, unknown> = {};
    const mod = probe((m) => {
      seen[`${m.host}:n`] = m.getOptionNumber("probe_number", 7);
      seen[`${m.host}:s`] = m.getOptionString("probe_string", "dflt");
      seen[`${m.host}:p`] = m.getOptionPeriod("probe_period", "1d");
      seen[`${m.host}:l`] = m.getOptionList("probe_list", ["x"]);
      seen[`${m.host}:b`] = m.getOptionBoolean("probe_bool", false);
      seen[`${m.host}:e`] = m.getOptionEnum("probe_mode", ["one", "all"], "one");
    });
    t = createTestServer({
      config: {
        probe_number: 3,
        probe_period: "2w",
        probe_bool: true,
        hosts: { "a.example": { probe_number: 5, probe_string: "host", probe_list: ["y", "z"], probe_mode: "all" }, "b.example": {} },
      },
      modules: [mod],
    });
    expect(seen).toEqual({
      "a.example:n": 5,
      "a.example:s": "host",
      "a.example:p": 1209600,
      "a.example:l": ["y", "z"],
      "a.example:b": true,
      "a.example:e": "all",
      "b.example:n": 3,
      "b.example:s": "dflt",
      "b.example:p": 1209600,
      "b.example:l": ["x"],
      "b.example:b": true,
      "b.example:e": "one",
    });
  });

  it("checks declared options at start-up, naming key path, module and expectation", () => {
    const mod = probe(() => {});
    expect(() => createTestServer({ config: { probe_number: 0 }, modules: [mod] })).toThrow(
      "config: probe_number (module probe): expected a whole number of at least 1, got 0",
    );
    expect(() => createTestServer({ config: { hosts: { "a.example": { probe_mode: "some" } } }, modules: [mod] })).toThrow(
      'config: hosts["a.example"].probe_mode (module probe): expected one of "one", "all", got "some"',
    );
  });

  it("checks undeclared options when a getter reads them", () => {
    const mod = defineModule("reader", (m) => {
      m.getOptionPeriod("reader_period", "1d");
    });
    try {
      createTestServer({ config: { reader_period: "fortnightly" }, modules: [mod] });
      expect.unreachable();
    } catch (e) {
      const err = e as ConfigError;
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.keyPath).toBe("reader_period");
      expect(err.moduleName).toBe("reader");
      expect(err.message).toMatch(/expected a period/);
    }
  });

  it("warns about keys no known module reads", () => {
    t = createTestServer({ config: { no_such_option: 1, hosts: { localhost: { other_unknown: true } } } });
    const warns = t.logs.filter((l) => l.level === 40 && l.msg?.startsWith("unknown config key")).map((l) => l.key);
    expect(warns).toEqual(["no_such_option", 'hosts["localhost"].other_unknown']);
  });
});

describe("module API", () => {
  it("opens keyval, map and archive stores scoped to the host", async () => {
    let api!: ModuleApi;
    const mod = defineModule("stores", (m) => {
      api = m;
    });
    const storage = new MemoryDriver();
    t = createTestServer({ config: { hosts: { "a.example": {}, "b.example": {} } }, modules: [mod], storage });
    await api.openStore("notes", "keyval").set("u", { x: 1 });
    await api.openStore("notes", "map").set("u", "y", 2);
    await api.openStore("archive", "archive").append("u", { stanza: xml("message"), when: 0, with: "v@x" });
    expect(await storage.keyval(api.host, "notes").get("u")).toEqual({ x: 1, y: 2 });
    expect((await storage.archive(api.host, "archive").summary("u")).count).toBe(1);
    expect(() => api.openStore("x", "bogus" as never)).toThrow(/unknown store kind/);
  });

  it("fires events on its host and gets what the first handler returned", () => {
    let api!: ModuleApi;
    t = createTestServer({
      modules: [
        defineModule("firer", (m) => {
          api = m;
          m.hook("custom-event", (d: { n: number }) => d.n + 1);
        }),
      ],
    });
    expect(api.fire("custom-event", { n: 1 })).toBe(2);
    expect(api.fire("nobody-listens")).toBeUndefined();
  });

  it("never runs a scheduled task twice at once; a cron tick during a run is skipped", async () => {
    let running = 0;
    let maxRunning = 0;
    let release!: () => void;
    const mod = defineModule("slow", (m) => {
      m.cron("slow task", "*/5 * * * * *", async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((r) => {
          release = r;
        });
        running--;
      });
    });
    t = createTestServer({ modules: [mod] });
    const first = t.runScheduled("slow task");
    const second = t.runScheduled("slow task");
    await Promise.resolve();
    expect(running).toBe(1);
    release();
    await Promise.all([first, second]);
    expect(maxRunning).toBe(1);
    const job = t.server.scheduler.list()[0]!;
    expect(job.runs).toBe(1);
  });

  it("logs a failing task and keeps the server going", async () => {
    t = createTestServer({
      modules: [
        defineModule("failing", (m) =>
          m.daily("explode", () => {
            throw new Error("task broke");
          }),
        ),
      ],
    });
    await t.runScheduled("explode");
    expect(t.logs.some((l) => l.level === 50 && l.task === "explode" && (l.err as Error).message === "task broke")).toBe(true);
    expect(await t.runScheduled("explode")).toBe(1);
  });

  it("rejects an invalid cron expression naming the module and task", () => {
    const mod = defineModule("badcron", (m) => m.cron("nightly", "every night", () => {}));
    expect(() => createTestServer({ modules: [mod] })).toThrow(/module badcron: task "nightly": expected a node-cron expression/);
  });

  it("gives each module a child logger carrying its name and host", () => {
    t = createTestServer({ modules: [defineModule("talker", (m) => m.log.info({ n: 1 }, "hello"))] });
    expect(t.logs.find((l) => l.msg === "hello")).toMatchObject({ mod: "talker", host: "localhost", n: 1 });
  });

  it("sends stanzas from the server", async () => {
    let api!: ModuleApi;
    t = createTestServer({ modules: [defineModule("sender", (m) => {
      api = m;
    })] });
    const bob = t.connect("bob@localhost/pc");
    await t.settle();
    api.send(xml("message", { to: "bob@localhost/pc", type: "headline" }, xml("body", {}, "notice")));
    const got = bob.take();
    expect(got.map(String)).toEqual(['<message to="bob@localhost/pc" type="headline" from="localhost"><body>notice</body></message>']);
  });

  it("adds per-session filters in both directions; null drops, a returned stanza replaces", async () => {
    const mod = defineModule("filters", (m) => {
      m.hook("resource-bind", ({ session }: { session: import("../../src/core/session.js").Session }) => {
        m.addFilter(session, "stanzas/in", (s) => (s.getChild("body")?.getText() === "drop me" ? null : s));
        m.addFilter(session, "stanzas/out", (s) => {
          const c = xml(s.name, { ...s.attrs }, xml("body", {}, "rewritten"));
          return c;
        }, 1);
      });
    });
    t = createTestServer({ modules: [mod] });
    const a = t.connect("a@localhost/1");
    const b = t.connect("b@localhost/1");
    await t.settle();
    await a.send(xml("message", { to: "b@localhost", type: "chat" }, xml("body", {}, "drop me")));
    expect(b.take()).toEqual([]);
    await a.send(xml("message", { to: "b@localhost", type: "chat" }, xml("body", {}, "keep")));
    expect(b.take().map((s) => s.getChildText("body"))).toEqual(["rewritten"]);
  });
});
