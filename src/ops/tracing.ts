import type * as http2 from "node:http2";
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type Tracer,
} from "@opentelemetry/api";
import { createRequire } from "node:module";
import type { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import type { ObservabilityConfig } from "../config/observability-config.js";

// The OpenTelemetry SDK and exporter (about 15 MB of resident memory) are loaded only when tracing is on.
const requireOptional = createRequire(import.meta.url);

/** Off until setUpTracing turns it on: the upstream hooks check this flag and do nothing else. */
let enabled = false;
let contextInstalled = false;

/** What the gateway needs from tracing; undefined when tracing is off. */
export interface Tracing {
  tracer: Tracer;
  shutdown(): Promise<void>;
}

/**
 * Turn tracing on: W3C trace context, an AsyncLocalStorage context (so upstream attempts become
 * children of the server span) and, with an OTLP endpoint, an exporting tracer provider. Without
 * an endpoint, spans go to whatever provider the process registered (tests: an in-memory one).
 */
export function setUpTracing(config: ObservabilityConfig["tracing"]): Tracing | undefined {
  if (!config.enabled && config.otlpEndpoint === undefined) return undefined;
  if (!contextInstalled) {
    contextInstalled = true;
    const { AsyncLocalStorageContextManager } = requireOptional("@opentelemetry/context-async-hooks") as typeof import("@opentelemetry/context-async-hooks");
    const { W3CTraceContextPropagator } = requireOptional("@opentelemetry/core") as typeof import("@opentelemetry/core");
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  }
  let provider: BasicTracerProvider | undefined;
  if (config.otlpEndpoint !== undefined) {
    const { OTLPTraceExporter } = requireOptional("@opentelemetry/exporter-trace-otlp-http") as typeof import("@opentelemetry/exporter-trace-otlp-http");
    const { BasicTracerProvider: Provider, BatchSpanProcessor } = requireOptional("@opentelemetry/sdk-trace-base") as typeof import("@opentelemetry/sdk-trace-base");
    provider = new Provider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: config.otlpEndpoint }))] });
    trace.setGlobalTracerProvider(provider);
  }
  enabled = true;
  return { tracer: trace.getTracer("connect-gateway"), shutdown: async () => provider?.shutdown() };
}

const headersGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

/** The trace context a client sent (traceparent / tracestate), as the parent for the server span. */
export function extractFromHeaders(headers: Headers): Context {
  return propagation.extract(ROOT_CONTEXT, headers, headersGetter);
}

/** Run `fn` in the trace context of a raw HTTP/2 request's headers (the gRPC pass-through has no server span). */
export function runInRequestContext<T>(headers: http2.IncomingHttpHeaders, fn: () => T): T {
  if (!enabled) return fn();
  return context.with(propagation.extract(ROOT_CONTEXT, headers), fn);
}

/** A client span for one upstream attempt, a child of the active (server) span; undefined when tracing is off. */
export function startAttemptSpan(method: string, endpoint: string, attempt: number): Span | undefined {
  if (!enabled) return undefined;
  const [service, name] = method.split("/", 2);
  return trace.getTracer("connect-gateway").startSpan(method, {
    kind: SpanKind.CLIENT,
    attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": name, "server.address": endpoint, "gateway.attempt": attempt },
  });
}

/** Run one upstream attempt with its span active, so the request headers carry it upstream. */
export function withSpan<T>(span: Span | undefined, fn: () => T): T {
  return span === undefined ? fn() : context.with(trace.setSpan(context.active(), span), fn);
}

/** End a span with the call's outcome: a gRPC code (0 = OK). */
export function endSpan(span: Span | undefined, code: number, message?: string): void {
  if (span === undefined) return;
  span.setAttribute("rpc.grpc.status_code", code);
  if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.end();
}

/** The active span's traceparent added to upstream request headers (fetch-style); unchanged when tracing is off. */
export function withTraceHeaders(header: HeadersInit | undefined): HeadersInit | undefined {
  if (!enabled) return header;
  const headers = new Headers(header);
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
  return headers;
}

/** The active span's traceparent written into raw HTTP/2 request headers (the pass-through). */
export function injectTraceHeaders(headers: http2.OutgoingHttpHeaders): void {
  if (enabled) propagation.inject(context.active(), headers);
}
