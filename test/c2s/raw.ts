// A raw XML-over-TCP client for the stream tests: send text, wait for text.
import { connect, type Socket } from "node:net";

export class Raw {
  /** Everything received so far. */
  buf = "";
  readonly socket: Socket;
  closed = false;
  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => {
      this.buf += d;
    });
    this.socket.on("close", () => {
      this.closed = true;
    });
  }
  send(s: string): void {
    this.socket.write(s);
  }
  /** Waits until the received text matches, and returns all of it so far. */
  async until(re: RegExp, ms = 3000): Promise<string> {
    const start = Date.now();
    while (!re.test(this.buf)) {
      if (Date.now() - start > ms) throw new Error(`timed out waiting for ${re}; got: ${this.buf.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.buf;
  }
  async waitClosed(ms = 3000): Promise<void> {
    const start = Date.now();
    while (!this.closed) {
      if (Date.now() - start > ms) throw new Error("socket not closed");
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  end(): void {
    this.socket.destroy();
  }
}

export const header = (to = "localhost", extra = "version='1.0'") =>
  `<?xml version='1.0'?><stream:stream to='${to}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' ${extra}>`;
export const b64 = (s: string) => Buffer.from(s).toString("base64");
