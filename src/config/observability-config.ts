import { z } from "zod";

/** Prometheus metrics and access-log details. */
export const observabilitySchema = z
  .object({
    metrics: z
      .object({
        /** Serve GET /metrics and count every call. */
        enabled: z.boolean().default(true),
        /** Node runtime metrics (event loop lag, GC, heap, handles). */
        runtime: z.boolean().default(true),
        /** Handling-time histogram buckets, in seconds. */
        buckets: z.array(z.number().positive()).default([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
      })
      .strict()
      .prefault({}),
    tracing: z
      .object({
        /** A server span per call and a client span per upstream attempt (W3C traceparent in and out). */
        enabled: z.boolean().default(false),
        /** OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces; unset: nothing is exported. */
        otlpEndpoint: z.string().url().optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** The validated observability section. */
export type ObservabilityConfig = z.infer<typeof observabilitySchema>;
