import * as http from "node:http";
import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { Code, ConnectError, createContextKey, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService, DivideRequestSchema } from "../../../gen/demo/v1/calculator_pb.js";
import { GreeterService, GreetRequestSchema, GreetStreamRequestSchema } from "../../../gen/demo/v1/greeter_pb.js";
import { createCalculatorService } from "../../../src/services/calculator-service.js";
import { createGreeterService } from "../../../src/services/greeter-service.js";
import { createRpcDispatcher } from "../../../src/server/rpc-dispatcher.js";
import { SinglePortServer } from "../../../src/server/single-port-server.js";
import { createLogger } from "../../../src/ops/logger.js";
import { GatewayMetrics } from "../../../src/ops/metrics.js";
import { accessLogObserver } from "../../../src/interceptors/access-log.js";
import { observersInterceptor } from "../../../src/interceptors/call-observer.js";
import { metricsObserver } from "../../../src/interceptors/metrics.js";
import { requestIdObserver } from "../../../src/interceptors/request-id.js";
import { Writable } from "node:stream";

/**
 * The fast path must be indistinguishable from connect-node. Two servers with the same routes
 * and interceptors, one with the fast path and one without, get the same raw requests; status,
 * headers, trailers and body bytes must match.
 */

const MAX_MESSAGE_BYTES = 1024;

// An interceptor that reads the request, and adds headers and trailers, as auth or tracing would.
const tagging: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set("x-seen-client", req.header.get("x-client") ?? "none");
  res.trailer.set("x-handled-by", req.method.name);
  return res;
};
// An interceptor that fails a call based on a request header, with error metadata.
const refusing: Interceptor = (next) => async (req) => {
  if (req.header.get("x-refuse") === "yes") {
    throw new ConnectError("refused by interceptor", Code.PermissionDenied, { "x-reason": "test" });
  }
  return next(req);
};

// Whether each stream's request headers were the fast path's lazy view or connect-node's Headers.
const streamHeaderKinds: string[] = [];

function routes(router: ConnectRouter) {
  router.service(CalculatorService, createCalculatorService());
  // The greeter, plus an implementation that crashes with a plain Error and sets its own metadata.
  const greeter = createGreeterService();
  router.service(GreeterService, {
    ...greeter,
    greet(request, context) {
      context.responseHeader.set("x-greeter", "demo");
      context.responseTrailer.set("x-greeter-trailer", "done");
      if (request.name === "crash") throw new TypeError("secret internal detail");
      return greeter.greet(request, context);
    },
    // The demo stream, plus streams that set metadata and fail after their first message.
    async *greetStream(request, context) {
      streamHeaderKinds.push(context.requestHeader instanceof Headers ? "Headers" : "lazy view");
      if (request.name === "trailers") {
        context.responseHeader.set("x-stream", "started");
        yield { greeting: "only", sequence: 1 };
        context.responseTrailer.set("x-stream-trailer", "set");
        return;
      }
      if (!request.name.startsWith("midway")) {
        yield* greeter.greetStream(request, context);
        return;
      }
      context.responseHeader.set("x-stream", "started");
      yield { greeting: "first", sequence: 1 };
      context.responseTrailer.set("x-stream-trailer", "set");
      if (request.name === "midway-crash") throw new TypeError("secret stream detail");
      throw new ConnectError("gave up midway", Code.Aborted, { "x-why": "test" });
    },
  });
}

// A request gate as an auth layer would use it: it refuses before the body is read, sets
// response metadata, and hands a value to the interceptors through the context.
const gateUser = createContextKey<string>("anonymous", { description: "user set by the gate" });
const gate = (context: HandlerContext) => {
  context.responseHeader.set("x-gate", "checked");
  if (context.requestHeader.get("x-gate") === "deny") {
    throw new ConnectError("no entry", Code.Unauthenticated);
  }
  context.values.set(gateUser, context.requestHeader.get("x-user") ?? "anonymous");
};
const gateReader: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set("x-user-seen", req.contextValues.get(gateUser));
  return res;
};

/**
 * chain "custom": interceptors that change calls, and a request gate (the fast path runs the
 * generic interceptor chain). chain "observers": only the gateway's default observers (request
 * id, access log, metrics), which the fast path runs without the chain.
 */
