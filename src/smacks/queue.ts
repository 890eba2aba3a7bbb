// The XEP-0198 outgoing queue with delivery checkpoints. Pure bookkeeping:
// counters are kept unwrapped (a JS number counts far past 2^32) and
// compared with the client's `h` modulo 2^32.
import type { Element } from "@xmpp/xml";

export const H_MOD = 2 ** 32;

export type AckResult =
  | { kind: "none" } // nothing new acknowledged
  | { kind: "acked"; count: number } // `count` more stanzas acknowledged
  | { kind: "backwards" } // h went back: ignored (XEP-0198 leaves it to us)
  | { kind: "too-high"; h: number; sent: number }; // more acknowledged than ever sent

interface Checkpoint {
  at: number;
  fn: () => void;
}

export class SmQueue {
  /** Stanzas sent to the client, ever (unwrapped). */
  sent = 0;
  /** Stanzas the client acknowledged (unwrapped). */
  acked = 0;
  /** Stanzas received from the client (unwrapped); reported to it as `h`. */
  received = 0;
  private items: Element[] = [];
  private checkpoints: Checkpoint[] = [];

  constructor(private readonly onCheckpointError: (err: unknown) => void = () => {}) {}

  get unacked(): number {
    return this.sent - this.acked;
  }

  /** The stanzas not acknowledged yet, oldest first. */
  pending(): readonly Element[] {
    return this.items;
  }

  get checkpointCount(): number {
    return this.checkpoints.length;
  }

  push(stanza: Element): void {
    this.sent++;
    this.items.push(stanza);
  }

  /**
   * `fn` runs exactly once, when an ack covers every stanza queued before this
   * call — at once if that is already so. It never runs if the queue is
   * discarded first (the session ended without being resumed).
   */
  addCheckpoint(fn: () => void): void {
    const at = this.sent;
    if (at <= this.acked) {
      this.run(fn);
      return;
    }
    this.checkpoints.push({ at, fn });
  }

  /** Applies the client's `<a h/>`. */
  ack(h: number): AckResult {
    const delta = (((h - (this.acked % H_MOD)) % H_MOD) + H_MOD) % H_MOD;
    if (delta === 0) return { kind: "none" };
    if (delta > this.unacked) {
      // Not between what was acknowledged and what was sent. It went backwards only if
      // it names a count this queue was really at before (a step back of at most what
      // was ever acknowledged, under half the counter's range); anything else claims
      // more than was sent: right after <enable/>, h = 2^32-1 is too high, not a wrap.
      const back = H_MOD - delta;
      const backwards = back <= this.acked && back < H_MOD / 2;
      return backwards ? { kind: "backwards" } : { kind: "too-high", h, sent: this.sent % H_MOD };
    }
    this.acked += delta;
    this.items.splice(0, delta);
    while (this.checkpoints.length > 0 && this.checkpoints[0]!.at <= this.acked) {
      this.run(this.checkpoints.shift()!.fn);
    }
    return { kind: "acked", count: delta };
  }

  /** Ends the queue: pending checkpoints are dropped; returns the unacknowledged stanzas. */
  discard(): Element[] {
    const items = this.items;
    this.items = [];
    this.checkpoints = [];
    return items;
  }

  private run(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onCheckpointError(err);
    }
  }
}
