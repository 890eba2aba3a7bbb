/// <reference path="./types/xmpp-xml.d.ts" preserve="true" />
// mamkit: a Prosody-compatible XMPP server core for Node.
export { createServer, Server, type ServerOptions, type ListenOptions, type Addresses, type AccountsApi } from "./server.js";
export { builtinModules } from "./builtins.js";
export { Host, DiscoRegistry, type OpenSessionOptions } from "./core/host.js";
export { defineModule, type ModuleApi, type ModuleDefinition, type TypedModuleApi, type Identity, type Timer } from "./core/module.js";
export { EventBus, HandlerFailure, type Handler } from "./core/events.js";
export type { EventPayloads, PayloadOf } from "./core/event-payloads.js";
export { parseConfig, loadConfigFile, type Config, type StorageConfig } from "./core/config.js";
export { ConfigError, HostError, type HostErrorCode } from "./core/errors.js";
export { parsePeriod } from "./core/period.js";
export type { OptionDecl, OptionDecls, OptionValue, OptionValues } from "./core/options.js";
export { type Clock, ManualClock, systemClock } from "./core/clock.js";
export { createLogger, type Logger, type LogLevel } from "./core/logger.js";
export { DAILY } from "./core/scheduler.js";
export { Jid, JidError, parseJid, tryParseJid, normaliseJid } from "./xmpp/jid.js";
export { Session, SessionSlot, FilterChain, type StanzaFilter, type FilterDirection, type SessionSink, type StreamControl } from "./core/session.js";
export type { StanzaEvent } from "./core/delivery.js";
export * from "./xmpp/stanza.js";
export * from "./storage/index.js";
export { encodeValue, decodeValue, serializeXml, parseXml } from "./storage/codec.js";
export { PROSODY_SCHEMA } from "./storage/sqlite/driver.js";
export {
  META_ARCHIVE_ID,
  META_ARCHIVE_POS,
  META_ARCHIVE_USER,
  META_ARCHIVE_HOST,
  META_ARCHIVE_PREV,
  META_SENT_ARCHIVE,
  archivedOf,
  markArchived,
  sentArchiveOf,
  type ArchivedStanza,
  type SentArchived,
  MAM_OPTIONS,
  NS_MAM,
  type ArchiveMessageAdded,
  type ArchiveQueryEvent,
  type ArchiveShouldStore,
} from "./mam/index.js";
export { addCheckpoint, smState, watchDelivery, NS_SM, type SmState, type DeliveryWatch } from "./smacks/index.js";
export { SmQueue } from "./smacks/queue.js";
export { carbonsEnabled, NS_CARBONS } from "./carbons/index.js";
export type { CleanupOptions, CleanupReport, ClientReport, UserReport } from "./retention/index.js";
