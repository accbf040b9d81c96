/**
 * Every demo method over every protocol and HTTP version that can carry it, each with real,
 * independent clients: connect-node's own transports, @grpc/grpc-js, `buf curl` (connect-go)
 * and plain curl. Each test also checks in the gateway's access log that the server saw the
 * call in the protocol the client claims to speak.
 */
import { hostname } from "node:os";
import { ConnectError, createClient, Code } from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import { create, toBinary, fromBinary, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { Language } from "../../gen/demo/v1/common_pb.js";
import {
  GreeterService,
  GreetRequestSchema,
  GreetResponseSchema,
} from "../../gen/demo/v1/greeter_pb.js";
import { bufCurl, type BufProtocol } from "../support/buf-curl.js";
import { connectNodeTransports, transportSpecs, type TransportMatrix, type WireProtocol } from "../support/connect-transports.js";
import { connectGetQuery, curl, type CurlHttpVersion } from "../support/curl.js";
import { CONNECT_END_STREAM_FLAG, decodeEnvelopes, encodeEnvelopes } from "../support/envelope.js";
import {
  createGrpcJsClient,
  grpcBidiLockStep,
  grpcClientStream,
  grpcServerStream,
  grpcServiceDefinition,
  grpcUnary,
  type GenericGrpcClient,
} from "../support/grpc-js-client.js";
import { logCursor, type RpcLogLine } from "../support/rpc-logs.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

// ---------------------------------------------------------------------------------------------
// The calls and what the demo services must answer. Inputs are chosen so a wrong field, enum,
// int64 precision or ordering shows: 2^53 + 1 is not representable as a JSON number.

const GREET = { name: "Ada", language: Language.FRENCH } as const;
const GREET_JSON = { name: "Ada", language: "LANGUAGE_FRENCH" };
const GREETING = "Bonjour, Ada!";

const STREAM = { name: "Grace", language: Language.GERMAN, count: 3, intervalMs: 20 } as const;
const STREAM_JSON = { name: "Grace", language: "LANGUAGE_GERMAN", count: 3, intervalMs: 20 };
const STREAM_GREETING = "Hallo, Grace!";

const DIVIDE = { dividend: 7, divisor: 2 } as const;
const QUOTIENT = 3.5;

const SUM_NUMBERS = [1n, 2n, 9_007_199_254_740_993n] as const;
const SUM = 9_007_199_254_740_996n;

const ACCUMULATE_NUMBERS = [5n, -2n, 40n] as const;
const TOTALS = [5n, 3n, 43n] as const;

const M = {
  greet: "demo.v1.GreeterService/Greet",
  greetStream: "demo.v1.GreeterService/GreetStream",
  divide: "demo.v1.CalculatorService/Divide",
  sum: "demo.v1.CalculatorService/Sum",
  accumulate: "demo.v1.CalculatorService/Accumulate",
} as const;

let gw: StartedGateway;
let startedAt: number;

beforeAll(async () => {
  gw = await startGateway();
  startedAt = Date.now();
});

afterAll(async () => {
  await gw?.close();
});

/** The server served exactly this call, in this protocol and HTTP method, successfully. */
function expectServed(lines: RpcLogLine[], method: string, protocol: WireProtocol, httpMethod = "POST"): void {
  expect(lines.map(({ method, protocol, httpMethod, code }) => ({ method, protocol, httpMethod, code }))).toEqual([
    { method, protocol, httpMethod, code: "ok" },
  ]);
}

/** The metadata of a Greet response is real: this host, a timestamp taken during the test run. */
function expectFreshServedAt(servedAt: Date): void {
  expect(servedAt.getTime()).toBeGreaterThanOrEqual(startedAt - 1_000);
  expect(servedAt.getTime()).toBeLessThanOrEqual(Date.now() + 1_000);
}

/** Check a Greet response in protobuf JSON (what curl and buf curl print). */
function expectGreetJson(json: unknown): void {
  const response = fromJson(GreetResponseSchema, json as JsonValue);
  expect(response.greeting).toBe(GREETING);
  expect(response.metadata?.servedBy).toBe(hostname());
  expectFreshServedAt(timestampDate(response.metadata!.servedAt!));
}

// ---------------------------------------------------------------------------------------------
describe("connect-node transports (@connectrpc/connect-node createClient)", () => {
  let matrix: TransportMatrix;
  beforeAll(() => {
    matrix = connectNodeTransports(gw.url);
  });
  afterAll(() => matrix?.close());

  // The transports need the gateway's URL, so the tests are declared from the static specs.
  const caseFor = (name: string) => matrix.get(name);

  describe.each(transportSpecs())("$name", ({ name, httpVersion }) => {
    it("Greet (unary)", async () => {
      const c = caseFor(name);
      const log = logCursor(gw);
      const greeter = createClient(GreeterService, c.transport);
      const response = await greeter.greet(GREET);
      expect(response.greeting).toBe(GREETING);
      expect(response.metadata?.servedBy).toBe(hostname());
      expectFreshServedAt(timestampDate(response.metadata!.servedAt!));
      expectServed(log.rpcLines(), M.greet, c.protocol, c.useHttpGet ? "GET" : "POST");
    });

    it("Divide (unary)", async () => {
      const c = caseFor(name);
      const log = logCursor(gw);
      const calculator = createClient(CalculatorService, c.transport);
      expect((await calculator.divide(DIVIDE)).quotient).toBe(QUOTIENT);
      expectServed(log.rpcLines(), M.divide, c.protocol, c.useHttpGet ? "GET" : "POST");
    });

    it("GreetStream (server streaming)", async () => {
      const c = caseFor(name);
      const log = logCursor(gw);
      const greeter = createClient(GreeterService, c.transport);
      const received: Array<{ greeting: string; sequence: number }> = [];
      for await (const m of greeter.greetStream(STREAM)) received.push({ greeting: m.greeting, sequence: m.sequence });
      expect(received).toEqual([1, 2, 3].map((sequence) => ({ greeting: STREAM_GREETING, sequence })));
      expectServed(log.rpcLines(), M.greetStream, c.protocol);
    });

    it("Sum (client streaming)", async () => {
      const c = caseFor(name);
      const log = logCursor(gw);
      const calculator = createClient(CalculatorService, c.transport);
      async function* numbers() {
        for (const number of SUM_NUMBERS) yield { number };
      }
      const response = await calculator.sum(numbers());
      expect(response.sum).toBe(SUM);
      expect(response.count).toBe(SUM_NUMBERS.length);
      expectServed(log.rpcLines(), M.sum, c.protocol);
    });

    if (httpVersion === "2") {
      it("Accumulate (bidi streaming, in lock step: full duplex)", async () => {
        const c = caseFor(name);
        const log = logCursor(gw);
        const calculator = createClient(CalculatorService, c.transport);
        // Each request is sent only once the previous answer arrived: a half-duplex
        // exchange would deadlock, and the signal turns that into a failure.
        let answered = 0;
        let wake: (() => void) | undefined;
        async function* numbers() {
          for (let i = 0; i < ACCUMULATE_NUMBERS.length; i++) {
            yield { number: ACCUMULATE_NUMBERS[i] };
            while (answered < i + 1) await new Promise<void>((resolve) => (wake = resolve));
          }
        }
        const totals: bigint[] = [];
        for await (const m of calculator.accumulate(numbers(), { signal: AbortSignal.timeout(5_000) })) {
          totals.push(m.total);
          answered++;
          wake?.();
        }
        expect(totals).toEqual([...TOTALS]);
        expectServed(log.rpcLines(), M.accumulate, c.protocol);
      });
    } else {
      it("Accumulate (bidi streaming) over HTTP/1.1 fails fast with HTTP 505, no hang", async () => {
        // Bidirectional streaming needs HTTP/2 (Connect and gRPC-web specs); the server must
        // refuse at once rather than leave a full-duplex client waiting.
        const c = caseFor(name);
        const calculator = createClient(CalculatorService, c.transport);
        async function* numbers() {
          for (const number of ACCUMULATE_NUMBERS) yield { number };
        }
        const started = performance.now();
        const error = await (async () => {
          for await (const _ of calculator.accumulate(numbers(), { signal: AbortSignal.timeout(5_000) })) {
            // no message may arrive
          }
        })().then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        expect(error, "the bidi call over HTTP/1.1 must fail").toBeInstanceOf(ConnectError);
        expect(error!.code).not.toBe(Code.Canceled); // canceled would mean our 5 s guard fired: a hang
        expect(error!.rawMessage).toMatch(/\b505\b/);
        expect(performance.now() - started).toBeLessThan(2_000);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe("@grpc/grpc-js over HTTP/2 (h2c)", () => {
  let greeter: GenericGrpcClient;
  let calculator: GenericGrpcClient;
  beforeAll(() => {
    const address = `127.0.0.1:${gw.port}`;
    greeter = createGrpcJsClient(address, grpcServiceDefinition(GreeterService), "GreeterService");
    calculator = createGrpcJsClient(address, grpcServiceDefinition(CalculatorService), "CalculatorService");
  });
  afterAll(() => {
    greeter?.close();
    calculator?.close();
  });

  it("Greet (unary), with gRPC response headers", async () => {
    const log = logCursor(gw);
    const outcome = await grpcUnary(greeter, GreeterService.method.greet, GREET);
    expect(outcome.error).toBeUndefined();
    expect(outcome.status.code).toBe(0);
    expect(outcome.messages).toHaveLength(1);
    const [response] = outcome.messages;
    expect(response.greeting).toBe(GREETING);
    expect(response.metadata?.servedBy).toBe(hostname());
    expectFreshServedAt(timestampDate(response.metadata!.servedAt!));
    expect(outcome.headers?.get("content-type")).toEqual(["application/grpc+proto"]);
    expectServed(log.rpcLines(), M.greet, "grpc");
  });

  it("Divide (unary)", async () => {
    const log = logCursor(gw);
    const outcome = await grpcUnary(calculator, CalculatorService.method.divide, DIVIDE);
    expect(outcome.status.code).toBe(0);
    expect(outcome.messages.map((m) => m.quotient)).toEqual([QUOTIENT]);
    expectServed(log.rpcLines(), M.divide, "grpc");
  });

  it("GreetStream (server streaming)", async () => {
    const log = logCursor(gw);
    const outcome = await grpcServerStream(greeter, GreeterService.method.greetStream, STREAM);
    expect(outcome.error).toBeUndefined();
    expect(outcome.status.code).toBe(0);
    expect(outcome.messages.map((m) => ({ greeting: m.greeting, sequence: m.sequence }))).toEqual(
      [1, 2, 3].map((sequence) => ({ greeting: STREAM_GREETING, sequence })),
    );
    expectServed(log.rpcLines(), M.greetStream, "grpc");
  });

  it("Sum (client streaming)", async () => {
    const log = logCursor(gw);
    const outcome = await grpcClientStream(
      calculator,
      CalculatorService.method.sum,
      SUM_NUMBERS.map((number) => ({ number })),
    );
    expect(outcome.status.code).toBe(0);
    expect(outcome.messages.map((m) => ({ sum: m.sum, count: m.count }))).toEqual([{ sum: SUM, count: 3 }]);
    expectServed(log.rpcLines(), M.sum, "grpc");
  });

  it("Accumulate (bidi streaming, in lock step: full duplex)", async () => {
    const log = logCursor(gw);
    const outcome = await grpcBidiLockStep(
      calculator,
      CalculatorService.method.accumulate,
      ACCUMULATE_NUMBERS.map((number) => ({ number })),
      { guardMs: 5_000 }, // cancels a deadlocked (half-duplex) exchange
    );
    expect(outcome.error?.message).toBeUndefined();
    expect(outcome.status.code).toBe(0);
    expect(outcome.messages.map((m) => m.total)).toEqual([...TOTALS]);
    expectServed(log.rpcLines(), M.accumulate, "grpc");
  });
});

// ---------------------------------------------------------------------------------------------
describe("buf curl (connect-go) with --schema proto", () => {
  /** Every combination buf curl allows: gRPC exists only over HTTP/2. */
  const combos: Array<{ protocol: BufProtocol; h2: boolean; wire: WireProtocol }> = [
    { protocol: "connect", h2: false, wire: "connect" },
    { protocol: "connect", h2: true, wire: "connect" },
    { protocol: "grpcweb", h2: false, wire: "grpc-web" },
    { protocol: "grpcweb", h2: true, wire: "grpc-web" },
    { protocol: "grpc", h2: true, wire: "grpc" },
  ];

  describe.each(combos)("--protocol $protocol, --http2-prior-knowledge=$h2", ({ protocol, h2, wire }) => {
    const httpVersion = h2 ? "2" : "1.1";
    const call = (method: string, messages: unknown[]) =>
      bufCurl(`${gw.url}/${method}`, { protocol, http2PriorKnowledge: h2, messages });

    it(`Greet (unary) over HTTP/${httpVersion}`, async () => {
      const log = logCursor(gw);
      const result = await call(M.greet, [GREET_JSON]);
      expect(result.error).toBeUndefined();
      expect(result.exitCode).toBe(0);
      expect(result.httpVersion).toBe(httpVersion);
      expect(result.messages).toHaveLength(1);
      expectGreetJson(result.messages[0]);
      expectServed(log.rpcLines(), M.greet, wire);
    });

    it(`Divide (unary) over HTTP/${httpVersion}`, async () => {
      const log = logCursor(gw);
      const result = await call(M.divide, [DIVIDE]);
      expect(result.exitCode).toBe(0);
      expect(result.httpVersion).toBe(httpVersion);
      expect(result.messages).toEqual([{ quotient: QUOTIENT }]);
      expectServed(log.rpcLines(), M.divide, wire);
    });

    it(`GreetStream (server streaming) over HTTP/${httpVersion}`, async () => {
      const log = logCursor(gw);
      const result = await call(M.greetStream, [STREAM_JSON]);
      expect(result.error).toBeUndefined();
      expect(result.exitCode).toBe(0);
      expect(result.httpVersion).toBe(httpVersion);
      expect(result.messages).toEqual([1, 2, 3].map((sequence) => ({ greeting: STREAM_GREETING, sequence })));
      expectServed(log.rpcLines(), M.greetStream, wire);
    });

    it(`Sum (client streaming, messages from stdin) over HTTP/${httpVersion}`, async () => {
      const log = logCursor(gw);
      const result = await call(
        M.sum,
        SUM_NUMBERS.map((n) => ({ number: n.toString() })),
      );
      expect(result.error).toBeUndefined();
      expect(result.exitCode).toBe(0);
      expect(result.httpVersion).toBe(httpVersion);
      expect(result.messages).toEqual([{ sum: SUM.toString(), count: SUM_NUMBERS.length }]);
      expectServed(log.rpcLines(), M.sum, wire);
    });

    it("Accumulate (bidi streaming, messages from stdin) always over HTTP/2", async () => {
      // buf curl documents that bidi streaming implies --http2-prior-knowledge.
      const log = logCursor(gw);
      const result = await call(
        M.accumulate,
        ACCUMULATE_NUMBERS.map((n) => ({ number: n.toString() })),
      );
      expect(result.error).toBeUndefined();
      expect(result.exitCode).toBe(0);
      expect(result.httpVersion).toBe("2");
      expect(result.messages).toEqual(TOTALS.map((t) => ({ total: t.toString() })));
      expectServed(log.rpcLines(), M.accumulate, wire);
    });
  });

  it("--protocol grpc without --http2-prior-knowledge still speaks HTTP/2 (gRPC cannot use HTTP/1.1)", async () => {
    const log = logCursor(gw);
    const result = await bufCurl(`${gw.url}/${M.greet}`, { protocol: "grpc", http2PriorKnowledge: false, messages: [GREET_JSON] });
    expect(result.exitCode).toBe(0);
    expect(result.httpVersion).toBe("2");
    expectGreetJson(result.messages[0]);
    expectServed(log.rpcLines(), M.greet, "grpc");
  });
});

// ---------------------------------------------------------------------------------------------
describe("curl (plain HTTP client, Connect protocol)", () => {
  const versions: CurlHttpVersion[] = ["1.1", "2"];
  const connectJson = { "content-type": "application/json", "connect-protocol-version": "1" };
  const connectStreamJson = { "content-type": "application/connect+json", "connect-protocol-version": "1" };

  describe.each(versions)("HTTP/%s", (http) => {
    it("Greet: unary POST with a JSON body", async () => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${M.greet}`, { http, headers: connectJson, body: JSON.stringify(GREET_JSON) });
      expect(res.httpVersion).toBe(http);
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("application/json");
      expectGreetJson(JSON.parse(res.text));
      expectServed(log.rpcLines(), M.greet, "connect");
    });

    it("Divide: unary POST with a JSON body", async () => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${M.divide}`, { http, headers: connectJson, body: JSON.stringify(DIVIDE) });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ quotient: QUOTIENT });
      expectServed(log.rpcLines(), M.divide, "connect");
    });

    it("Greet: Connect GET (?connect=v1&encoding=json&message=...)", async () => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${M.greet}?${connectGetQuery(GREET_JSON)}`, { http, method: "GET" });
      expect(res.httpVersion).toBe(http);
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("application/json");
      expectGreetJson(JSON.parse(res.text));
      expectServed(log.rpcLines(), M.greet, "connect", "GET");
    });

    it("Greet: Connect GET with a base64url binary message (encoding=proto&base64=1)", async () => {
      const log = logCursor(gw);
      const bytes = toBinary(GreetRequestSchema, create(GreetRequestSchema, GREET));
      const query = new URLSearchParams({ connect: "v1", encoding: "proto", base64: "1", message: Buffer.from(bytes).toString("base64url") });
      const res = await curl(`${gw.url}/${M.greet}?${query}`, { http, method: "GET" });
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("application/proto");
      const response = fromBinary(GreetResponseSchema, res.body);
      expect(response.greeting).toBe(GREETING);
      expectServed(log.rpcLines(), M.greet, "connect", "GET");
    });

    it("Divide: Connect GET (NO_SIDE_EFFECTS)", async () => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${M.divide}?${connectGetQuery(DIVIDE)}`, { http, method: "GET" });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ quotient: QUOTIENT });
      expectServed(log.rpcLines(), M.divide, "connect", "GET");
    });

    it("GreetStream: enveloped application/connect+json, data then end-of-stream", async () => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${M.greetStream}`, {
        http,
        headers: connectStreamJson,
        body: encodeEnvelopes([JSON.stringify(STREAM_JSON)]),
      });
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("application/connect+json");
      const envelopes = decodeEnvelopes(res.body);
      const data = envelopes.slice(0, -1);
      const end = envelopes[envelopes.length - 1];
      expect(data.map((e) => e.flags)).toEqual([0, 0, 0]);
      expect(data.map((e) => JSON.parse(e.data.toString("utf8")))).toEqual(
        [1, 2, 3].map((sequence) => ({ greeting: STREAM_GREETING, sequence })),
      );
      expect(end.flags & CONNECT_END_STREAM_FLAG).toBe(CONNECT_END_STREAM_FLAG);
      expect(JSON.parse(end.data.toString("utf8"))).not.toHaveProperty("error");
      expectServed(log.rpcLines(), M.greetStream, "connect");
    });

    it("Sum: several enveloped JSON messages in one request body", async () => {
      const log = logCursor(gw);
      const res = await curl(`${gw.url}/${M.sum}`, {
        http,
        headers: connectStreamJson,
        body: encodeEnvelopes(SUM_NUMBERS.map((n) => JSON.stringify({ number: n.toString() }))),
      });
      expect(res.status).toBe(200);
      const envelopes = decodeEnvelopes(res.body);
      expect(envelopes.map((e) => e.flags)).toEqual([0, CONNECT_END_STREAM_FLAG]);
      expect(JSON.parse(envelopes[0].data.toString("utf8"))).toEqual({ sum: SUM.toString(), count: 3 });
      expect(JSON.parse(envelopes[1].data.toString("utf8"))).not.toHaveProperty("error");
      expectServed(log.rpcLines(), M.sum, "connect");
    });
  });

  it("Accumulate over HTTP/2: a half-duplex client (whole body first) gets every running total", async () => {
    const log = logCursor(gw);
    const res = await curl(`${gw.url}/${M.accumulate}`, {
      http: "2",
      headers: connectStreamJson,
      body: encodeEnvelopes(ACCUMULATE_NUMBERS.map((n) => JSON.stringify({ number: n.toString() }))),
    });
    expect(res.status).toBe(200);
    const envelopes = decodeEnvelopes(res.body);
    expect(envelopes.map((e) => e.flags)).toEqual([0, 0, 0, CONNECT_END_STREAM_FLAG]);
    expect(envelopes.slice(0, 3).map((e) => JSON.parse(e.data.toString("utf8")))).toEqual(
      TOTALS.map((t) => ({ total: t.toString() })),
    );
    expectServed(log.rpcLines(), M.accumulate, "connect");
  });

  it("Accumulate over HTTP/1.1: 505 HTTP Version Not Supported and the connection closed, at once", async () => {
    const res = await curl(`${gw.url}/${M.accumulate}`, {
      http: "1.1",
      headers: connectStreamJson,
      body: encodeEnvelopes([JSON.stringify({ number: "1" })]),
      timeoutMs: 5_000,
    });
    expect(res.status).toBe(505);
    expect(res.headers.connection).toBe("close");
    expect(res.durationMs).toBeLessThan(2_000);
  });
});

// ---------------------------------------------------------------------------------------------
describe("compressed messages (gzip both ways)", () => {
  // Large enough for the server to compress its answer (connect-node compresses from 1 KiB).
  const longName = "Zoë ".repeat(400).trim();
  const longGreeting = `Hello, ${longName}!`;
  let matrix: TransportMatrix;
  const encodings: string[] = [];

  beforeAll(() => {
    matrix = connectNodeTransports(gw.url, {
      sendCompression: compressionGzip,
      compressMinBytes: 0, // compress even small requests
      interceptors: [
        (next) => async (req) => {
          const res = await next(req);
          const h = res.header;
          encodings.push(h.get("content-encoding") ?? h.get("connect-content-encoding") ?? h.get("grpc-encoding") ?? "identity");
          return res;
        },
      ],
    });
  });
  afterAll(() => matrix?.close());

  describe.each(transportSpecs())("connect-node $name", ({ name }) => {
    it("Greet: gzip request, gzip response", async () => {
      encodings.length = 0;
      const log = logCursor(gw);
      const c = matrix.get(name);
      const response = await createClient(GreeterService, c.transport).greet({ name: longName });
      expect(response.greeting).toBe(longGreeting);
      expect(encodings).toEqual(["gzip"]);
      expectServed(log.rpcLines(), M.greet, c.protocol, c.useHttpGet ? "GET" : "POST");
    });

    it("GreetStream: gzip request, gzip response messages", async () => {
      encodings.length = 0;
      const c = matrix.get(name);
      const received: string[] = [];
      for await (const m of createClient(GreeterService, c.transport).greetStream({ name: longName, count: 2 })) {
        received.push(m.greeting);
      }
      expect(received).toEqual([longGreeting, longGreeting]);
      expect(encodings).toEqual(["gzip"]);
    });
  });

  describe.each([
    { protocol: "connect" as const, h2: false },
    { protocol: "connect" as const, h2: true },
    { protocol: "grpcweb" as const, h2: false },
    { protocol: "grpcweb" as const, h2: true },
    { protocol: "grpc" as const, h2: true },
  ])("buf curl --protocol $protocol, --http2-prior-knowledge=$h2", ({ protocol, h2 }) => {
    it("Greet: gzip-compressed response", async () => {
      const result = await bufCurl(`${gw.url}/${M.greet}`, { protocol, http2PriorKnowledge: h2, messages: [{ name: longName }] });
      expect(result.exitCode).toBe(0);
      expect((result.messages[0] as { greeting: string }).greeting).toBe(longGreeting);
      const h = result.responseHeaders;
      expect(h["content-encoding"] ?? h["grpc-encoding"]).toBe("gzip");
    });
  });
});