async function startServer(fastPath: boolean, chain: "custom" | "observers" | "observers+gate" = "custom") {
  // Records whether each call's request headers were the fast path's lazy view or real Headers.
  const headerKinds: string[] = [];
  const probe: Interceptor = (next) => (req) => {
    headerKinds.push(req.header instanceof Headers ? "Headers" : "lazy view");
    return next(req);
  };
  const logLines: Record<string, unknown>[] = [];
  // Requests served on lean HTTP/1.1 connections (without node:http's request and response objects).
  const leanExchanges = { count: 0 };
  const logSink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const metrics = new GatewayMetrics({ enabled: true, runtime: false, buckets: [1, 10] });
  const observers = observersInterceptor([requestIdObserver(), accessLogObserver(createLogger("info", logSink)), metricsObserver(metrics)]);
  const dispatcher = createRpcDispatcher({
    routes,
    fastPath,
    fallback: (_req, res) => {
      res.statusCode = 404;
      res.end();
    },
    logger: createLogger("silent"),
    router: {
      interceptors: chain === "custom" ? [probe, refusing, tagging, gateReader] : [observers],
      requestGate: chain === "observers" ? undefined : gate,
      acceptCompression: [compressionGzip, compressionBrotli],
      readMaxBytes: MAX_MESSAGE_BYTES,
      writeMaxBytes: MAX_MESSAGE_BYTES,
      shutdownSignal: new AbortController().signal,
    },
  });
  const server = new SinglePortServer({
    onRequest: dispatcher.handleRequest,
    onStream: dispatcher.handleStream,
    // The fast server's HTTP/1.1 calls take the lean connections, as in the gateway.
    onHttp1Exchange: fastPath
      ? (exchange) => {
          const taken = dispatcher.handleHttp1Exchange(exchange);
          if (taken) leanExchanges.count++;
          return taken;
        }
      : undefined,
    // The fast server's h2c runs on the own HTTP/2 server (on Node's in the "node-http2" vitest
    // project), so its answers are compared with connect-node's on Node's.
    leanHttp2: fastPath && process.env.GATEWAY_LEAN_HTTP2 !== "false",
    logger: createLogger("silent"),
    limits: { maxHeaderBytes: 16384, headersTimeoutMs: 5000, idleTimeoutMs: 30000, maxConcurrentStreams: 100 },
  });
  const address = await server.listen(0, "127.0.0.1");
  return { port: address.port, server, headerKinds, logLines, metrics, leanExchanges };
}

interface Exchange {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: string;
}

// Framing and connection headers legitimately differ; everything else must not. (A lean
// HTTP/1.1 answer declares its length where node:http may send the same bytes chunked; the
// bodies are compared byte for byte.)
const ignoredHeaders = new Set(["date", "connection", "keep-alive", "transfer-encoding", "content-length"]);

function comparable(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(headers)
      .filter(([name]) => !ignoredHeaders.has(name))
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

function sendHttp2(port: number, path: string, headers: Record<string, string>, body: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    stream.on("response", (h) => (responseHeaders = { ...h }));
    stream.on("trailers", (t) => (trailers = { ...t }));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      session.close();
      const { ":status": status, ...rest } = responseHeaders;
      resolve({ status: Number(status), headers: comparable(rest), trailers: comparable(trailers), body: Buffer.concat(chunks).toString("hex") });
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

function sendHttp1(port: number, path: string, headers: Record<string, string>, body: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    // A keep-alive connection of its own, as browsers and HTTP client libraries ask for
    // (Node's agent: false would send Connection: close).
    const agent = new http.Agent({ keepAlive: true });
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        agent.destroy();
        resolve({
          status: res.statusCode ?? 0,
          headers: comparable({ ...res.headers }),
          trailers: comparable({ ...res.trailers }),
          body: Buffer.concat(chunks).toString("hex"),
        });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

function envelope(message: Uint8Array, flags = 0, declaredLength = message.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, message]);
}

const divide = (dividend: number, divisor: number) => toBinary(DivideRequestSchema, create(DivideRequestSchema, { dividend, divisor }));
const greet = (name: string) => toBinary(GreetRequestSchema, create(GreetRequestSchema, { name }));
const greetStream = (name: string, count: number) => toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name, count }));

