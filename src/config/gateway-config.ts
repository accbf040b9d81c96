import { z } from "zod";
import { upstreamsSchema } from "./upstream-config.js";
import { webSchema } from "./web-config.js";
import { securitySchema } from "./security-config.js";
import { observabilitySchema } from "./observability-config.js";

const KiB = 1024;
const MiB = 1024 * KiB;

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().min(1);

/** The configuration schema: every setting, its type, range and default, in one place. */
export const gatewayConfigSchema = z
  .object({
    /** Address to listen on; unset means every interface (IPv6 and IPv4 where available). */
    host: z.string().min(1).optional(),
    port: port.default(8080),
    tls: z
      .object({
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
      })
      .strict()
      .optional(),
    reflection: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
    fastPath: z
      .object({
        /** Serve plain unary calls without connect-node's per-call pipeline (same behaviour, less CPU). */
        enabled: z.boolean().default(true),
        /**
         * Parse cleartext HTTP/1.1 with Node's parser but without node:http's request and response
         * objects for the calls the fast path serves (src/http1/lean-connections.ts).
         */
        leanHttp1: z.boolean().default(true),
        /**
         * Serve cleartext HTTP/2 with the gateway's own HTTP/2 server instead of Node's
         * (src/http2/server/); streams the fast path does not take are relayed in-process to
         * Node's server. TLS connections stay with Node's server. Wants node's
         * --no-allocation-site-pretenuring, which npm start and the image pass.
         */
        leanHttp2: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** Largest single message accepted or sent, in bytes (gRPC's customary default is 4 MiB). */
        maxMessageBytes: z.number().int().min(1).max(2 ** 32 - 1).default(4 * MiB),
        /** Largest header block a client may send (HTTP/1.1 header section, HTTP/2 header list). */
        maxHeaderBytes: z.number().int().min(1 * KiB).max(1 * MiB).default(16 * KiB),
        /** Time a client has to send its complete request headers (slowloris guard). */
        headersTimeoutMs: positiveMs.default(10_000),
        /** A connection with no open call is closed after this much silence. */
        idleTimeoutMs: positiveMs.default(120_000),
        /** Streams one HTTP/2 connection may have open at once. */
        maxConcurrentStreams: z.number().int().min(1).max(2 ** 31 - 1).default(256),
        /**
         * HTTP/2 connections older than this get a graceful GOAWAY, so long-lived clients reconnect
         * and spread over new replicas after a scale-up (a Kubernetes Service balances connections,
         * not calls). 0 turns it off. Each connection's age is jittered by ±10%.
         */
        maxConnectionAgeMs: z.number().int().min(0).default(0),
        /** After that GOAWAY, calls still open on the old connection get this long before it is closed. */
        maxConnectionAgeGraceMs: z.number().int().min(0).default(30_000),
        /** Largest deadline a client may ask for; 0 means no maximum. */
        maxTimeoutMs: z.number().int().min(0).default(0),
      })
      .strict()
      .prefault({}),
    shutdown: z
      .object({
        /** How long in-flight calls may take to finish after SIGTERM before they are cancelled. */
        graceMs: z.number().int().min(0).default(20_000),
      })
      .strict()
      .prefault({}),
    gcPacing: z
      .object({
        /**
         * Force a full garbage collection whenever V8's old space has grown this many MiB since
         * the last one (more when much survives it), so each pause stays short; 0 leaves full
         * collections to V8. Needs node's --expose-gc flag (src/ops/gc-pacer.ts).
         */
        stepMb: z.number().int().min(0).max(4096).default(8),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .strict()
      .prefault({}),
    upstreams: upstreamsSchema.prefault({}),
    web: webSchema.prefault({}),
    security: securitySchema.prefault({}),
    observability: observabilitySchema.prefault({}),
  })
  .strict();

/** The validated configuration with every default filled in. */
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;

/** Raw, partial configuration as written in a file or assembled from the environment. */
export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
