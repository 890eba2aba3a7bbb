import { describe, expect, it } from "vitest";
import { EventBus, HandlerFailure } from "../../src/core/events.js";
import { captureLog } from "../helpers/log.js";

function bus() {
  const log = captureLog();
  return { bus: new EventBus(log.logger), lines: log.lines };
}

describe("EventBus", () => {
  it("runs handlers by priority, higher first, equal ones in registration order", () => {
    const { bus: b } = bus();
    const order: string[] = [];
    b.on("e", () => void order.push("0a"));
    b.on("e", () => void order.push("10"), 10);
    b.on("e", () => void order.push("-1"), -1);
    b.on("e", () => void order.push("0b"));
    b.on("e", () => void order.push("0.5"), 0.5);
    b.on("e", () => void order.push("10b"), 10);
    expect(b.fire("e")).toBeUndefined();
    expect(order).toEqual(["10", "10b", "0.5", "0a", "0b", "-1"]);
  });

  it("stops at the first handler returning something other than undefined, and returns it", () => {
    for (const value of [true, false, 0, null, "", { x: 1 }]) {
      const { bus: b } = bus();
      let later = false;
      b.on("e", () => value, 1);
      b.on("e", () => {
        later = true;
      });
      expect(b.fire("e")).toBe(value);
      expect(later).toBe(false);
    }
  });

  it("passes the event data to handlers", () => {
    const { bus: b } = bus();
    b.on("e", (d: { n: number }) => d.n * 2);
    expect(b.fire("e", { n: 21 })).toBe(42);
  });

  it("removes handlers", () => {
    const { bus: b } = bus();
    const h = () => "x";
    b.on("e", h);
    expect(b.off("e", h)).toBe(true);
    expect(b.off("e", h)).toBe(false);
    expect(b.fire("e")).toBeUndefined();
    expect(b.has("e")).toBe(false);
  });

  it("lets a handler unhook itself while the event runs without skipping the next one", () => {
    const { bus: b } = bus();
    const seen: string[] = [];
    const first = () => {
      seen.push("first");
      b.off("e", first);
    };
    b.on("e", first);
    b.on("e", () => void seen.push("second"));
    b.fire("e");
    b.fire("e");
    expect(seen).toEqual(["first", "second", "second"]);
  });

  it("logs a throwing handler with the event and module, stops the event and goes on afterwards", () => {
    const { bus: b, lines } = bus();
    let after = 0;
    const thrower = () => {
      throw new Error("boom");
    };
    b.on("e", thrower, 1, "mymod");
    b.on("e", () => {
      after++;
      return true;
    });
    const r = b.fire("e");
    expect(r).toBeInstanceOf(HandlerFailure);
    expect((r as HandlerFailure).owner).toBe("mymod");
    expect(after).toBe(0);
    const err = lines.find((l) => l.level === 50);
    expect(err).toMatchObject({ event: "e", module: "mymod", msg: "error in event handler" });
    expect(err?.err?.message).toBe("boom");
    // the bus goes on working
    b.off("e", thrower);
    expect(b.fire("e")).toBe(true);
    expect(after).toBe(1);
  });

  it("logs a rejected promise of an async handler", async () => {
    const { bus: b, lines } = bus();
    b.on("e", async () => {
      throw new Error("late");
    }, 0, "asyncmod");
    const r = b.fire("e");
    expect(r).toBeInstanceOf(Promise);
    await (r as Promise<unknown>).catch(() => {});
    await new Promise((res) => setImmediate(res));
    expect(lines.some((l) => l.level === 50 && l.module === "asyncmod" && l.err?.message === "late")).toBe(true);
  });

  it("rejects a non-function handler and a non-numeric priority", () => {
    const { bus: b } = bus();
    expect(() => b.on("e", 42 as never)).toThrow(/not a function/);
    expect(() => b.on("e", () => {}, Number.NaN)).toThrow(/priority/);
  });
});