interface Case {
  name: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

const DIVIDE = "/demo.v1.CalculatorService/Divide";
const GREET = "/demo.v1.GreeterService/Greet";
const grpc = { "content-type": "application/grpc", te: "trailers" };
const grpcWeb = { "content-type": "application/grpc-web+proto" };
const connectJson = { "content-type": "application/json" };
const connectProto = { "content-type": "application/proto" };

const cases: Case[] = [];
for (const [label, headers, encode] of [
  ["grpc", grpc, (m: Uint8Array) => envelope(m)],
  ["grpc-web", grpcWeb, (m: Uint8Array) => envelope(m)],
  ["connect-proto", connectProto, (m: Uint8Array) => Buffer.from(m)],
] as const) {
  cases.push(
    { name: `${label}: valid call`, path: DIVIDE, headers, body: encode(divide(10, 4)) },
    { name: `${label}: implementation error`, path: DIVIDE, headers, body: encode(divide(1, 0)) },
    { name: `${label}: error from another service`, path: GREET, headers, body: encode(greet("")) },
    { name: `${label}: implementation crash with its own metadata`, path: GREET, headers, body: encode(greet("crash")) },
    { name: `${label}: interceptor reads a header`, path: DIVIDE, headers: { ...headers, "x-client": "c-1" }, body: encode(divide(3, 1)) },
    { name: `${label}: interceptor refuses with metadata`, path: DIVIDE, headers: { ...headers, "x-refuse": "yes" }, body: encode(divide(3, 1)) },
    { name: `${label}: message over the size limit`, path: GREET, headers, body: encode(greet("x".repeat(2000))) },
    { name: `${label}: client accepts gzip`, path: DIVIDE, headers: { ...headers, "grpc-accept-encoding": "gzip", "accept-encoding": "gzip" }, body: encode(divide(9, 3)) },
    { name: `${label}: garbage protobuf`, path: DIVIDE, headers, body: encode(Uint8Array.from([0xff, 0xff, 0xff, 0xff])) },
    { name: `${label}: request gate refuses`, path: DIVIDE, headers: { ...headers, "x-gate": "deny" }, body: encode(divide(1, 1)) },
    { name: `${label}: request gate passes a value on`, path: DIVIDE, headers: { ...headers, "x-user": "ada" }, body: encode(divide(1, 1)) },
    { name: `${label}: empty body`, path: DIVIDE, headers, body: Buffer.alloc(0) },
  );
}
for (const [label, headers] of [["grpc", grpc], ["grpc-web", grpcWeb]] as const) {
  cases.push(
    { name: `${label}: length prefix longer than the body`, path: DIVIDE, headers, body: envelope(divide(1, 2), 0, 40) },
    { name: `${label}: length prefix shorter than the body`, path: DIVIDE, headers, body: envelope(divide(1, 2), 0, 2) },
    { name: `${label}: compressed flag without grpc-encoding`, path: DIVIDE, headers, body: envelope(divide(1, 2), 1) },
    { name: `${label}: two messages for a unary method`, path: DIVIDE, headers, body: Buffer.concat([envelope(divide(1, 2)), envelope(divide(3, 4))]) },
    { name: `${label}: gzip-compressed request`, path: DIVIDE, headers: { ...headers, "grpc-encoding": "gzip" }, body: envelope(gzipSync(divide(8, 2)), 1) },
    { name: `${label}: unknown grpc-encoding`, path: DIVIDE, headers: { ...headers, "grpc-encoding": "snappy" }, body: envelope(divide(8, 2)) },
    { name: `${label}: a deadline`, path: DIVIDE, headers: { ...headers, "grpc-timeout": "5S" }, body: envelope(divide(8, 2)) },
    { name: `${label}: an error under a deadline`, path: DIVIDE, headers: { ...headers, "grpc-timeout": "100m" }, body: envelope(divide(8, 0)) },
    { name: `${label}: a deadline too long to express`, path: DIVIDE, headers: { ...headers, "grpc-timeout": "123456789S" }, body: envelope(divide(8, 2)) },
    { name: `${label}: an invalid deadline`, path: DIVIDE, headers: { ...headers, "grpc-timeout": "soon" }, body: envelope(divide(8, 2)) },
  );
}
cases.push(
  { name: "connect-json: valid call", path: DIVIDE, headers: connectJson, body: Buffer.from('{"dividend":10,"divisor":4}') },
  { name: "connect-json: unknown fields are ignored", path: DIVIDE, headers: connectJson, body: Buffer.from('{"dividend":1,"divisor":2,"extra":true}') },
  { name: "connect-json: implementation error", path: DIVIDE, headers: connectJson, body: Buffer.from('{"dividend":1,"divisor":0}') },
  { name: "connect-json: malformed JSON", path: DIVIDE, headers: connectJson, body: Buffer.from('{"dividend":1,') },
  { name: "connect-json: wrong field type", path: DIVIDE, headers: connectJson, body: Buffer.from('{"dividend":"many"}') },
  { name: "connect-json: interceptor metadata", path: DIVIDE, headers: { ...connectJson, "x-client": "c-2" }, body: Buffer.from('{"dividend":1,"divisor":1}') },
  { name: "connect-json: interceptor refuses", path: DIVIDE, headers: { ...connectJson, "x-refuse": "yes" }, body: Buffer.from("{}") },
  { name: "connect-json: over the size limit", path: GREET, headers: connectJson, body: Buffer.from(JSON.stringify({ name: "y".repeat(2000) })) },
  { name: "connect-json: protocol version 1", path: DIVIDE, headers: { ...connectJson, "connect-protocol-version": "1" }, body: Buffer.from('{"divisor":5}') },
  { name: "connect-json: unsupported protocol version", path: DIVIDE, headers: { ...connectJson, "connect-protocol-version": "2" }, body: Buffer.from('{"divisor":5}') },
  { name: "connect-json: a deadline", path: DIVIDE, headers: { ...connectJson, "connect-timeout-ms": "5000" }, body: Buffer.from('{"divisor":5}') },
  { name: "connect-json: gzip-compressed request", path: DIVIDE, headers: { ...connectJson, "content-encoding": "gzip" }, body: gzipSync('{"divisor":5}') },
  { name: "connect-json: charset parameter", path: DIVIDE, headers: { "content-type": "application/json; charset=utf-8" }, body: Buffer.from('{"divisor":5}') },
  { name: "connect: wrong content-type", path: DIVIDE, headers: { "content-type": "text/plain" }, body: Buffer.from("hello") },
);

type Server = Awaited<ReturnType<typeof startServer>>;
type Send = typeof sendHttp2;

/** Each case over both HTTP versions; gRPC proper only over HTTP/2 (over HTTP/1.1 both paths hand it to connect-node anyway). */
function eachOverBothVersions(list: Case[], define: (testCase: Case, version: string, send: Send) => void): void {
  for (const testCase of list) {
    for (const version of ["HTTP/2", "HTTP/1.1"] as const) {
      if (version === "HTTP/1.1" && testCase.headers["content-type"] === "application/grpc") continue;
      define(testCase, version, version === "HTTP/2" ? sendHttp2 : sendHttp1);
    }
  }
}

/** The same request to the server with the fast path and to the reference, answered side by side. */
function sendToBoth(fast: Server, reference: Server, send: Send, testCase: Case, headers = testCase.headers): Promise<[Exchange, Exchange]> {
  return Promise.all([send(fast.port, testCase.path, headers, testCase.body), send(reference.port, testCase.path, headers, testCase.body)]);
}

describe("fast path and connect-node answer byte for byte alike", () => {
  let fast: Server;
  let reference: Server;
  beforeAll(async () => {
    [fast, reference] = await Promise.all([startServer(true), startServer(false)]);
  });
  afterAll(() => {
    fast.server.destroyAll();
    reference.server.destroyAll();
  });

  eachOverBothVersions(cases, (testCase, version, send) => {
    it(`${testCase.name} over ${version}`, async () => {
      const [fromFast, fromReference] = await sendToBoth(fast, reference, send, testCase);
      expect(fromFast).toEqual(fromReference);
      expect(fromReference.status).toBeGreaterThan(0);
    });
  });

  it("really serves plain calls on the fast path, and only there", async () => {
    fast.headerKinds.length = 0;
    reference.headerKinds.length = 0;
    const leanBefore = fast.leanExchanges.count;
    for (const send of [sendHttp2, sendHttp1]) {
      for (const server of [fast, reference]) {
        await send(server.port, DIVIDE, grpcWeb, envelope(divide(10, 4)));
        await send(server.port, DIVIDE, connectJson, Buffer.from("{}"));
      }
    }
    await sendHttp2(fast.port, DIVIDE, grpc, envelope(divide(10, 4)));
    await sendHttp2(fast.port, DIVIDE, { ...grpc, "grpc-timeout": "2S" }, envelope(divide(10, 4)));
    expect(fast.headerKinds).toEqual(Array(6).fill("lazy view"));
    expect(reference.headerKinds).toEqual(Array(4).fill("Headers"));
    // Both HTTP/1.1 calls to the fast server were served on lean connections.
    expect(fast.leanExchanges.count - leanBefore).toBe(2);
    expect(reference.leanExchanges.count).toBe(0);
  });

  it("never leaks an implementation's internal error message", async () => {
    const result = await sendHttp2(fast.port, GREET, grpc, envelope(greet("crash")));
    expect(result.trailers["grpc-status"]).toBe(String(Code.Internal));
    expect(result.trailers["grpc-message"]).toBe("internal error");
    expect(JSON.stringify(result)).not.toContain("secret");
  });
});

describe("the default observers (request id, access log, metrics) act alike on both paths", () => {
  let fast: Server;
  let reference: Server;
  beforeAll(async () => {
    [fast, reference] = await Promise.all([startServer(true, "observers"), startServer(false, "observers")]);
  });
  afterAll(() => {
    fast.server.destroyAll();
    reference.server.destroyAll();
  });

  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const ANY_UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
  // A generated request id differs per server; everything else must not.
  const masked = (exchange: Exchange) => {
    const mask = (headers: Record<string, unknown>) => {
      const id = headers["x-request-id"];
      return typeof id === "string" && UUID.test(id) ? { ...headers, "x-request-id": "<generated>" } : headers;
    };
    // gRPC-web carries it in the trailer frame at the end of the body.
    const body = Buffer.from(exchange.body, "hex").toString("latin1").replace(ANY_UUID, "<generated>");
    return { ...exchange, headers: mask(exchange.headers), trailers: mask(exchange.trailers), body };
  };
  // Where the client finds the request id: a header, an HTTP trailer, gRPC-web's trailer frame,
  // or the metadata of Connect's end-of-stream message.
  const returnedIdOf = (exchange: Exchange) => {
    const body = Buffer.from(exchange.body, "hex").toString("latin1");
    return (
      exchange.headers["x-request-id"] ??
      exchange.trailers["x-request-id"] ??
      /x-request-id: ([^\r]+)\r\n/.exec(body)?.[1] ??
      /"x-request-id":\["([^"]+)"\]/.exec(body)?.[1]
    );
  };
  const logLine = (line: Record<string, unknown>) => {
    const { time, durationMs, requestId, ...rest } = line;
    expect(typeof time).toBe("string");
    expect(typeof durationMs).toBe("number");
    return { ...rest, requestId: typeof requestId === "string" && UUID.test(requestId) ? "<generated>" : requestId };
  };
  const GREET_STREAM = "/demo.v1.GreeterService/GreetStream";
  const streamCases: Case[] = [];
  const connectStreamProto = { "content-type": "application/connect+proto" };
  for (const [label, headers] of [["grpc", grpc], ["grpc-web", grpcWeb], ["connect-stream-proto", connectStreamProto]] as const) {
    streamCases.push(
      { name: `${label} stream: three messages`, path: GREET_STREAM, headers, body: envelope(greetStream("Ada", 3)) },
      { name: `${label} stream: refused before the first message`, path: GREET_STREAM, headers, body: envelope(greetStream("Ada", 0)) },
      { name: `${label} stream: metadata, then an error after a message`, path: GREET_STREAM, headers, body: envelope(greetStream("midway", 1)) },
      { name: `${label} stream: headers and trailers of its own, success`, path: GREET_STREAM, headers, body: envelope(greetStream("trailers", 1)) },
      { name: `${label} stream: a crash after a message`, path: GREET_STREAM, headers, body: envelope(greetStream("midway-crash", 1)) },
      { name: `${label} stream: garbage request`, path: GREET_STREAM, headers, body: envelope(Uint8Array.from([0xff, 0xff])) },
      { name: `${label} stream: a deadline`, path: GREET_STREAM, headers: { ...headers, "grpc-timeout": "5S" }, body: envelope(greetStream("Ada", 2)) },
      { name: `${label} stream: client accepts gzip`, path: GREET_STREAM, headers: { ...headers, "grpc-accept-encoding": "gzip", "connect-accept-encoding": "gzip" }, body: envelope(greetStream("Ada", 2)) },
    );
  }
  const connectStreamJson = { "content-type": "application/connect+json" };
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  streamCases.push(
    { name: "connect-stream-json stream: three messages", path: GREET_STREAM, headers: connectStreamJson, body: envelope(json({ name: "Ada", count: 3 })) },
    { name: "connect-stream-json stream: refused before the first message", path: GREET_STREAM, headers: connectStreamJson, body: envelope(json({ name: "Ada" })) },
    { name: "connect-stream-json stream: metadata, then an error after a message", path: GREET_STREAM, headers: connectStreamJson, body: envelope(json({ name: "midway", count: 1 })) },
    { name: "connect-stream-json stream: a crash after a message", path: GREET_STREAM, headers: connectStreamJson, body: envelope(json({ name: "midway-crash", count: 1 })) },
    { name: "connect-stream-json stream: malformed JSON", path: GREET_STREAM, headers: connectStreamJson, body: envelope(Buffer.from('{"name":')) },
    { name: "connect-stream-json stream: a deadline", path: GREET_STREAM, headers: { ...connectStreamJson, "connect-timeout-ms": "5000" }, body: envelope(json({ name: "Ada", count: 2 })) },
    { name: "connect-stream-json stream: protocol version 1", path: GREET_STREAM, headers: { ...connectStreamJson, "connect-protocol-version": "1" }, body: envelope(json({ name: "Ada", count: 1 })) },
    { name: "connect-stream-json stream: unary content-type", path: GREET_STREAM, headers: { "content-type": "application/json" }, body: json({ name: "Ada", count: 1 }) },
  );
  const observed = [
    ...cases.filter((c) => /valid call|implementation error|crash|size limit|garbage protobuf|a deadline$/.test(c.name)),
    ...streamCases,
  ];
  // connect-node refuses these requests before any interceptor runs: no request id, no log
  // line, on both paths. (A stream's request is read inside the chain: its garbage is observed.
  // The gateway's own onRefused logs a 415 and returns its id: test/interceptors/access-log.test.ts.)
  const refusedBeforeTheChain = /size limit|garbage protobuf|unary content-type/;

  eachOverBothVersions(observed, (testCase, version, send) => {
    for (const clientId of [undefined, "client-chosen-id-1"]) {
      it(`${testCase.name} over ${version}, ${clientId ? "with" : "without"} x-request-id`, async () => {
        const headers = clientId ? { ...testCase.headers, "x-request-id": clientId } : testCase.headers;
        fast.logLines.length = 0;
        reference.logLines.length = 0;
        const [fromFast, fromReference] = await sendToBoth(fast, reference, send, testCase, headers);
        expect(masked(fromFast)).toEqual(masked(fromReference));
        await new Promise((resolve) => setTimeout(resolve, 10));
        expect(fast.logLines.map(logLine)).toEqual(reference.logLines.map(logLine));
        const returnedId = returnedIdOf(fromFast);
        if (refusedBeforeTheChain.test(testCase.name)) {
          expect(returnedId).toBeUndefined();
          expect(fast.logLines).toHaveLength(0);
          return;
        }
        expect(returnedId).toSatisfy((id: unknown) => (clientId ? id === clientId : typeof id === "string" && UUID.test(id)));
        expect(fast.logLines).toHaveLength(1);
        expect(fast.logLines[0].requestId).toBe(returnedId);
      });
    }
  });

  it("really serve plain server streams on the fast path, and only there", async () => {
    const body = envelope(greetStream("Ada", 2));
    const kindsFor = async (send: typeof sendHttp2, port: number, headers: Record<string, string>) => {
      streamHeaderKinds.length = 0;
      await send(port, "/demo.v1.GreeterService/GreetStream", headers, body);
      return streamHeaderKinds.slice();
    };
    expect(await kindsFor(sendHttp2, fast.port, grpc)).toEqual(["lazy view"]);
    expect(await kindsFor(sendHttp1, fast.port, grpcWeb)).toEqual(["lazy view"]);
    expect(await kindsFor(sendHttp1, fast.port, { "content-type": "application/connect+proto" })).toEqual(["lazy view"]);
    // A deadline or a compressing client leaves the stream to connect-node.
    expect(await kindsFor(sendHttp2, fast.port, { ...grpc, "grpc-timeout": "5S" })).toEqual(["Headers"]);
    expect(await kindsFor(sendHttp2, fast.port, { ...grpc, "grpc-accept-encoding": "gzip" })).toEqual(["Headers"]);
    // The same calls to the reference, which has no fast path (and so the metrics stay comparable).
    expect(await kindsFor(sendHttp2, reference.port, grpc)).toEqual(["Headers"]);
    expect(await kindsFor(sendHttp1, reference.port, grpcWeb)).toEqual(["Headers"]);
    expect(await kindsFor(sendHttp1, reference.port, { "content-type": "application/connect+proto" })).toEqual(["Headers"]);
    expect(await kindsFor(sendHttp2, reference.port, { ...grpc, "grpc-timeout": "5S" })).toEqual(["Headers"]);
    expect(await kindsFor(sendHttp2, reference.port, { ...grpc, "grpc-accept-encoding": "gzip" })).toEqual(["Headers"]);
  });

  it("count the same calls, codes and messages", async () => {
    const counters = async (metrics: GatewayMetrics) =>
      (await metrics.registry.metrics())
        .split("\n")
        .filter((line) => /^grpc_server_(started_total|handled_total|msg_received_total|msg_sent_total|in_flight)\{/.test(line))
        .sort();
    const fromFast = await counters(fast.metrics);
    expect(fromFast.length).toBeGreaterThan(10);
    expect(fromFast).toEqual(await counters(reference.metrics));
    expect(fromFast.join("\n")).toMatch(/grpc_server_handled_total\{[^}]*grpc_code="InvalidArgument"[^}]*\} [1-9]/);
  });
});

