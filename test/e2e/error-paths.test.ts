/**
 * Error paths, each over every client, protocol and HTTP version where it applies, each
 * followed by a normal call on every protocol to show the gateway kept serving.
 *
 * One gateway for the whole file, with a 1 KiB message limit (every normal call here is far
 * below it) and otherwise default limits.
 */
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService, DivideRequestSchema } from "../../gen/demo/v1/calculator_pb.js";
import {
  GreeterService,
  GreetRequestSchema,
  GreetResponseSchema,
  GreetStreamRequestSchema,
} from "../../gen/demo/v1/greeter_pb.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { connectNodeTransports, type TransportMatrix } from "../support/connect-transports.js";
import { connectGetQuery, curl, type CurlHttpVersion } from "../support/curl.js";
import {
  CONNECT_END_STREAM_FLAG,
  decodeEnvelopes,
  encodeEnvelope,
  GRPC_WEB_TRAILER_FLAG,
  parseGrpcWebTrailers,
} from "../support/envelope.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary } from "../support/grpc-js-client.js";
import {
  bufCurlProbes,
  connectHttpStatus,
  connectNodeProbes,
  curlProbes,
  effectiveDeadlineMs,
  grpcJsProbe,
  shapeOf,
  type CallShape,
  type Outcome,
  type Probe,
  type ProbeCall,
} from "../support/probes.js";
import { logCursor } from "../support/rpc-logs.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { unknownProcedures, type UnknownProcedures } from "../support/unknown-procedures.js";

const MAX_MESSAGE_BYTES = 1024;

let gw: StartedGateway;
let matrix: TransportMatrix;
let unknown: UnknownProcedures;
const grpcJs = grpcJsProbe(() => `127.0.0.1:${gw.port}`);
const probes: Probe[] = [
  ...connectNodeProbes(() => matrix),
  grpcJs,
  ...bufCurlProbes(() => gw.url),
  ...curlProbes(() => gw.url),
];

beforeAll(async () => {
  gw = await startGateway({ limits: { maxMessageBytes: MAX_MESSAGE_BYTES } });
  matrix = connectNodeTransports(gw.url);
  unknown = await unknownProcedures();
});

afterAll(async () => {
  grpcJs.close();
  matrix?.close();
  await unknown?.cleanup();
  await gw?.close();
});

/** After every error, a normal call still works on every protocol and both HTTP versions. */
afterEach(async () => {
  for (const name of ["connect over HTTP/1.1, json", "grpc over HTTP/2, binary", "grpc-web over HTTP/1.1, binary", "connect over HTTP/2, binary"]) {
    const greeter = createClient(GreeterService, matrix.get(name).transport);
    const response = await greeter.greet({ name: "still there" }, { signal: AbortSignal.timeout(5_000) });
    expect(response.greeting, `normal call over ${name} after the error`).toBe("Hello, still there!");
  }
});

/**
 * Declare one test per client that can make a call of this shape; each must produce `check`.
 * `call` is built when the test runs (it may need the running gateway or generated schemas).
 */
function acrossAllClients(
  shape: CallShape,
  call: () => ProbeCall,
  check: (outcome: Outcome, probe: Probe, shape: CallShape) => void,
): void {
  const applicable = probes.filter((p) => p.supports(shape));
  // The clients are independent processes and connections: run them side by side (vitest's
  // maxConcurrency bounds it), which keeps the file fast on two cores.
  it.concurrent.for(applicable.map((p) => [p.name, p] as const))("%s", async ([, probe]) => {
    check(await probe.run(call()), probe, shape);
  });
}

function probeCall<M extends DescMethod>(method: M, ...requests: MessageInitShape<M["input"]>[]): ProbeCall {
  return { method, requests };
}

/**
 * The error every client must report. Over Connect with curl, also the HTTP status: for unary
 * calls the one the Connect spec prescribes for the code (unless `http.unary` says otherwise);
 * a stream carries its error in the end-of-stream message of a 200 response (unless `http.stream`).
 */
function expectError(code: string, message: string | RegExp, http: { unary?: number; stream?: number } = {}) {
  return (outcome: Outcome, _probe: Probe, shape: CallShape) => {
    expect({ code: outcome.code, message: outcome.message }).toEqual({
      code,
      message: typeof message === "string" ? message : expect.stringMatching(message),
    });
    if (outcome.httpStatus !== undefined) {
      const expected = shape.kind === "unary" ? (http.unary ?? connectHttpStatus[code]) : (http.stream ?? 200);
      expect(outcome.httpStatus, "HTTP status of the Connect response").toBe(expected);
    }
  };
}

