// What a connection needs of the byte pipe under it (TCP with STARTTLS, or a
// WebSocket), and its settings. The listeners (listeners.ts) provide both.

/** The byte pipe under a connection. */
export interface C2sTransport {
  readonly kind: "tcp" | "websocket";
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** TLS is possible on this connection for this host (TCP with a certificate). */
  canStartTls(host: string): boolean;
  startTls?(host: string): Promise<void>;
  write(data: string): void;
  /** Closes after what was written is sent. */
  end(): void;
  /** Closes at once, dropping what is not sent yet. */
  abort(): void;
  /**
   * Sends the transport's own keepalive (TCP: a space; WebSocket: a ping frame).
   * Returns true when the peer must answer it (a WebSocket pong), which then
   * comes in as `onActivity()`.
   */
  keepalive(): boolean;
}

export interface C2sSettings {
  maxStanzaSize: number;
}

/**
 * The text of the stream error for a stream offered nothing to authenticate
 * with (nor STARTTLS to get there): said at once, not at the auth timeout.
 */
export function noWayToAuthenticate(t: C2sTransport): string {
  if (t.kind === "websocket" && !t.secure) {
    return "no authentication is offered: this WebSocket connection is not encrypted and the server requires encryption (c2s_require_encryption); connect through TLS (a proxy in front, with consider_websocket_secure) or from the loopback interface";
  }
  return "no authentication is offered on this connection (no mechanism is enabled for it)";
}
