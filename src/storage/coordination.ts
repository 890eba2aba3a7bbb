// Coordination between the nodes that share one database. With PostgreSQL
// the driver provides it (advisory locks, LISTEN/NOTIFY: see
// postgres/coordination.ts); a storage one process has to itself
// gets this local version: one node, its own lock, its own handlers.
import { randomUUID } from "node:crypto";
import type { Coordination } from "./types.js";


export class LocalCoordination implements Coordination {
  readonly nodeId = `local-${randomUUID()}`;
  readonly shared = false;
  private readonly held = new Map<string, Promise<unknown>>();
  private readonly handlers = new Map<string, Set<() => Promise<void>>>();

  async exclusive<T>(name: string, wait: boolean, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    for (;;) {
      const busy = this.held.get(name);
      if (busy === undefined) break;
      if (!wait) return { ran: false };
      await busy.catch(() => undefined);
    }
    const run = fn();
    this.held.set(name, run);
    try {
      return { ran: true, value: await run };
    } finally {
      this.held.delete(name);
    }
  }

  async barrier(topic: string, _timeoutMs: number): Promise<boolean> {
    await runHandlers(this.handlers.get(topic));
    return true;
  }

  onBarrier(topic: string, handler: () => Promise<void>): () => void {
    return addHandler(this.handlers, topic, handler);
  }

  async nodes(): Promise<string[]> {
    return [this.nodeId];
  }

  async close(): Promise<void> {}
}

/** Runs a topic's handlers; one failing fails the barrier (it did not finish). */
export async function runHandlers(set: Set<() => Promise<void>> | undefined): Promise<void> {
  await Promise.all([...(set ?? [])].map((h) => h()));
}

export function addHandler(map: Map<string, Set<() => Promise<void>>>, topic: string, handler: () => Promise<void>): () => void {
  let set = map.get(topic);
  if (!set) {
    set = new Set();
    map.set(topic, set);
  }
  set.add(handler);
  return () => {
    set.delete(handler);
  };
}
