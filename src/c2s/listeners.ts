// Network listeners: client-to-server TCP (with STARTTLS) and WebSocket
// (RFC 7395 at /xmpp-websocket), on the configured interfaces and ports.
import type { Server as HttpServer } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { TLSSocket } from "node:tls";
import type { Server } from "../core/server.js";
import { overTurnBudget } from "../core/turn.js";
import { C2sConnection } from "./connection.js";
import type { C2sSettings, C2sTransport } from "./transport.js";
import { TlsProvider } from "./tls.js";
import { warnWhereNobodyAuthenticates, webSocketServer, websocketSecurity } from "./websocket.js";
import { HostError } from "../core/errors.js";

export const DEFAULT_STANZA_SIZE_LIMIT = 256 * 1024;

export interface Listening {
  /** Bound addresses, e.g. to learn an ephemeral port. */
  readonly c2s: AddressInfo[];
  readonly websocket: AddressInfo[];
  /** Closes every stream with `system-shutdown` and stops listening. */
  close(): Promise<void>;
}

/** A connection that read less than LIGHT_BYTES in about the last RECENT_MS is light: its reads skip the turn budget. */
const RECENT_MS = 100;
const LIGHT_BYTES = 4096;

class TcpTransport implements C2sTransport {
  readonly kind = "tcp" as const;
  secure = false;
  private socket: Socket;
  // fatal: invalid UTF-8 is a stream error (RFC 6120 §4.9.3.22), not text quietly changed to U+FFFD
  private decoder = new TextDecoder("utf-8", { fatal: true });
  conn!: C2sConnection;
  // What is written in one go of the event loop leaves in one socket write: a
  // burst of stanzas to one client costs one system call, not one each.
  private pending: string[] = [];
  private flushQueued = false;

  constructor(
    private readonly raw: Socket,
    private readonly tls: TlsProvider,
  ) {
    this.socket = raw;
    raw.setNoDelay(true); // no Nagle: a MAM page must not wait for the peer's delayed ACK
    raw.on("data", this.onData);
  }

  get remoteAddress(): string {
    return this.raw.remoteAddress ?? "";
  }

  /** Reads held back for the next turn of the event loop (the socket paused meanwhile). */
  private backlog: Buffer[] = [];

  /** Bytes read lately (decaying with a time constant of RECENT_MS) and when last updated. */
  private recentBytes = 0;
  private recentAt = 0;

  private onData = (buf: Buffer) => {
    // Over the turn's budget, a busy connection's read waits for the next turn, while a light
    // one (a MAM query between the messages of others, a person chatting) is taken at once:
    // it does not queue behind the busy ones. (Before authentication a read may hold a
    // STARTTLS handshake: never held back then.)
    const now = performance.now();
    this.recentBytes = this.recentBytes * Math.exp((this.recentAt - now) / RECENT_MS) + buf.length;
    this.recentAt = now;
    if (this.conn.authenticated && (this.backlog.length > 0 || (this.recentBytes > LIGHT_BYTES && overTurnBudget()))) {
      this.backlog.push(buf);
      if (this.backlog.length === 1) {
        this.socket.pause();
        setImmediate(this.catchUp);
      }
      return;
    }
    this.take(buf);
  };

  // One read per held-back connection and turn, round-robin between them.
  private catchUp = () => {
    if (this.backlog.length > 0 && !overTurnBudget()) this.take(this.backlog.shift()!);
    if (this.backlog.length > 0) setImmediate(this.catchUp);
    else if (!this.socket.destroyed) this.socket.resume();
  };

  private take(buf: Buffer): void {
    let text: string;
    try {
      text = this.decoder.decode(buf, { stream: true });
    } catch {
      this.conn.streamError("unsupported-encoding", "the stream is not valid UTF-8");
      return;
    }
    this.conn.onData(text);
  }

  canStartTls(host: string): boolean {
    return this.tls.has(host);
  }

  startTls(host: string): Promise<void> {
    this.flush(); // <proceed/> goes out in the clear, before the handshake
    this.raw.off("data", this.onData);
    const secure = new TLSSocket(this.raw, { isServer: true, secureContext: this.tls.context(host)! });
    this.socket = secure;
    this.decoder = new TextDecoder("utf-8", { fatal: true });
    secure.on("data", this.onData);
    secure.on("error", () => secure.destroy());
    return new Promise((resolve, reject) => {
      secure.once("secure", () => {
        this.secure = true;
        resolve();
      });
      secure.once("error", reject);
    });
  }

  write(data: string): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.pending.push(data);
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(this.flush);
    }
  }

  private flush = (): void => {
    this.flushQueued = false;
    if (this.pending.length === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    this.pending = [];
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  };

  end(): void {
    this.flush();
    this.socket.end();
    setTimeout(() => this.abort(), 2000).unref();
  }

  abort(): void {
    // a TLS socket wrapping the connection does not take the connection down with it
    this.socket.destroy();
    this.raw.destroy();
  }

  keepalive(): boolean {
    this.write(" "); // a whitespace keepalive (RFC 6120 §4.6.1): nothing answers it
    return false;
  }
}

