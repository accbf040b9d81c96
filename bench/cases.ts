/**
 * The benchmark cases. A load case is one request (as exact bytes) and one driver setting;
 * the runner applies it to every server that serves its protocol (or to `servers` if given),
 * verifies one call before and after, and measures. To add a case, add an entry here.
 */
import { GreetRequestSchema, GreetResponseSchema, GreetStreamRequestSchema, GreetStreamResponseSchema } from "../gen/demo/v1/greeter_pb.js";
import { EchoRequestSchema, EchoResponseSchema } from "../gen/test/upstream/v1/echo_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { DEFAULT_SERVERS, GRPC_JS_ON_GATEWAY_ALLOCATOR_ID, NODE_HTTP2_GRPC_ID, type Protocol } from "./servers/registry.js";
import { GATEWAY_ALLOCATOR } from "./lib/proc.js";
import { wireRequest, type WireProtocol, type WireRequest } from "./lib/wire.js";

export type Driver =
  /**
   * `rps`: a fixed rate per connection (h2load --rps) instead of as fast as the server answers.
   * h2load's rate timer fires at most every 10 ms and sends what is due at once, so one connection
   * at 2,000/s sends 20-call bursts. `staggerMs` opens the connections that many ms apart instead
   * (their timers then take turns), which spreads the same total rate evenly.
   */
  | { tool: "h2load"; clients: number; streams: number; rps?: number; staggerMs?: number }
  | { tool: "wrk"; connections: number };

export interface LoadCase {
  kind: "load";
  id: string;
  group: string;
  title: string;
  protocol: Protocol;
  /** Restrict to these server ids (default: those of DEFAULT_SERVERS serving `protocol`). */
  servers?: readonly string[];
  /**
   * The case's reference peers, each one of `servers`: a floor, a plain Node program doing only
   * the serving or forwarding on Node's own http/http2 modules (how far Node itself gets on this
   * machine), and for the proxy cases a native proxy (how far a proxy not written in JavaScript
   * gets on the same host). The targets section reports what each reaches on a target's measure.
   */
  references?: readonly Reference[];
  /** What one operation is: a call, or (server streaming) one response message. */
  unit: "call" | "msg";
  driver: Driver;
  /**
   * Rounds of this case last at least this long whatever --duration says: at a fixed rate, a
   * p99 needs many calls per round to be more than one scheduling hiccup of the machine.
   */
  minRoundSec?: number;
  request(): WireRequest;
  /** Part of `--quick`. */
  quick: boolean;
}

export interface Reference {
  server: string;
  /** How the report's line names it before its result, e.g. "floor, a plain Node program doing only the forwarding". */
  label: string;
}

export interface MemoryCase {
  kind: "memory";
  id: string;
  group: string;
  title: string;
  protocol: Protocol;
  servers: readonly string[];
  mode: "idle" | "streams";
  quick: boolean;
}

export type BenchCase = LoadCase | MemoryCase;

const wireOf: Record<Protocol, WireProtocol> = {
  grpc: "grpc",
  "grpc-web": "grpc-web",
  "connect-h2": "connect-json",
  "connect-h1": "connect-json",
};

const greet = (protocol: Protocol) => () =>
  wireRequest({
    protocol: wireOf[protocol],
    path: "/demo.v1.GreeterService/Greet",
    input: GreetRequestSchema,
    output: GreetResponseSchema,
    request: { name: "bench" },
    check(reply) {
      if (reply.greeting !== "Hello, bench!") throw new Error(`unexpected greeting ${JSON.stringify(reply.greeting)}`);
    },
  });