// ---------------------------------------------------------------------------------------------
describe("unknown service and unknown method → unimplemented", () => {
  // Connect: 404 (the gateway's documented choice; clients map 404 to unimplemented).
  describe("unknown service, unary (demo.v1.NoSuchService/Greet)", () => {
    acrossAllClients(
      { kind: "unary", get: true },
      () => ({ method: unknown.noSuchService.method.greet, requests: [{ name: "x" }], schema: [unknown.schemaDir] }),
      expectError("unimplemented", "unknown procedure /demo.v1.NoSuchService/Greet", { unary: 404 }),
    );
  });

  describe("unknown service, server streaming (demo.v1.NoSuchService/GreetStream)", () => {
    acrossAllClients(
      { kind: "server_streaming" },
      () => ({ method: unknown.noSuchService.method.greetStream, requests: [{ name: "x" }], schema: [unknown.schemaDir] }),
      // A Connect streaming client reads errors only from an end-of-stream message (HTTP 200):
      // a unary-style 404 body reaches it as a bare "HTTP 404".
      expectError("unimplemented", "unknown procedure /demo.v1.NoSuchService/GreetStream", { stream: 200 }),
    );
  });

  describe("unknown method on a served service (demo.v1.GreeterService/NoSuchMethod)", () => {
    acrossAllClients(
      { kind: "unary", get: true },
      () => ({ method: unknown.greeterWithNoSuchMethod.method.noSuchMethod, requests: [{ name: "x" }], schema: [unknown.schemaDir] }),
      expectError("unimplemented", "unknown procedure /demo.v1.GreeterService/NoSuchMethod", { unary: 404 }),
    );
  });

  it("gRPC: UNIMPLEMENTED is a Trailers-Only response, one HEADERS frame with END_STREAM (PROTOCOL-HTTP2.md)", async () => {
    // grpc-js reads grpc-status from the response headers only when that frame ends the stream.
    const session = http2.connect(gw.url);
    try {
      const { headers, flags } = await new Promise<{ headers: http2.IncomingHttpHeaders; flags: number }>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/demo.v1.NoSuchService/Greet",
          "content-type": "application/grpc",
          te: "trailers",
        });
        req.on("response", (headers, flags) => resolve({ headers, flags }));
        req.on("error", reject);
        req.end(encodeEnvelope(new Uint8Array()));
      });
      expect(headers[":status"]).toBe(200);
      expect(headers["content-type"]).toMatch(/^application\/grpc/);
      expect(headers["grpc-status"]).toBe("12");
      expect(flags & http2.constants.NGHTTP2_FLAG_END_STREAM, "END_STREAM on the HEADERS frame").toBe(
        http2.constants.NGHTTP2_FLAG_END_STREAM,
      );
    } finally {
      session.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe("wrong content-type to a known method → HTTP 415", () => {
  const cases = [
    { method: "demo.v1.GreeterService/Greet", contentType: "text/plain" },
    { method: "demo.v1.GreeterService/GreetStream", contentType: "text/plain" },
    { method: "demo.v1.CalculatorService/Sum", contentType: "application/xml" },
    // gRPC-web's base64 "text" mode is not supported by connect-node: refused, not misread.
    { method: "demo.v1.GreeterService/Greet", contentType: "application/grpc-web-text" },
  ];
  describe.each(["1.1", "2"] as CurlHttpVersion[])("curl over HTTP/%s", (http) => {
    it.each(cases)("$contentType to $method", async ({ method, contentType }) => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${method}`, { http, headers: { "content-type": contentType }, body: '{"name":"x"}' });
      expect(res.status).toBe(415);
      // Refused before any handler or interceptor ran; the refusal is logged all the same, once
      // per request the gateway received (curl is run again after its HTTP/2 early-answer bug).
      const line = { method, code: "unknown", httpStatus: 415, refused: `unsupported content-type ${JSON.stringify(contentType)}` };
      expect(log.rpcLines()).toMatchObject(Array.from({ length: res.attempts }, () => line));
    });
  });

  it.each(["1.1", "2"] as CurlHttpVersion[])("Connect GET with an unsupported encoding (encoding=xml) over HTTP/%s", async (http) => {
    const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet?connect=v1&encoding=xml&message=%3Cx%2F%3E`, { http });
    expect(res.status).toBe(415);
  });
});

// ---------------------------------------------------------------------------------------------
describe("malformed JSON → invalid_argument", () => {
  describe.each(["1.1", "2"] as CurlHttpVersion[])("curl over HTTP/%s", (http) => {
    const json = { "content-type": "application/json", "connect-protocol-version": "1" };

    it("unary POST with truncated JSON → HTTP 400 invalid_argument", async () => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, { http, headers: json, body: '{"name":' });
      expect(res.status).toBe(400);
      expect(res.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(res.text)).toEqual({
        code: "invalid_argument",
        message: expect.stringMatching(/^cannot decode message demo\.v1\.GreetRequest from JSON/),
      });
    });

    it("unary POST with a field of the wrong type → HTTP 400 invalid_argument", async () => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, { http, headers: json, body: '{"name":5}' });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("demo.v1.GreetRequest.name") });
    });

    it("unary POST whose body is not JSON at all → HTTP 400 invalid_argument", async () => {
      const res = await curl(`${gw.url}/demo.v1.CalculatorService/Divide`, { http, headers: json, body: "dividend=1&divisor=2" });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ code: "invalid_argument" });
    });

    it("Connect GET with a malformed message parameter → HTTP 400 invalid_argument", async () => {
      const query = new URLSearchParams({ connect: "v1", encoding: "json", message: '{"name":' });
      const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet?${query}`, { http });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ code: "invalid_argument" });
    });

    it("Connect streaming (application/connect+json) with a malformed message → end-of-stream invalid_argument", async () => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/GreetStream`, {
        http,
        headers: { "content-type": "application/connect+json" },
        body: encodeEnvelope('{"name":'),
      });
      expect(res.status).toBe(200);
      const envelopes = decodeEnvelopes(res.body);
      expect(envelopes).toHaveLength(1);
      expect(envelopes[0].flags).toBe(CONNECT_END_STREAM_FLAG);
      expect(JSON.parse(envelopes[0].data.toString("utf8"))).toMatchObject({ error: { code: "invalid_argument" } });
    });

    it("gRPC-web JSON (application/grpc-web+json) with a malformed message → grpc-status 3", async () => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, {
        http,
        headers: { "content-type": "application/grpc-web+json" },
        body: encodeEnvelope('{"name":'),
      });
      expect(res.status).toBe(200);
      const trailerFrames = decodeEnvelopes(res.body).filter((e) => e.flags & GRPC_WEB_TRAILER_FLAG);
      expect(trailerFrames).toHaveLength(1);
      expect(parseGrpcWebTrailers(trailerFrames[0].data)["grpc-status"]).toBe("3");
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe(`oversized messages (maxMessageBytes ${MAX_MESSAGE_BYTES}) → resource_exhausted`, () => {
  const bigName = "a".repeat(2 * MAX_MESSAGE_BYTES);
  // The request fits in every encoding (JSON: 1023 bytes) but "Hello, <name>!" plus metadata does not.
  const nameForBigResponse = "b".repeat(MAX_MESSAGE_BYTES - 12);
  const limitMessage = new RegExp(`\\b${MAX_MESSAGE_BYTES}\\b`);

  it("the inputs are on the intended sides of the limit, in binary and in JSON", () => {
    const binarySize = (name: string) => toBinary(GreetRequestSchema, create(GreetRequestSchema, { name })).length;
    const jsonSize = (name: string) => Buffer.byteLength(JSON.stringify({ name }));
    expect(binarySize(bigName)).toBeGreaterThan(MAX_MESSAGE_BYTES);
    expect(toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name: bigName, count: 1 })).length).toBeGreaterThan(MAX_MESSAGE_BYTES);
    expect(jsonSize(nameForBigResponse)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(binarySize(nameForBigResponse)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    // The smallest possible answer: the greeting and a served_at timestamp, no host name.
    const smallestAnswer = create(GreetResponseSchema, {
      greeting: `Hello, ${nameForBigResponse}!`,
      metadata: { servedAt: timestampFromDate(new Date(0)) },
    });
    expect(toBinary(GreetResponseSchema, smallestAnswer).length).toBeGreaterThan(MAX_MESSAGE_BYTES);
  });

  describe("request too large: Greet (unary)", () => {
    acrossAllClients(shapeOf(GreeterService.method.greet), () => probeCall(GreeterService.method.greet, { name: bigName }), expectError("resource_exhausted", limitMessage));
  });

  describe("request too large: GreetStream (server streaming)", () => {
    acrossAllClients(
      shapeOf(GreeterService.method.greetStream),
      () => probeCall(GreeterService.method.greetStream, { name: bigName, count: 2 }),
      expectError("resource_exhausted", limitMessage),
    );
  });

  describe("response too large: Greet (unary)", () => {
    acrossAllClients(
      shapeOf(GreeterService.method.greet),
      () => probeCall(GreeterService.method.greet, { name: nameForBigResponse }),
      expectError("resource_exhausted", limitMessage),
    );
  });

  it("the access log records resource_exhausted for a response that was too large to send", async () => {
    const log = logCursor(gw);
    const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, {
      http: "1.1",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: nameForBigResponse }),
    });
    expect(JSON.parse(res.text)).toMatchObject({ code: "resource_exhausted" });
    expect(log.rpcLines().map((l) => ({ method: l.method, code: l.code }))).toEqual([
      { method: "demo.v1.GreeterService/Greet", code: "resource_exhausted" },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
describe("invalid arguments → invalid_argument with the exact message", () => {
  describe("Greet with an empty name", () => {
    acrossAllClients(shapeOf(GreeterService.method.greet), () => probeCall(GreeterService.method.greet, { name: "" }), expectError("invalid_argument", "name must not be empty"));
  });

  describe("Divide by zero", () => {
    acrossAllClients(
      shapeOf(CalculatorService.method.divide),
      () => probeCall(CalculatorService.method.divide, { dividend: 1, divisor: 0 }),
      expectError("invalid_argument", "cannot divide by zero"),
    );
  });

  describe("GreetStream with an empty name (error before the first message)", () => {
    acrossAllClients(
      shapeOf(GreeterService.method.greetStream),
      () => probeCall(GreeterService.method.greetStream, { name: "", count: 3 }),
      (outcome, probe, shape) => {
        expectError("invalid_argument", "name must not be empty")(outcome, probe, shape);
        expect(outcome.messages).toEqual([]);
      },
    );
  });

  describe("GreetStream with count 0", () => {
    acrossAllClients(
      shapeOf(GreeterService.method.greetStream),
      () => probeCall(GreeterService.method.greetStream, { name: "x", count: 0 }),
      expectError("invalid_argument", "count must be between 1 and 1000, got 0"),
    );
  });

  it("grpc-js: INVALID_ARGUMENT with details, trailer metadata and the gRPC response headers", async () => {
    const client = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(GreeterService), "GreeterService");
    try {
      const outcome = await grpcUnary(client, GreeterService.method.greet, { name: "" });
      expect(outcome.messages).toEqual([]);
      expect(outcome.error).toBeDefined();
      expect(outcome.error!.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(outcome.error!.details).toBe("name must not be empty");
      expect(outcome.error!.metadata).toBeInstanceOf(grpc.Metadata);
      expect(outcome.status.code).toBe(grpc.status.INVALID_ARGUMENT);
      // grpc-js consumes grpc-status and grpc-message; they must not leak into user metadata.
      expect(outcome.status.metadata.get("grpc-status")).toEqual([]);
      expect(outcome.headers?.get("content-type")).toEqual(["application/grpc+proto"]);
    } finally {
      client.close();
    }
  });

  it("raw gRPC over HTTP/2 (curl): status in the trailers, message percent-decodable to the exact text", async () => {
    const res = await curl(`${gw.url}/demo.v1.CalculatorService/Divide`, {
      http: "2",
      headers: { "content-type": "application/grpc", te: "trailers" },
      body: encodeEnvelope(toBinary(DivideRequestSchema, create(DivideRequestSchema, { dividend: 1, divisor: 0 }))),
    });
    expect(res.status).toBe(200);
    const statusFields = { ...res.headers, ...res.trailers };
    expect(statusFields["grpc-status"]).toBe("3");
    expect(decodeURIComponent(statusFields["grpc-message"])).toBe("cannot divide by zero");
  });
});

// ---------------------------------------------------------------------------------------------
describe("deadlines", () => {
  // 10 greetings 500 ms apart take 4.5 s; the deadline is 300 ms.
  const slowStream = { name: "slow", count: 10, intervalMs: 500 };

  describe("GreetStream outliving a 300 ms deadline → deadline_exceeded", () => {
    acrossAllClients(
      shapeOf(GreeterService.method.greetStream),
      () => ({ ...probeCall(GreeterService.method.greetStream, slowStream), deadlineMs: 300 }),
      (outcome, probe) => {
        expect({ code: outcome.code, message: outcome.message }).toEqual({ code: "deadline_exceeded", message: expect.any(String) });
        const deadline = effectiveDeadlineMs(probe, 300);
        // Greeting n is due at (n - 1) × 500 ms: none may arrive after the deadline.
        expect(outcome.messages.length).toBeLessThanOrEqual(Math.floor(deadline / slowStream.intervalMs) + 1);
        // Ended by the deadline, not by the 4.5 s stream (a loose bound: buf curl's deadline also
        // covers its own schema compilation, which a busy 2-core machine slows down).
        expect(outcome.durationMs).toBeLessThan((slowStream.count - 1) * slowStream.intervalMs);
      },
    );
  });

  describe("a deadline that is not reached does not fail the call: Greet with 60 s", () => {
    acrossAllClients(
      shapeOf(GreeterService.method.greet),
      () => ({ ...probeCall(GreeterService.method.greet, { name: "Ada" }), deadlineMs: 60_000 }),
      (outcome) => {
        expect({ code: outcome.code, message: outcome.message }).toEqual({ code: "ok", message: "" });
        expect(outcome.messages).toEqual([{ greeting: "Hello, Ada!", metadata: expect.any(Object) }]);
      },
    );
  });

  // curl sends the timeout header but enforces nothing itself: only the server can end the call.
  describe("the server enforces the deadline on its own (curl sends the header, never times out)", () => {
    const streamRequest = () => toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, slowStream));

    it.each(["1.1", "2"] as CurlHttpVersion[])("Connect over HTTP/%s: connect-timeout-ms: 300", async (http) => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/GreetStream`, {
        http,
        headers: { "content-type": "application/connect+json", "connect-timeout-ms": "300" },
        body: encodeEnvelope(JSON.stringify(slowStream)),
      });
      expect(res.status).toBe(200);
      const envelopes = decodeEnvelopes(res.body);
      const end = envelopes[envelopes.length - 1];
      expect(end.flags).toBe(CONNECT_END_STREAM_FLAG);
      expect(JSON.parse(end.data.toString("utf8"))).toMatchObject({ error: { code: "deadline_exceeded" } });
      expect(envelopes.length - 1).toBeLessThanOrEqual(1);
      expect(res.durationMs).toBeGreaterThanOrEqual(250);
      expect(res.durationMs).toBeLessThan(2_500);
    });

    it("gRPC over HTTP/2: grpc-timeout: 300m → grpc-status 4 in the trailers", async () => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/GreetStream`, {
        http: "2",
        headers: { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "300m" },
        body: encodeEnvelope(streamRequest()),
      });
      expect(res.status).toBe(200);
      expect({ ...res.headers, ...res.trailers }["grpc-status"]).toBe("4");
      expect(res.durationMs).toBeGreaterThanOrEqual(250);
      expect(res.durationMs).toBeLessThan(2_500);
    });

    it.each(["1.1", "2"] as CurlHttpVersion[])("gRPC-web over HTTP/%s: grpc-timeout: 300m → grpc-status 4 in the trailer frame", async (http) => {
      const res = await curl(`${gw.url}/demo.v1.GreeterService/GreetStream`, {
        http,
        headers: { "content-type": "application/grpc-web+proto", "grpc-timeout": "300m" },
        body: encodeEnvelope(streamRequest()),
      });
      expect(res.status).toBe(200);
      const frames = decodeEnvelopes(res.body);
      const trailers = frames.filter((f) => f.flags & GRPC_WEB_TRAILER_FLAG);
      expect(trailers).toHaveLength(1);
      expect(parseGrpcWebTrailers(trailers[0].data)["grpc-status"]).toBe("4");
      expect(res.durationMs).toBeGreaterThanOrEqual(250);
      expect(res.durationMs).toBeLessThan(2_500);
    });
  });
});