export interface ListenOptions {
  /** Addresses to bind ("*" for every IPv4 one); default: the config's `interfaces`, else 127.0.0.1. */
  interfaces?: readonly string[];
  /** Client-to-server TCP ports (0 picks a free one); default: the config's `c2s_ports`, else 5222. */
  c2sPorts?: readonly number[];
  /** WebSocket ports (0 picks a free one); default: the config's `websocket_ports`, else 5280. */
  websocketPorts?: readonly number[];
}

/**
 * Starts the c2s and WebSocket listeners (the config's, or those given). If
 * one address cannot be bound, those bound already are closed again and the
 * promise rejects with a HostError naming the address and the option.
 */
export async function listen(server: Server, opts: ListenOptions = {}): Promise<Listening> {
  const g = server.config.global;
  const interfaces = opts.interfaces ?? (g.interfaces as string[] | undefined) ?? ["127.0.0.1"];
  const c2sPorts = opts.c2sPorts ?? (g.c2s_ports as number[] | undefined) ?? [5222];
  const wsPorts = opts.websocketPorts ?? (g.websocket_ports as number[] | undefined) ?? [5280];
  // certificates go beside the database (or into data/ beside the config file: memory storage, ":memory:")
  const db = server.config.storage.driver === "sqlite" ? server.config.storage.database : ":memory:";
  const dataDir = db === ":memory:" ? join(server.config.baseDir, "data") : dirname(db);
  const tls = await TlsProvider.load(server, dataDir);
  const settings: C2sSettings = {
    maxStanzaSize: (g.c2s_stanza_size_limit as number | undefined) ?? DEFAULT_STANZA_SIZE_LIMIT,
  };
  const tcpKeepalives = g.c2s_tcp_keepalives !== false;
  const connections = new Set<C2sConnection>();
  const track = (conn: C2sConnection, onClose: (fn: () => void) => void) => {
    connections.add(conn);
    onClose(() => {
      connections.delete(conn);
      conn.onTransportClosed();
    });
  };
  const netServers: NetServer[] = [];
  const httpServers: HttpServer[] = [];
  const closeAll = async () => {
    for (const conn of [...connections]) conn.close("system-shutdown");
    await Promise.all([
      ...netServers.map((s) => new Promise<void>((r) => s.close(() => r()))),
      ...httpServers.map((s) => {
        s.closeAllConnections?.();
        return new Promise<void>((r) => s.close(() => r()));
      }),
    ]);
  };

  try {
    for (const port of c2sPorts) {
      for (const iface of interfaces) {
        const ns = createNetServer((socket) => {
          // as Prosody's c2s_tcp_keepalives: the OS notices a peer that vanished without a word
          socket.setKeepAlive(tcpKeepalives);
          const t = new TcpTransport(socket, tls);
          const conn = new C2sConnection(server, t, settings);
          t.conn = conn;
          socket.on("error", () => socket.destroy());
          track(conn, (fn) => socket.once("close", fn));
        });
        await bind(ns, port, iface, "c2s_ports");
        netServers.push(ns);
      }
    }
    const wsSecure = websocketSecurity(g.consider_websocket_secure);
    for (const port of wsPorts) {
      for (const iface of interfaces) {
        const http = webSocketServer(server, settings, wsSecure, track);
        await bind(http, port, iface, "websocket_ports");
        httpServers.push(http);
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }

  const c2s = netServers.map((s) => s.address() as AddressInfo);
  const websocket = httpServers.map((s) => s.address() as AddressInfo);
  warnWhereNobodyAuthenticates(server, websocket, g.consider_websocket_secure);
  server.log.debug({ c2s, websocket }, "listening");
  return { c2s, websocket, close: closeAll };
}

function bind(s: NetServer | HttpServer, port: number, iface: string, option: string): Promise<void> {
  const address = iface === "*" ? "0.0.0.0" : iface;
  return new Promise<void>((resolve, reject) => {
    s.once("error", (err: NodeJS.ErrnoException) => {
      const why =
        err.code === "EADDRINUSE"
          ? "the address is in use (another server, or a second mamkit?)"
          : err.code === "EACCES"
            ? "permission denied (ports below 1024 need privileges)"
            : err.code === "EADDRNOTAVAIL"
              ? "no interface of this machine has that address (see `interfaces`)"
              : err.message;
      reject(new HostError("MAMKIT_ERR_LISTEN", `cannot listen on ${address}:${port} (${option}): ${why}`, { cause: err }));
    });
    s.listen(port, address, () => resolve());
  });
}
