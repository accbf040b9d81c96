import { Code } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { ObservabilityConfig } from "../config/observability-config.js";
import type { RpcProtocol } from "../interceptors/rpc-protocol.js";
import type { HttpHandler } from "../server/http-types.js";

/**
 * Metric names follow go-grpc-prometheus (`grpc_server_started_total`, `grpc_server_handled_total`,
 * `grpc_server_handling_seconds`, `grpc_server_msg_*_total`), which existing Grafana dashboards
 * and alerts understand; `protocol` (grpc, grpc-web, connect) is this gateway's extra label.
 */
const PROTOCOLS: readonly RpcProtocol[] = ["grpc", "grpc-web", "connect"];
const protocolIndex = (protocol: RpcProtocol) => (protocol === "grpc" ? 0 : protocol === "grpc-web" ? 1 : 2);

/** gRPC code names as go-grpc-prometheus spells them ("OK", "InvalidArgument"). */
const CODE_LABELS: readonly string[] = ["OK", ...Array.from({ length: 16 }, (_, i) => Code[i + 1])];

/** Where a code is counted in a per-code array: its own slot, or Unknown's for anything that is not a gRPC code. */
function codeIndex(code: number): number {
  return Number.isInteger(code) && code >= 0 && code < CODE_LABELS.length ? code : Code.Unknown;
}

type GrpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";
const grpcTypes: Record<DescMethod["methodKind"], GrpcType> = {
  unary: "unary",
  client_streaming: "client_stream",
  server_streaming: "server_stream",
  bidi_streaming: "bidi_stream",
};

/**
 * The counts of one (method, protocol) as plain numbers: prom-client's label children hash their
 * label set on every increment (measured: ~8 µs CPU per call for the six updates of a call), so
 * the hot path adds to fields here and the registry reads them only when /metrics is scraped.
 */
export class CallSeries {
  started = 0;
  inFlight = 0;
  received = 0;
  sent = 0;
  /** Finished calls by gRPC code (index 0 = OK). */
  readonly handled: number[] = new Array<number>(CODE_LABELS.length).fill(0);
  /** Handling-time histogram: one count per bucket (non-cumulative), the last one for +Inf. */
  readonly buckets: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Array<number>(bounds.length + 1).fill(0);
  }

  /** Count a call refused before it ran (by the request gate, or connect-node's 415/405/505): started and finished at once. */
  refused(code: number): void {
    this.started++;
    this.inFlight++;
    this.finish(code, 0);
  }

  /** Count a finished call: its code (0 = OK) and handling time. */
  finish(code: number, seconds: number): void {
    this.inFlight--;
    this.handled[codeIndex(code)]++;
    let i = 0;
    const bounds = this.bounds;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.buckets[i]++;
    this.sum += seconds;
    this.count++;
  }
}

/**
 * Upstream attempts by route and endpoint, one count per gRPC code, read at scrape time as
 * gateway_upstream_attempts_total. Plain numbers for the reason CallSeries gives: every proxied
 * call adds one, and a prom-client labelled increment hashes its label set each time (measured:
 * ~300 ns against ~12 ns for this).
 */
export class AttemptCounts {
  /** route → endpoint → counts by gRPC code (index 0 = OK), in the order first seen. */
  private readonly byRoute = new Map<string, Map<string, number[]>>();

  /** Count one attempt on `endpoint` of `route` that ended with `code` (0 = OK). */
  add(route: string, endpoint: string, code: number): void {
    let byEndpoint = this.byRoute.get(route);
    if (byEndpoint === undefined) this.byRoute.set(route, (byEndpoint = new Map()));
    let counts = byEndpoint.get(endpoint);
    if (counts === undefined) byEndpoint.set(endpoint, (counts = new Array<number>(CODE_LABELS.length).fill(0)));
    counts[codeIndex(code)]++;
  }