describe("a request gate in front of observer-only chains acts alike on both paths, streams included", () => {
  let fast: Server;
  let reference: Server;
  beforeAll(async () => {
    [fast, reference] = await Promise.all([startServer(true, "observers+gate"), startServer(false, "observers+gate")]);
  });
  afterAll(() => {
    fast.server.destroyAll();
    reference.server.destroyAll();
  });

  const GREET_STREAM = "/demo.v1.GreeterService/GreetStream";
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const gated: Case[] = [];
  for (const [label, headers, body] of [
    ["grpc", grpc, envelope(greetStream("Ada", 2))],
    ["grpc-web", grpcWeb, envelope(greetStream("Ada", 2))],
    ["connect-stream-proto", { "content-type": "application/connect+proto" }, envelope(greetStream("Ada", 2))],
    ["connect-stream-json", { "content-type": "application/connect+json" }, envelope(json({ name: "Ada", count: 2 }))],
  ] as const) {
    gated.push(
      { name: `${label} stream: the gate lets it through`, path: GREET_STREAM, headers: { ...headers, "x-request-id": "fixed" }, body },
      { name: `${label} stream: the gate refuses it`, path: GREET_STREAM, headers: { ...headers, "x-request-id": "fixed", "x-gate": "deny" }, body },
    );
  }
  gated.push(
    { name: "grpc unary: the gate refuses it", path: DIVIDE, headers: { ...grpc, "x-request-id": "fixed", "x-gate": "deny" }, body: envelope(divide(1, 1)) },
    { name: "connect-json unary: the gate refuses it", path: DIVIDE, headers: { ...connectJson, "x-request-id": "fixed", "x-gate": "deny" }, body: Buffer.from("{}") },
  );

  eachOverBothVersions(gated, (testCase, version, send) => {
    it(`${testCase.name} over ${version}`, async () => {
      const [fromFast, fromReference] = await sendToBoth(fast, reference, send, testCase);
      expect(fromFast).toEqual(fromReference);
      expect(fromReference.status).toBeGreaterThan(0);
    });
  });
});
