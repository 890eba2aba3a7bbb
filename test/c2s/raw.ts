// A raw XML-over-TCP client for the stream tests: send text, wait for text.
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterEach } from "vitest";
import { type Running, startServer } from "../e2e/helpers.js";

export class Raw {
  /** Everything received so far. */
  buf = "";
  socket: Socket;
  closed = false;
  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.listen(this.socket);
  }
  private listen(socket: Socket): void {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buf += d;
    });
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("error", () => {});
  }
  /** After <proceed/>: the TLS handshake over this socket (any certificate accepted); rejects if it fails. */
  async startTls(): Promise<void> {
    if (this.closed || this.socket.destroyed) throw new Error("closed before the TLS handshake");
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("close");
    const secure = tlsConnect({ socket: this.socket, servername: "localhost", rejectUnauthorized: false });
    this.buf = "";
    this.listen(secure);
    this.socket = secure;
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
      secure.once("close", () => reject(new Error("closed during the TLS handshake")));
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

/** Authenticates with PLAIN on plain TCP (the server allows it) and restarts the stream: not bound yet. */
export async function plainAuth(port: number, user = "alice"): Promise<Raw> {
  const c = new Raw(port);
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${user}\0${user}-password`)}</auth>`);
  await c.until(/<success/);
  c.buf = "";
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.buf = "";
  return c;
}

/** Logs in with PLAIN on plain TCP and binds `resource`; the buffer is emptied. */
export async function plainLogin(port: number, user = "alice", resource = "r"): Promise<Raw> {
  const c = await plainAuth(port, user);
  c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.until(/<\/jid>/);
  c.buf = "";
  return c;
}

/** A new server for each test of the file (PLAIN allowed on plain TCP), stopped after it. */
export function serverPerTest(base: Record<string, unknown> = {}) {
  let current: Running | undefined;
  afterEach(async () => {
    await current?.stop();
    current = undefined;
  });
  return {
    /** Starts the server; returns its c2s port. */
    async boot(extra: Record<string, unknown> = {}): Promise<number> {
      current = await startServer({ allow_unencrypted_plain_auth: true, ...base, ...extra });
      return current.listening.c2s[0]!.port;
    },
    get run(): Running {
      return current!;
    },
  };
}

/** The server still serves: a new login gets a ping answered. */
export async function stillServes(port: number, user = "bob"): Promise<void> {
  const c = await plainLogin(port, user, `alive-${Math.random().toString(36).slice(2, 8)}`);
  c.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.until(/id="alive"[^>]*type="result"|type="result"[^>]*id="alive"/);
  c.end();
}
