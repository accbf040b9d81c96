import { z } from "zod";

/**
 * The `upstreams` config section: services the gateway forwards to other gRPC (or Connect)
 * servers. Each route maps a service name, or a package prefix, to a target; every setting
 * below has a default, so a route needs only `match` and `target`.
 */

const positiveMs = z.number().int().min(1);
const DNS_TARGET = /^dns:\/\/[^/]*\/[^:/\s]+:(\d{1,5})$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]]+):(\d{1,5})$/;

/** True when the text ends in a TCP port a server can listen on (1-65535). */
function hasTcpPort(text: string, pattern: RegExp): boolean {
  const port = pattern.exec(text)?.at(-1);
  return port !== undefined && Number(port) >= 1 && Number(port) <= 65535;
}

const hostPort = z
  .string()
  .refine((text) => hasTcpPort(text, HOST_PORT), "expected host:port with a port from 1 to 65535 (IPv6 in brackets: [::1]:50051)");

/** `dns:///name:port` (a Kubernetes headless Service, every A/AAAA record), or static host:port endpoints. */
const target = z.union([z.string(), z.array(hostPort).min(1)]).superRefine((value, ctx) => {
  // Checked here rather than in the union, whose failure would only say "Invalid input".
  if (typeof value === "string" && !hasTcpPort(value, DNS_TARGET) && !hasTcpPort(value, HOST_PORT)) {
    ctx.addIssue({ code: "custom", message: "expected dns:///host:port, host:port, or a list of host:port, with a port from 1 to 65535" });
  }
});

/** What a route matches: a fully-qualified service name, or a package prefix ending in `.*`. */
const routeMatch = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\*)?$/, "expected pkg.Service or a package prefix pkg.*");

