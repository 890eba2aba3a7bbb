// The clock of one connection. c2s_timeout: a stream that has not
// authenticated by then is closed. c2s_read_timeout: after that long without
// input the peer is probed. A probe that needs an answer (a module's, through
// Prosody's `c2s-read-timeout` event, or a WebSocket ping) is answered by any
// input; with none for another c2s_read_timeout the peer is taken for dead. A
// whitespace keepalive needs no answer: the stream stays (as Prosody), and a
// dead peer is left to TCP keepalives and failing writes.

export interface LivenessEvents {
  closed(): boolean;
  authenticated(): boolean;
  /** Not authenticated within c2s_timeout. */
  authTimedOut(): void;
  /** Sends a probe; returns true when the peer must answer it. */
  probe(): boolean;
  /** No answer to a probe that needed one. */
  dead(): void;
}

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private readonly opened = Date.now();
  private lastRead = Date.now();
  /** Reads so far: a probe is answered by any input after it. */
  private reads = 0;
  /** A probe sent and waiting for any input. */
  private waiting: { at: number; reads: number } | undefined;
  private keptAliveAt = 0;

  constructor(
    private readonly authTimeoutMs: number,
    private readonly readTimeoutMs: number,
    private readonly on: LivenessEvents,
  ) {
    this.arm();
  }

  /** Input arrived (data, or a WebSocket pong). */
  input(): void {
    this.lastRead = Date.now();
    this.reads++;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setTimeout(() => this.tick(), Math.min(this.authTimeoutMs, this.readTimeoutMs, 30_000));
    this.timer.unref?.();
  }

  private tick(): void {
    if (this.on.closed()) return;
    const now = Date.now();
    if (!this.on.authenticated() && now - this.opened >= this.authTimeoutMs) {
      this.on.authTimedOut();
      return;
    }
    if (this.waiting !== undefined && this.reads > this.waiting.reads) this.waiting = undefined; // answered
    if (this.waiting !== undefined && now - this.waiting.at >= this.readTimeoutMs) {
      this.on.dead();
      return;
    }
    if (this.waiting === undefined && now - Math.max(this.lastRead, this.keptAliveAt) >= this.readTimeoutMs) {
      if (this.on.probe()) this.waiting = { at: now, reads: this.reads };
      else this.keptAliveAt = now;
    }
    this.arm();
  }
}
