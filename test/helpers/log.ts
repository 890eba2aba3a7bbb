// A pino logger whose lines are parsed into an array, for asserting on logs.
import { createLogger, type Logger } from "../../src/core/logger.js";

export interface LogLine {
  level: number;
  msg?: string;
  err?: { message: string; type?: string };
  [key: string]: unknown;
}

export interface Captured {
  logger: Logger;
  lines: LogLine[];
}

export function captureLog(level: "debug" | "info" | "warn" = "debug"): Captured {
  const lines: LogLine[] = [];
  const logger = createLogger({ level, destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
  return { logger, lines };
}