/** Request header names or `prefix-*` patterns; `*` alone means every header that is not hop-by-hop or auth. */
const headerPattern = z.string().regex(/^(\*|[a-z0-9!#$%&'+.^_`|~-]+\*?)$/, "expected a lower-case header name, a prefix ending in *, or *");

/** Metadata forwarded when a route does not list its own: tracing and request correlation. */
export const DEFAULT_FORWARD_HEADERS = [
  "traceparent",
  "tracestate",
  "baggage",
  "grpc-trace-bin",
  "x-request-id",
  "x-correlation-id",
  "x-b3-*",
  "b3",
  "x-cloud-trace-context",
] as const;

const retrySchema = z
  .object({
    /** Attempts in total, the first one included (1 disables retries). */
    maxAttempts: z.number().int().min(1).max(10).default(3),
    initialBackoffMs: z.number().int().min(0).default(25),
    maxBackoffMs: z.number().int().min(0).default(1_000),
    backoffMultiplier: z.number().min(1).default(2),
    /** Retries allowed on top of the calls made, as a fraction of the calls in the last 10 s. */
    budgetRatio: z.number().min(0).max(10).default(0.2),
    /** Retries always allowed per second, whatever the ratio says (so low traffic can retry). */
    minRetriesPerSecond: z.number().int().min(0).default(10),
    /**
     * Methods (`pkg.Service/Method`) retried like idempotent ones, in addition to those the proto
     * marks `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`.
     */
    idempotentMethods: z.array(z.string().regex(/^[A-Za-z0-9_.]+\/[A-Za-z0-9_]+$/, "expected pkg.Service/Method")).default([]),
  })
  .strict();

const healthCheckSchema = z
  .object({
    enabled: z.boolean().default(true),
    intervalMs: positiveMs.default(5_000),
    timeoutMs: positiveMs.default(1_000),
    /** The grpc.health.v1 service name asked for; "" is the whole server. */
    service: z.string().default(""),
    /** Consecutive failed checks before an endpoint is taken out of rotation. */
    unhealthyThreshold: z.number().int().min(1).default(2),
    /** Consecutive passed checks before it is put back. */
    healthyThreshold: z.number().int().min(1).default(1),
  })
  .strict();

const outlierSchema = z
  .object({
    /** Consecutive failed calls (unavailable, connection failures) that eject an endpoint; 0 disables. */
    consecutiveFailures: z.number().int().min(0).default(5),
    /** First ejection lasts this long; each further ejection of the same endpoint lasts longer. */
    baseEjectionMs: positiveMs.default(10_000),
    maxEjectionMs: positiveMs.default(300_000),
    /** At most this share of a route's endpoints is ejected at once (one always may be). */
    maxEjectionPercent: z.number().int().min(0).max(100).default(50),
  })
  .strict();

const circuitBreakerSchema = z
  .object({
    /** Calls in flight to this route's upstream at once. */
    maxConcurrentCalls: z.number().int().min(1).default(1_000),
    /** Calls waiting for a free slot beyond that; any more fail at once with `unavailable`. */
    maxPendingCalls: z.number().int().min(0).default(100),
  })
  .strict();

const connectionSchema = z
  .object({
    /** Connections to an endpoint older than this are replaced (gracefully), so new pods get traffic; 0 never. */
    maxConnectionAgeMs: z.number().int().min(0).default(300_000),
    /** Time to establish a connection before the endpoint counts as unreachable. */
    connectTimeoutMs: positiveMs.default(5_000),
    /** HTTP/2 PING keep-alive interval while calls are open; 0 disables. */
    keepAliveMs: z.number().int().min(0).default(30_000),
    /**
     * The HTTP/2 client of the gRPC pass-through for unary and server-streaming calls: the
     * gateway's own (`gateway`, several times cheaper per call) or Node's http2 module (`node`,
     * as every other upstream call uses). Streaming requests always use Node's.
     */
    passthroughClient: z.enum(["gateway", "node"]).default("gateway"),
  })
  .strict();

const dnsSchema = z
  .object({
    /** Re-resolve this often; failures and an empty endpoint list re-resolve sooner. */
    refreshIntervalMs: positiveMs.default(30_000),
    /** DNS servers (`ip` or `ip:port`); empty uses the system's resolvers. */
    servers: z.array(z.string().min(1)).default([]),
    timeoutMs: positiveMs.default(2_000),
  })
  .strict();

const tlsSchema = z
  .object({
    /** PEM CA bundle for the upstream's certificate; unset uses Node's default CAs. */
    caFile: z.string().min(1).optional(),
    /** Client certificate and key for mutual TLS. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** The name checked against the certificate (SNI); defaults to the target host. */
    serverName: z.string().min(1).optional(),
  })
  .strict()
  .refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), {
    message: "certFile and keyFile go together",
  });

/** One route: which services, where they run, and how calls to them are made. */
export const upstreamRouteSchema = z
  .object({
    /** `pkg.v1.Service`, or `pkg.v1.*` for every service of a package (and its sub-packages). */
    match: routeMatch,
    target,
    /** Wire protocol towards the upstream; always HTTP/2, cleartext unless `tls` is set. */
    protocol: z.enum(["grpc", "connect"]).default("grpc"),
    tls: tlsSchema.optional(),
    /** Where the services' descriptors come from: the Buf images in `upstreams.images`, or the upstream's server reflection at start-up. */
    descriptors: z.enum(["image", "reflection"]).default("image"),
    /** Longest a call may take upstream (a client's shorter deadline wins); 0 means no limit. */
    timeoutMs: z.number().int().min(0).default(0),
    loadBalancing: z.enum(["round_robin", "least_request"]).default("round_robin"),
    /** Request metadata forwarded upstream (hop-by-hop headers never are; auth headers only when named). */
    forwardHeaders: z.array(headerPattern).default([...DEFAULT_FORWARD_HEADERS]),
    /** gRPC calls from gRPC clients over HTTP/2 are relayed byte for byte, without decoding. */
    passthrough: z.boolean().default(true),
    retry: retrySchema.prefault({}),
    healthCheck: healthCheckSchema.prefault({}),
    outlierDetection: outlierSchema.prefault({}),
    circuitBreaker: circuitBreakerSchema.prefault({}),
    connection: connectionSchema.prefault({}),
    dns: dnsSchema.prefault({}),
  })
  .strict();

/** The `upstreams` section of the gateway config. */
export const upstreamsSchema = z
  .object({
    /** Buf images (`buf build -o image.binpb`: a binary google.protobuf.FileDescriptorSet) with the routed services. */
    images: z.array(z.string().min(1)).default([]),
    /** How long start-up waits for upstream reflection and the first DNS answers. */
    startupTimeoutMs: positiveMs.default(10_000),
    routes: z.array(upstreamRouteSchema).default([]),
  })
  .strict()
  .superRefine(
    (section, ctx) => {
      const seen = new Set<string>();
      (section.routes ?? []).forEach((route, index) => {
        if (typeof route !== "object" || route === null) return;
        if (seen.has(route.match)) {
          ctx.addIssue({ code: "custom", path: ["routes", index, "match"], message: `duplicate route for ${route.match}` });
        }
        seen.add(route.match);
        if ((route.descriptors ?? "image") === "image" && (section.images ?? []).length === 0) {
          ctx.addIssue({
            code: "custom",
            path: ["routes", index, "descriptors"],
            message: "descriptors: image needs at least one file in upstreams.images (or use descriptors: reflection)",
          });
        }
      });
    },
    // Also when a route has other problems: every problem is reported at once.
    { when: () => true },
  );

/** The validated `upstreams` section. */
export type UpstreamsConfig = z.infer<typeof upstreamsSchema>;
/** One validated route. */
export type UpstreamRouteConfig = z.infer<typeof upstreamRouteSchema>;
