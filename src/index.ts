/// <reference path="./types/xmpp-xml.d.ts" preserve="true" />
// mamkit: a Prosody-compatible XMPP server core for Node.
export { createServer, Server, type ServerOptions } from "./core/server.js";
export { Host, DiscoRegistry, type OpenSessionOptions } from "./core/host.js";
export { defineModule, type ModuleApi, type ModuleDefinition, type Identity, type Timer } from "./core/module.js";
export { EventBus, HandlerFailure, type Handler } from "./core/events.js";
export { parseConfig, loadConfigFile, type Config, type StorageConfig } from "./core/config.js";
export { ConfigError, HostError, type HostErrorCode } from "./core/errors.js";
export { parsePeriod } from "./core/period.js";
export type { OptionDecl, OptionDecls } from "./core/options.js";
export { type Clock, ManualClock, systemClock } from "./core/clock.js";
export { createLogger, type Logger, type LogLevel } from "./core/logger.js";
export { DAILY } from "./core/scheduler.js";
export { Jid, JidError, parseJid, tryParseJid, normaliseJid } from "./xmpp/jid.js";
export { Session, FilterChain, type StanzaFilter, type FilterDirection, type SessionSink } from "./xmpp/session.js";
export type { StanzaEvent } from "./xmpp/delivery.js";
export * from "./xmpp/stanza.js";
export * from "./storage/index.js";
export { encodeValue, decodeValue, serializeXml, parseXml } from "./storage/codec.js";
export { PROSODY_SCHEMA } from "./storage/sqlite/driver.js";
