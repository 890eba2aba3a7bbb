// XMPP over WebSocket (RFC 7395) at /xmpp-websocket: the transport, the HTTP
// server carrying it, and which of its connections count as encrypted.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { Server } from "../core/server.js";
import { C2sConnection } from "./connection.js";
import type { C2sSettings, C2sTransport } from "./transport.js";

export const WEBSOCKET_PATH = "/xmpp-websocket";

export class WsTransport implements C2sTransport {
  readonly kind = "websocket" as const;
  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    readonly secure: boolean,
  ) {}
  canStartTls(): boolean {
    return false;
  }
  write(data: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(data);
  }
  end(): void {
    this.ws.close(1000);
  }
  abort(): void {
    this.ws.terminate();
  }
  keepalive(): boolean {
    // a space is no RFC 7395 message: a WebSocket ping, which the peer must answer with a pong
    if (this.ws.readyState !== this.ws.OPEN) return false;
    this.ws.ping();
    return true;
  }
}

/**
 * Whether a WebSocket connection counts as encrypted. `consider_websocket_secure`
 * true: every one (TLS is done by a proxy in front); false: none; unset: those
 * from the loopback interface (what never left the machine), so the example
 * config works on localhost and a remote client is not authenticated in clear.
 */
export function websocketSecurity(option: unknown): (remote: string) => boolean {
  if (option === true) return () => true;
  if (option === false) return () => false;
  return isLoopback;
}

export function isLoopback(address: string): boolean {
  return address === "::1" || /^(::ffff:)?127\./.test(address);
}

/** An HTTP server answering WebSocket upgrades with the `xmpp` subprotocol at WEBSOCKET_PATH. */
export function webSocketServer(
  server: Server,
  settings: C2sSettings,
  secure: (remote: string) => boolean,
  track: (conn: C2sConnection, onClose: (fn: () => void) => void) => void,
): HttpServer {
  const http = createHttpServer((_req, res) => {
    res.writeHead(404, { "content-type": "text/plain" }).end(`XMPP over WebSocket is at ${WEBSOCKET_PATH}\n`);
  });
  const wss = new WebSocketServer({
    server: http,
    path: WEBSOCKET_PATH,
    maxPayload: settings.maxStanzaSize + 1024,
    handleProtocols: (protocols) => (protocols.has("xmpp") ? "xmpp" : false),
  });
  wss.on("connection", (ws, req) => {
    if (ws.protocol !== "xmpp") {
      ws.close(1002, "the xmpp subprotocol is required");
      return;
    }
    const remote = req.socket.remoteAddress ?? "";
    const t = new WsTransport(ws, remote, secure(remote));
    req.socket.setNoDelay(true);
    const conn = new C2sConnection(server, t, settings);
    ws.on("message", (data, isBinary) => {
      if (isBinary) conn.streamError("unsupported-encoding", "text frames only");
      else conn.onMessage(data.toString());
    });
    ws.on("pong", () => conn.onActivity());
    ws.on("error", () => ws.terminate());
    track(conn, (fn) => ws.once("close", fn));
  });
  return http;
}

/**
 * A WebSocket listener whose clients can never authenticate (encryption
 * required, the connection not counted as encrypted, no STARTTLS on
 * WebSocket) is a config mistake: said once at start, per listener.
 */
export function warnWhereNobodyAuthenticates(server: Server, bound: readonly AddressInfo[], option: unknown): void {
  if (option === true) return;
  const strict = [...server.hosts.values()].filter((h) => h.option("c2s_require_encryption") !== false).map((h) => h.name);
  if (strict.length === 0) return;
  for (const a of bound) {
    const where = `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
    if (option === false) {
      server.log.warn(
        { websocket: where, hosts: strict },
        "nobody can authenticate on this WebSocket listener: c2s_require_encryption is on and consider_websocket_secure is false (set it true behind a TLS proxy, or leave it unset for loopback clients)",
      );
    } else if (!isLoopback(a.address)) {
      server.log.warn(
        { websocket: where, hosts: strict },
        "clients from other machines cannot authenticate on this WebSocket listener (not encrypted, and c2s_require_encryption is on): put a TLS proxy in front and set consider_websocket_secure",
      );
    }
  }
}
