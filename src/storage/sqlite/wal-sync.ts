// The WAL's fdatasync on libuv's thread pool (the server's SQLite with synchronous "full").
import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";

/**
 * fdatasync of the WAL file on libuv's thread pool. Syncs are coalesced: one
 * asked for while another runs waits for it, then one more covers everyone
 * who asked meanwhile (a sync covers every write made before it began).
 */
export class WalSync {
  private fd: number | undefined;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly file: string) {}

  sync(): Promise<void> {
    if (this.running === undefined) {
      this.running = this.once().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.sync();
      });
    return this.next;
  }

  private once(): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.fd ??= openSync(this.file, "r");
      } catch (err) {
        reject(err);
        return;
      }
      fdatasync(this.fd, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Syncs now, on this thread (for closing synchronously). */
  syncNow(): void {
    try {
      this.fd ??= openSync(this.file, "r");
      fdatasyncSync(this.fd);
    } catch {
      // no WAL file (nothing was written): nothing to sync
    }
  }

  close(): void {
    // (a sync still running keeps its descriptor: closed, the number could be reused by another file)
    if (this.fd !== undefined && this.running === undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