const healthCheck = () =>
  wireRequest({
    protocol: "grpc",
    path: "/grpc.health.v1.Health/Check",
    input: HealthCheckRequestSchema,
    output: HealthCheckResponseSchema,
    request: { service: "" },
    check(reply) {
      if (reply.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error(`health status ${reply.status}, not SERVING`);
    },
  });

/** Echo on the proxy cases' upstream (servers/echo-upstream-server.ts), directly or through the gateway. */
const echo = () =>
  wireRequest({
    protocol: "grpc",
    path: "/test.upstream.v1.EchoService/Echo",
    input: EchoRequestSchema,
    output: EchoResponseSchema,
    request: { text: "bench" },
    check(reply) {
      if (reply.text !== "bench") throw new Error(`unexpected echo ${JSON.stringify(reply.text)}`);
    },
  });

/** GreetStream whose greetings ("Hello, <name>!") are `messageBytes` long: the name carries the size. */
const greetStream = (messageBytes: number, count: number) => () => {
  const name = "x".repeat(messageBytes - "Hello, !".length);
  const expected = `Hello, ${name}!`;
  return wireRequest({
    protocol: "grpc",
    path: "/demo.v1.GreeterService/GreetStream",
    input: GreetStreamRequestSchema,
    output: GreetStreamResponseSchema,
    request: { name, count, intervalMs: 0 },
    messages: count,
    check(reply) {
      if (reply.greeting !== expected) throw new Error(`unexpected greeting of ${reply.greeting.length} characters`);
    },
  });
};

const STREAM_SERVERS = ["gateway", "grpc-js", "connect-node"] as const;
const MEMORY_SERVERS = ["gateway", "grpc-js", "connect-node"] as const;
/** The upstream called directly, through the gateway's route, and through the two reference forwarders to that same process. */
const PROXY_SERVERS = ["echo-upstream", "gateway-proxy", "node-http2-proxy", "nghttpx-proxy"] as const;
const PROXY_REFERENCES: readonly Reference[] = [
  { server: "node-http2-proxy", label: "floor, a plain Node program doing only the forwarding" },
  { server: "nghttpx-proxy", label: "native reference, nghttpx (nghttp2's C++ reverse proxy, one thread) forwarding the same calls" },
];
/** The default servers of a case, plus what node:http alone reaches on the same call. */
const CONNECT_H1_SERVERS = [...DEFAULT_SERVERS, "node-http1-json"] as const;
// The gateway's image preloads its own allocator (GATEWAY_ALLOCATOR, Dockerfile); the peer
// runs on glibc's malloc, as a plain server does. One reference runs the same peer on the
// gateway's allocator, so the report shows the lead that is the allocator's and the gateway's own;
// the other is the floor, the same call on node:http2's public API alone.
const GRPC_1X100_SERVERS = [...DEFAULT_SERVERS, GRPC_JS_ON_GATEWAY_ALLOCATOR_ID, NODE_HTTP2_GRPC_ID] as const;
const GRPC_FLOOR_REFERENCE: Reference = { server: NODE_HTTP2_GRPC_ID, label: "floor, a plain Node program doing only the serving" };
const GRPC_1X100_REFERENCES: readonly Reference[] = [
  { server: GRPC_JS_ON_GATEWAY_ALLOCATOR_ID, label: `the peer on the gateway's allocator (${GATEWAY_ALLOCATOR.name} preloaded)` },
  GRPC_FLOOR_REFERENCE,
];
/** Greet at a fixed moderate rate: the gRPC servers and the floor (connect-node's ceiling is about this rate). */
const GRPC_2K_SERVERS = ["gateway", "gateway+log", "grpc-js", NODE_HTTP2_GRPC_ID] as const;

export const CASES: readonly BenchCase[] = [
  // gRPC unary, small message, at three concurrencies (connections × streams per connection).
  { kind: "load", id: "grpc-unary-1x1", group: "grpc", title: "gRPC unary Greet 1×1", protocol: "grpc", unit: "call", driver: { tool: "h2load", clients: 1, streams: 1 }, request: greet("grpc"), quick: false },
  { kind: "load", id: "grpc-unary-1x100", group: "grpc", title: "gRPC unary Greet 1×100", protocol: "grpc", servers: GRPC_1X100_SERVERS, references: GRPC_1X100_REFERENCES, unit: "call", driver: { tool: "h2load", clients: 1, streams: 100 }, request: greet("grpc"), quick: true },
  { kind: "load", id: "grpc-unary-8x32", group: "grpc", title: "gRPC unary Greet 8×32", protocol: "grpc", unit: "call", driver: { tool: "h2load", clients: 8, streams: 32 }, request: greet("grpc"), quick: false },
  { kind: "load", id: "grpc-health-1x100", group: "grpc", title: "gRPC unary Health/Check 1×100", protocol: "grpc", unit: "call", driver: { tool: "h2load", clients: 1, streams: 100 }, request: healthCheck, quick: true },
  // The proxy cases' even 2,000 calls/s (see below) on calls the servers answer themselves: the
  // tail latency at moderate load with no upstream, beside the peer and the floor.
  { kind: "load", id: "grpc-unary-2k-even", group: "grpc", title: "gRPC unary Greet, 2,000 calls/s spread evenly (10×2)", protocol: "grpc", servers: GRPC_2K_SERVERS, references: [GRPC_FLOOR_REFERENCE], unit: "call", driver: { tool: "h2load", clients: 10, streams: 2, rps: 200, staggerMs: 1 }, minRoundSec: 3, request: greet("grpc"), quick: false },
  // Connect JSON unary over HTTP/1.1 (wrk: one call in flight per connection) and over h2c.
  { kind: "load", id: "connect-json-h1", group: "connect", title: "Connect JSON unary HTTP/1.1 ×50", protocol: "connect-h1", servers: CONNECT_H1_SERVERS, references: [{ server: "node-http1-json", label: "floor, a plain Node program doing only the serving" }], unit: "call", driver: { tool: "wrk", connections: 50 }, request: greet("connect-h1"), quick: true },
  { kind: "load", id: "connect-json-h2", group: "connect", title: "Connect JSON unary h2c 1×100", protocol: "connect-h2", unit: "call", driver: { tool: "h2load", clients: 1, streams: 100 }, request: greet("connect-h2"), quick: true },
  // gRPC-web (binary) over h2c.
  { kind: "load", id: "grpc-web-1x100", group: "grpc-web", title: "gRPC-web unary h2c 1×100", protocol: "grpc-web", unit: "call", driver: { tool: "h2load", clients: 1, streams: 100 }, request: greet("grpc-web"), quick: true },
  // Server-streaming throughput: rate is messages/s, latency is per whole stream.
  { kind: "load", id: "stream-1k", group: "stream", title: "gRPC stream 1 KiB ×1000/stream, 1×4", protocol: "grpc", servers: STREAM_SERVERS, unit: "msg", driver: { tool: "h2load", clients: 1, streams: 4 }, request: greetStream(1024, 1000), quick: true },
  { kind: "load", id: "stream-64k", group: "stream", title: "gRPC stream 64 KiB ×100/stream, 1×2", protocol: "grpc", servers: STREAM_SERVERS, unit: "msg", driver: { tool: "h2load", clients: 1, streams: 2 }, request: greetStream(64 * 1024, 100), quick: true },
  // The proxy path: client → gateway → @grpc/grpc-js upstream, next to the direct call to the
  // same upstream process; at full speed (throughput) and at a moderate fixed rate (latency added).
  { kind: "load", id: "proxy-unary-1x100", group: "proxy", title: "gRPC unary Echo via proxy 1×100", protocol: "grpc", servers: PROXY_SERVERS, references: PROXY_REFERENCES, unit: "call", driver: { tool: "h2load", clients: 1, streams: 100 }, request: echo, quick: true },
  // 2,000 calls/s two ways: spread evenly (10 connections opened 1 ms apart, 2 calls each per
  // 10 ms: 2 calls every millisecond), and as h2load sends it on one connection (20 calls at once
  // every 10 ms, at most 10 in flight): the added latency at moderate load, and in bursts.
  { kind: "load", id: "proxy-unary-2k-even", group: "proxy", title: "gRPC unary Echo via proxy, 2,000 calls/s spread evenly (10×2)", protocol: "grpc", servers: PROXY_SERVERS, references: PROXY_REFERENCES, unit: "call", driver: { tool: "h2load", clients: 10, streams: 2, rps: 200, staggerMs: 1 }, minRoundSec: 3, request: echo, quick: true },
  { kind: "load", id: "proxy-unary-2k-bursts", group: "proxy", title: "gRPC unary Echo via proxy, 2,000 calls/s in 20-call bursts (1×10)", protocol: "grpc", servers: PROXY_SERVERS, references: PROXY_REFERENCES, unit: "call", driver: { tool: "h2load", clients: 1, streams: 10, rps: 2000 }, minRoundSec: 3, request: echo, quick: true },
  // Memory, each server freshly started.
  { kind: "memory", id: "mem-idle-conns", group: "memory", title: "idle HTTP/2 connections", protocol: "grpc", servers: MEMORY_SERVERS, mode: "idle", quick: true },
  { kind: "memory", id: "mem-open-streams", group: "memory", title: "open server streams (GreetStream)", protocol: "grpc", servers: MEMORY_SERVERS, mode: "streams", quick: true },
];

/**
 * The targets: reported after each run, never asserted. When the target's case has
 * reference peers (`references`), the report adds what each reaches on the same measure.
 */
export interface Target {
  description: string;
  case: string;
  server: string;
  peer: string;
  /** How the report's lines name the peer (default: its id). */
  peerName?: string;
  /** Met when the server's rate ÷ the peer's rate is at least this. */
  atLeast?: number;
  /** Met when the server's p99 − the peer's p99 is at most this many ms (on a reportOnly line it only picks that measure). */
  p99AddedMsAtMost?: number;
  /** Printed with its measure for comparison, but not one of the targets (never "met"). */
  reportOnly?: boolean;
}

export const TARGETS: readonly Target[] = [
  { description: "gRPC unary 1×100 (Greet): connect-gateway ≥ 1.2× @grpc/grpc-js req/s", case: "grpc-unary-1x100", server: "gateway", peer: "grpc-js", atLeast: 1.2 },
  { description: "gRPC unary 1×100 (Greet), access log and metrics on: connect-gateway ≥ 1.0× @grpc/grpc-js req/s", case: "grpc-unary-1x100", server: "gateway+log", peer: "grpc-js", atLeast: 1.0 },
  { description: "gRPC unary 1×100 (Health/Check): connect-gateway ≥ 1.2× @grpc/grpc-js req/s", case: "grpc-health-1x100", server: "gateway", peer: "grpc-js", atLeast: 1.2 },
  { description: "gRPC unary Greet at a moderate 2,000 calls/s spread evenly, answered by the gateway itself: its p99 against @grpc/grpc-js's", case: "grpc-unary-2k-even", server: "gateway", peer: "grpc-js", p99AddedMsAtMost: 0, reportOnly: true },
  { description: "Connect JSON unary HTTP/1.1: connect-gateway ≥ 5× bare connect-node req/s", case: "connect-json-h1", server: "gateway", peer: "connect-node", peerName: "bare connect-node", atLeast: 5 },
  { description: "gRPC unary 1×100 via proxy: gateway → grpc-js upstream ≥ 0.6× the direct call's req/s", case: "proxy-unary-1x100", server: "gateway-proxy", peer: "echo-upstream", peerName: "the direct call", atLeast: 0.6 },
  { description: "gRPC unary via proxy at a moderate 2,000 calls/s, spread evenly: ≤ 2 ms p99 added to the direct call's", case: "proxy-unary-2k-even", server: "gateway-proxy", peer: "echo-upstream", peerName: "the direct call", p99AddedMsAtMost: 2 },
  { description: "the same rate in 20-call bursts", case: "proxy-unary-2k-bursts", server: "gateway-proxy", peer: "echo-upstream", peerName: "the direct call", p99AddedMsAtMost: 2, reportOnly: true },
];
