// One root pino logger per server; modules and sessions get children of it.
import { pino } from "pino";
import pretty from "pino-pretty";

export type Logger = pino.Logger;
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface LogOptions {
  level?: LogLevel;
  /** Where lines go; defaults to standard output. */
  destination?: pino.DestinationStream;
  /**
   * Lines for people ("pretty": time, level, message, then the fields) or for
   * programs ("json"); "auto" (default): pretty when standard output is a
   * terminal and no destination is given. MAMKIT_LOG_FORMAT=json|pretty wins.
   */
  format?: "auto" | "pretty" | "json";
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? "info",
    base: undefined,
    // SASL payloads and passwords never reach the log, whatever a module passes.
    redact: { paths: ["password", "*.password", "credentials", "*.credentials"], censor: "[redacted]" },
  };
  if (opts.destination) return pino(options, opts.destination);
  const wanted = process.env.MAMKIT_LOG_FORMAT || opts.format || "auto";
  const human = wanted === "pretty" || (wanted !== "json" && process.stdout.isTTY === true);
  // (synchronous: a line logged just before the process exits is not lost)
  return human ? pino(options, pretty({ sync: true, singleLine: true, translateTime: "SYS:HH:MM:ss.l", ignore: "hostname,pid" })) : pino(options);
}

/** A logger that writes nowhere (for code paths that need one before config is read). */
export const silentLogger: Logger = pino({ level: "silent" });
