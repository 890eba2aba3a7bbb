import { describe, expect, it } from "vitest";
import { H_MOD, SmQueue } from "../../src/smacks/queue.js";
import { xml } from "../../src/xmpp/stanza.js";

const s = (n: number) => xml("message", { id: String(n) });

describe("SmQueue", () => {
  it("trims acknowledged stanzas and keeps the rest in order", () => {
    const q = new SmQueue();
    for (let i = 1; i <= 5; i++) q.push(s(i));
    expect(q.ack(2)).toEqual({ kind: "acked", count: 2 });
    expect(q.pending().map((x) => x.attrs.id)).toEqual(["3", "4", "5"]);
    expect(q.ack(2)).toEqual({ kind: "none" });
    expect(q.ack(5)).toEqual({ kind: "acked", count: 3 });
    expect(q.unacked).toBe(0);
  });

  it("ignores h going backwards and refuses h above what was sent", () => {
    const q = new SmQueue();
    for (let i = 1; i <= 5; i++) q.push(s(i));
    q.ack(4);
    expect(q.ack(3)).toEqual({ kind: "backwards" });
    expect(q.acked).toBe(4);
    expect(q.ack(9)).toEqual({ kind: "too-high", h: 9, sent: 5 });
    expect(q.acked).toBe(4);
  });

  it("takes h = 2^32-1 right after enabling as too high, not as a step back (XEP-0198 §6)", () => {
    const q = new SmQueue();
    expect(q.ack(H_MOD - 1)).toEqual({ kind: "too-high", h: H_MOD - 1, sent: 0 });
    q.push(s(1));
    q.push(s(2));
    q.ack(1);
    expect(q.ack(0)).toEqual({ kind: "backwards" }); // a count it was really at
    expect(q.ack(H_MOD - 1)).toEqual({ kind: "too-high", h: H_MOD - 1, sent: 2 }); // one it never was at
    expect(q.acked).toBe(1);
  });

  it("counts modulo 2^32", () => {
    const q = new SmQueue();
    q.sent = q.acked = H_MOD - 2; // as after four billion stanzas
    for (let i = 0; i < 4; i++) q.push(s(i));
    expect(q.ack(1)).toEqual({ kind: "acked", count: 3 }); // wrapped: 2^32-2 → 1
    expect(q.ack(H_MOD - 1)).toEqual({ kind: "backwards" });
    expect(q.ack(2)).toEqual({ kind: "acked", count: 1 });
    expect(q.ack(3)).toEqual({ kind: "too-high", h: 3, sent: 2 });
  });

  it("runs a checkpoint once, when an ack covers everything queued before it", () => {
    const q = new SmQueue();
    const fired: string[] = [];
    q.push(s(1));
    q.addCheckpoint(() => fired.push("after 1"));
    q.push(s(2));
    q.push(s(3));
    q.addCheckpoint(() => fired.push("after 3"));
    q.ack(0);
    expect(fired).toEqual([]);
    q.ack(1);
    expect(fired).toEqual(["after 1"]);
    q.ack(2);
    expect(fired).toEqual(["after 1"]);
    q.ack(3);
    q.ack(3);
    expect(fired).toEqual(["after 1", "after 3"]);
  });

  it("runs a checkpoint at once when nothing is pending", () => {
    const q = new SmQueue();
    let n = 0;
    q.addCheckpoint(() => n++);
    expect(n).toBe(1);
  });

  it("drops checkpoints on discard, returning the unacknowledged stanzas", () => {
    const q = new SmQueue();
    let n = 0;
    q.push(s(1));
    q.push(s(2));
    q.addCheckpoint(() => n++);
    expect(q.discard().map((x) => x.attrs.id)).toEqual(["1", "2"]);
    q.ack(2);
    expect(n).toBe(0);
  });

  it("reports a throwing checkpoint and goes on with the next", () => {
    const errors: unknown[] = [];
    const q = new SmQueue((e) => errors.push(e));
    let ran = false;
    q.push(s(1));
    q.addCheckpoint(() => {
      throw new Error("bad");
    });
    q.addCheckpoint(() => {
      ran = true;
    });
    q.ack(1);
    expect(errors).toHaveLength(1);
    expect(ran).toBe(true);
  });
});
