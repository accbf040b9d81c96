/**
 * OpenTelemetry: a server span per call, a client span per upstream attempt, W3C traceparent
 * accepted from the client and propagated upstream (the upstream sees the same trace id, with
 * the gateway's client span as parent). Spans are collected with the SDK's in-memory exporter.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SpanKind, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { inspect, startUpstreams, type UpstreamProcess } from "../support/upstream-fleet.js";

const exporter = new InMemorySpanExporter();
const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN = "b7ad6b7169203331";
const TRACEPARENT = `00-${TRACE_ID}-${CLIENT_SPAN}-01`;

let imageDir: string;
let upstream: UpstreamProcess;
let gw: StartedGateway;
let grpcJs: GenericGrpcClient;

beforeAll(async () => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  imageDir = mkdtempSync(join(tmpdir(), "gateway-image-"));
  const [started, image] = await Promise.all([
    startUpstreams([{ id: "a" }]),
    buildUpstreamImage(imageDir),
  ]);
  upstream = started[0];
  gw = await startGateway({
    observability: { tracing: { enabled: true } },
    upstreams: { images: [image], routes: [{ match: "test.upstream.v1.EchoService", target: upstream.address, healthCheck: { enabled: false } }] },
  });
  grpcJs = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(EchoService), "EchoService");
}, 60_000);

afterAll(async () => {
  grpcJs?.close();
  await gw?.close();
  await upstream?.stop();
  rmSync(imageDir, { recursive: true, force: true });
});
beforeEach(() => exporter.reset());

const spans = (kind: SpanKind) => exporter.getFinishedSpans().filter((s: ReadableSpan) => s.kind === kind);
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const settle = () => new Promise((r) => setTimeout(r, 50));

describe("tracing", () => {
  it("a local call gets a server span, a child of the client's traceparent, and the log line its trace id", async () => {
    const client = createClient(GreeterService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }));
    await client.greet({ name: "Ada" }, { headers: { traceparent: TRACEPARENT, "x-request-id": "trace-local" } });
    await settle();
    const [server] = spans(SpanKind.SERVER);
    expect(server.name).toBe("demo.v1.GreeterService/Greet");
    expect(server.spanContext().traceId).toBe(TRACE_ID);
    expect(parentOf(server)).toBe(CLIENT_SPAN);
    expect(server.attributes).toMatchObject({ "rpc.system": "connect_rpc", "rpc.service": "demo.v1.GreeterService", "rpc.method": "Greet", "rpc.grpc.status_code": 0 });
    expect(gw.logs.find((l) => l.requestId === "trace-local")?.traceId).toBe(TRACE_ID);
  });

  it("a transcoded upstream call: server span → client span → upstream, one trace id", async () => {
    const client = createClient(EchoService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }));
    await client.echo({ text: "hi", tag: "trace-transcoded" }, { headers: { traceparent: TRACEPARENT } });
    await settle();
    const [server] = spans(SpanKind.SERVER);
    const [attempt] = spans(SpanKind.CLIENT);
    expect(server.spanContext().traceId).toBe(TRACE_ID);
    expect(attempt.spanContext().traceId).toBe(TRACE_ID);
    expect(parentOf(attempt)).toBe(server.spanContext().spanId);
    expect(attempt.attributes).toMatchObject({ "server.address": upstream.address, "rpc.grpc.status_code": 0 });
    const seen = (await inspect(upstream.address, "trace-transcoded")).lastMetadata.traceparent;
    expect(seen).toBe(`00-${TRACE_ID}-${attempt.spanContext().spanId}-01`);
  });

  it("a gRPC pass-through call: a client span continuing the client's trace, propagated upstream", async () => {
    const outcome = await grpcUnary(grpcJs, EchoService.method.echo, { text: "hi", tag: "trace-passthrough" }, { metadata: { traceparent: TRACEPARENT } });
    expect(outcome.status.code).toBe(0);
    await settle();
    const [attempt] = spans(SpanKind.CLIENT);
    expect(attempt.spanContext().traceId).toBe(TRACE_ID);
    expect(parentOf(attempt)).toBe(CLIENT_SPAN);
    const seen = (await inspect(upstream.address, "trace-passthrough")).lastMetadata.traceparent;
    expect(seen).toBe(`00-${TRACE_ID}-${attempt.spanContext().spanId}-01`);
  });

  it("without a traceparent the gateway starts a trace, and the upstream sees its id", async () => {
    const client = createClient(EchoService, createConnectTransport({ baseUrl: gw.url, httpVersion: "2" }));
    await client.echo({ text: "hi", tag: "trace-new" });
    await settle();
    const [server] = spans(SpanKind.SERVER);
    expect(parentOf(server)).toBeUndefined();
    const seen = (await inspect(upstream.address, "trace-new")).lastMetadata.traceparent;
    expect(seen.split("-")[1]).toBe(server.spanContext().traceId);
  });
});
