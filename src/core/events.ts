// Event bus with Prosody's util/events.lua semantics.
//
// - handlers run by priority, higher first (default 0); equal priorities run in
//   registration order;
// - the first handler that returns something other than `undefined` stops the
//   event, and that value is what `fire` returns;
// - a handler that throws is logged with the event name and the module that
//   hooked it; the event stops and `fire` returns a `HandlerFailure`, so the
//   router can answer an iq with an error. The process goes on.
import type { Logger } from "./logger.js";

export type Handler<T = any> = (data: T) => unknown;

interface Entry {
  readonly handler: Handler;
  readonly priority: number;
  readonly owner: string | undefined;
}

/** What `fire` returns when a handler threw (or its promise rejected). */
export class HandlerFailure {
  constructor(
    readonly error: unknown,
    readonly event: string,
    readonly owner: string | undefined,
  ) {}
}

export class EventBus {
  // Copy-on-write arrays: `fire` iterates the array it read, so handlers may
  // hook and unhook while an event runs without disturbing that run.
  private readonly handlers = new Map<string, readonly Entry[]>();

  constructor(private readonly log: Logger) {}

  on(event: string, handler: Handler, priority = 0, owner?: string): void {
    if (typeof handler !== "function") throw new TypeError(`handler for "${event}" is not a function`);
    if (typeof priority !== "number" || Number.isNaN(priority)) {
      throw new TypeError(`priority for "${event}" must be a number`);
    }
    const list = this.handlers.get(event) ?? [];
    // insert after every entry of equal or higher priority: stable order
    let i = list.length;
    while (i > 0 && list[i - 1]!.priority < priority) i--;
    const next = list.slice();
    next.splice(i, 0, { handler, priority, owner });
    this.handlers.set(event, next);
  }

  /** Removes one registration of `handler` for `event`; returns whether one was found. */
  off(event: string, handler: Handler): boolean {
    const list = this.handlers.get(event);
    if (!list) return false;
    const i = list.findIndex((e) => e.handler === handler);
    if (i < 0) return false;
    if (list.length === 1) this.handlers.delete(event);
    else this.handlers.set(event, list.filter((_, j) => j !== i));
    return true;
  }

  has(event: string): boolean {
    return this.handlers.has(event);
  }

  /** Number of handlers hooked on `event` (for tests and diagnostics). */
  count(event: string): number {
    return this.handlers.get(event)?.length ?? 0;
  }

  fire(event: string, data?: unknown): unknown {
    const list = this.handlers.get(event);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      const entry = list[i]!;
      let ret: unknown;
      try {
        ret = entry.handler(data);
      } catch (err) {
        return this.failed(err, event, entry.owner);
      }
      if (ret !== undefined) {
        if (isThenable(ret)) {
          // An async handler has taken the event; a later rejection is still
          // logged rather than lost as an unhandled rejection.
          ret.then(undefined, (err: unknown) => this.failed(err, event, entry.owner));
        }
        return ret;
      }
    }
    return undefined;
  }

  /**
   * Like `fire`, for handlers that may be asynchronous (Prosody runs stanza
   * handlers in a thread that can wait for storage): a handler's promise is
   * awaited, and what it resolves to counts as its return value (`undefined`:
   * the next handler runs). Returns the value at once while every handler
   * answered synchronously, else a promise of it; never rejects (a failure is
   * a `HandlerFailure`).
   */
  fireAsync(event: string, data?: unknown): unknown {
    const list = this.handlers.get(event);
    if (list === undefined) return undefined;
    return this.runFrom(list, 0, event, data);
  }

  private runFrom(list: readonly Entry[], start: number, event: string, data: unknown): unknown {
    for (let i = start; i < list.length; i++) {
      const entry = list[i]!;
      let ret: unknown;
      try {
        ret = entry.handler(data);
      } catch (err) {
        return this.failed(err, event, entry.owner);
      }
      if (isThenable(ret)) {
        return Promise.resolve(ret).then(
          (v) => (v !== undefined ? v : this.runFrom(list, i + 1, event, data)),
          (err: unknown) => this.failed(err, event, entry.owner),
        );
      }
      if (ret !== undefined) return ret;
    }
    return undefined;
  }

  private failed(err: unknown, event: string, owner: string | undefined): HandlerFailure {
    if (!isExpectedError(err)) {
      this.log.error({ err, event, module: owner }, "error in event handler");
    }
    return new HandlerFailure(err, event, owner);
  }
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/** Errors a handler throws on purpose (a stanza error for the client) are not logged as failures. */
function isExpectedError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { isStanzaError?: unknown }).isStanzaError === true;
}
