// A pino logger whose lines are parsed into an array, for asserting on logs.
import { createLogger, type Logger } from "../../src/core/logger.js";

export interface Captured {
  logger: Logger;
  lines: Record<string, any>[];
}

export function captureLog(level: "debug" | "info" | "warn" = "debug"): Captured {
  const lines: Record<string, any>[] = [];
  const logger = createLogger({ level, destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
  return { logger, lines };
}
