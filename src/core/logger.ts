// One root pino logger per server; modules and sessions get children of it.
import { pino } from "pino";

export type Logger = pino.Logger;
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface LogOptions {
  level?: LogLevel;
  /** Where lines go; defaults to standard output. */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? "info",
    base: undefined,
    // SASL payloads and passwords never reach the log, whatever a module passes.
    redact: { paths: ["password", "*.password", "credentials", "*.credentials"], censor: "[redacted]" },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that writes nowhere (for code paths that need one before config is read). */
export const silentLogger: Logger = pino({ level: "silent" });
