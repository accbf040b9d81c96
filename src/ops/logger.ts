import { pino, type Logger, type LevelWithSilent } from "pino";
import { LineBatcher } from "./line-batcher.js";

export type { Logger };

/**
 * Where credentials can appear in logged objects: request headers, errors' metadata. Exact paths
 * only: a wildcard path makes every log line about three times slower (measured: 1.5 → 4.4 µs).
 */
export const REDACTED_PATHS = [
  "authorization",
  "cookie",
  "apiKey",
  "token",
  "password",
  "headers.authorization",
  "headers.cookie",
  'headers["x-api-key"]',
  'headers["proxy-authorization"]',
  'err.metadata["x-api-key"]',
];

/** Log lines are written out in batches of about this many characters. */
const BATCH_LENGTH = 4096;

/** How often buffered log lines are written out even when the buffer is not full. */
const FLUSH_INTERVAL_MS = 500;

/** The process-wide structured JSON logger (one line per event on stdout). */
export function createLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream): Logger {
  // Lines go out in batches of up to 4 KiB instead of one write per call; a timer flushes the
  // rest, and main.ts flushes on exit, so only a hard crash can lose the last moment's lines.
  const logger = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Credentials must never reach a log line, even when a debug line dumps headers or config.
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    },
    destination ?? new LineBatcher(pino.destination({ dest: 1, sync: false, minLength: BATCH_LENGTH }), BATCH_LENGTH),
  );
  if (destination === undefined && level !== "silent") {
    setInterval(() => logger.flush(), FLUSH_INTERVAL_MS).unref();
  }
  return logger;
}