  /** The counter's samples, grouped by route and endpoint in the order first seen, codes in numeric order; zero counts left out. */
  values(): MetricValue[] {
    const values: MetricValue[] = [];
    for (const [route, byEndpoint] of this.byRoute) {
      for (const [endpoint, counts] of byEndpoint) {
        counts.forEach((value, code) => {
          if (value > 0) values.push({ labels: { route, endpoint, grpc_code: CODE_LABELS[code] }, value });
        });
      }
    }
    return values;
  }
}

type MetricValue = { labels: Record<string, string | number>; value: number; metricName?: string };

/** A metric the registry reads at scrape time from plain counts (CallSeries, AttemptCounts), in prom-client's custom-collector shape. */
function seriesMetric(name: string, help: string, type: "counter" | "gauge" | "histogram", read: () => MetricValue[]) {
  return { name, help, type, aggregator: "sum" as const, get: async () => ({ name, help, type, aggregator: "sum" as const, values: read() }) };
}

/** The gateway's Prometheus registry: RPC server metrics, upstream metrics and Node runtime metrics. */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly series = new WeakMap<DescMethod, Array<CallSeries | undefined>>();
  private readonly allSeries: CallSeries[] = [];
  private readonly bounds: readonly number[];
  private readonly upstreamAttempts = new AttemptCounts();
  private readonly upstreamRetries: Counter<string>;
  private readonly upstreamEjections: Counter<string>;
  private readonly upstreamBreakerRejections: Counter<string>;
  private readonly rateLimited: Counter<string>;

  constructor(config: ObservabilityConfig["metrics"]) {
    const registers = [this.registry];
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    const perSeries = (field: (s: CallSeries) => number) => () => this.allSeries.map((s) => ({ labels: s.labels, value: field(s) }));
    const register = (metric: ReturnType<typeof seriesMetric>) => this.registry.registerMetric(metric as never);
    register(seriesMetric("grpc_server_started_total", "RPCs started on the server.", "counter", perSeries((s) => s.started)));
    register(
      seriesMetric("grpc_server_handled_total", "RPCs completed on the server, regardless of success or failure.", "counter", () => {
        const values: MetricValue[] = [];
        for (const s of this.allSeries) {
          s.handled.forEach((value, code) => {
            if (value > 0) values.push({ labels: { ...s.labels, grpc_code: CODE_LABELS[code] }, value });
          });
        }
        return values;
      }),
    );
    register(
      seriesMetric("grpc_server_handling_seconds", "Time from the call reaching the interceptor chain to its last response message or error.", "histogram", () => {
        const values: MetricValue[] = [];
        for (const s of this.allSeries) {
          let cumulative = 0;
          this.bounds.forEach((le, i) => {
            cumulative += s.buckets[i];
            values.push({ labels: { ...s.labels, le }, value: cumulative, metricName: "grpc_server_handling_seconds_bucket" });
          });
          values.push({ labels: { ...s.labels, le: "+Inf" }, value: s.count, metricName: "grpc_server_handling_seconds_bucket" });
          values.push({ labels: s.labels, value: s.sum, metricName: "grpc_server_handling_seconds_sum" });
          values.push({ labels: s.labels, value: s.count, metricName: "grpc_server_handling_seconds_count" });
        }
        return values;
      }),
    );
    register(seriesMetric("grpc_server_in_flight", "RPCs being served right now.", "gauge", perSeries((s) => s.inFlight)));
    register(seriesMetric("grpc_server_msg_received_total", "Request messages received.", "counter", perSeries((s) => s.received)));
    register(seriesMetric("grpc_server_msg_sent_total", "Response messages sent.", "counter", perSeries((s) => s.sent)));
    const upstreamLabels = ["route", "endpoint"];
    register(seriesMetric("gateway_upstream_attempts_total", "Attempts sent to an upstream endpoint, by outcome code.", "counter", () => this.upstreamAttempts.values()));
    this.upstreamRetries = new Counter({ name: "gateway_upstream_retries_total", help: "Upstream attempts that were retries.", labelNames: ["route"], registers });
    this.upstreamEjections = new Counter({
      name: "gateway_upstream_ejections_total",
      help: "Outlier ejections of upstream endpoints.",
      labelNames: upstreamLabels,
      registers,
    });
    this.upstreamBreakerRejections = new Counter({
      name: "gateway_upstream_circuit_breaker_rejections_total",
      help: "Calls refused because a route's circuit breaker was full.",
      labelNames: ["route"],
      registers,
    });
    this.rateLimited = new Counter({
      name: "gateway_rate_limited_total",
      help: "Calls refused by the rate limiter.",
      labelNames: ["grpc_service", "grpc_method"],
      registers,
    });
    if (config.runtime) collectDefaultMetrics({ register: this.registry });
  }

  /** The counts for a method called over a protocol, created on first use. */
  seriesFor(method: DescMethod, protocol: RpcProtocol): CallSeries {
    let byProtocol = this.series.get(method);
    if (byProtocol === undefined) this.series.set(method, (byProtocol = [undefined, undefined, undefined]));
    const index = protocolIndex(protocol);
    let series = byProtocol[index];
    if (series === undefined) {
      series = new CallSeries(
        { grpc_type: grpcTypes[method.methodKind], grpc_service: method.parent.typeName, grpc_method: method.name, protocol: PROTOCOLS[index] },
        this.bounds,
      );
      byProtocol[index] = series;
      this.allSeries.push(series);
    }
    return series;
  }

  /** Count a call the rate limiter refused. */
  recordRateLimited(method: DescMethod): void {
    this.rateLimited.inc({ grpc_service: method.parent.typeName, grpc_method: method.name });
  }

  /** Hooks for the upstream clusters (src/upstream/cluster.ts). */
  readonly upstream: UpstreamMetricsHooks = {
    attempt: (route, endpoint, code) => this.upstreamAttempts.add(route, endpoint, code),
    retry: (route) => this.upstreamRetries.inc({ route }),
    ejection: (route, endpoint) => this.upstreamEjections.inc({ route, endpoint }),
    breakerRejection: (route) => this.upstreamBreakerRejections.inc({ route }),
  };

  /** Gauges read at scrape time from live state (endpoint health, ejection, load). */
  addUpstreamState(read: () => Iterable<UpstreamEndpointState>): void {
    const registers = [this.registry];
    const labelNames = ["route", "endpoint"];
    const gauge = (name: string, help: string, value: (state: UpstreamEndpointState) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const state of read()) this.set({ route: state.route, endpoint: state.endpoint }, value(state));
        },
      });
    gauge("gateway_upstream_endpoint_healthy", "1 while the endpoint passes its health checks.", (s) => (s.healthy ? 1 : 0));
    gauge("gateway_upstream_endpoint_ejected", "1 while the endpoint is ejected by outlier detection.", (s) => (s.ejected ? 1 : 0));
    gauge("gateway_upstream_endpoint_in_flight", "Calls in flight on the endpoint.", (s) => s.inFlight);
  }

  /** GET /metrics in the Prometheus text format, on HTTP/1.1 and HTTP/2 alike. */
  handler(): HttpHandler {
    return (_req, res) => {
      this.registry.metrics().then(
        (text) => {
          res.statusCode = 200;
          res.setHeader("content-type", this.registry.contentType);
          res.setHeader("cache-control", "no-store");
          res.end(text);
        },
        () => {
          res.statusCode = 500;
          res.end();
        },
      );
    };
  }
}

/** What cluster.ts reports; every hook is cheap (a plain count per attempt; the rare events a labelled increment). */
export interface UpstreamMetricsHooks {
  attempt(route: string, endpoint: string, code: number): void;
  retry(route: string): void;
  ejection(route: string, endpoint: string): void;
  breakerRejection(route: string): void;
}

/** One endpoint's live state for the scrape-time gauges. */
export interface UpstreamEndpointState {
  route: string;
  endpoint: string;
  healthy: boolean;
  ejected: boolean;
  inFlight: number;
}
