// Minimal declarations for @xmpp/client 0.14 (used by the end-to-end tests).
declare module "@xmpp/client" {
  import type { Element } from "@xmpp/xml";
  import type { EventEmitter } from "node:events";
  export interface Client extends EventEmitter {
    start(): Promise<{ toString(): string }>;
    stop(): Promise<void>;
    send(...el: Element[]): Promise<void>;
    write(s: string): Promise<void>;
    disconnect(): Promise<void>;
    isSecure(): boolean;
    jid: { toString(): string; local: string; resource: string } | null;
    socket: { socket?: { destroy(): void } } & EventEmitter | null;
    status: string;
    iqCaller: { request(el: Element, timeout?: number): Promise<Element> };
    streamManagement: { enabled: boolean; id: string; inbound: number; outbound: number } & EventEmitter;
    reconnect: EventEmitter & { delay: number; stop(): void };
  }
  export function client(options: Record<string, unknown>): Client;
  export { xml } from "@xmpp/xml";
}
