import * as http from "node:http";
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService, DivideRequestSchema } from "../../gen/demo/v1/calculator_pb.js";
import { createCalculatorService } from "../../src/services/calculator-service.js";
import { createRpcDispatcher } from "../../src/server/rpc-dispatcher.js";
import { SinglePortServer } from "../../src/server/single-port-server.js";
import { createLogger } from "../../src/ops/logger.js";
import { nodeParserBinding } from "../../src/http1/node-parser.js";
import type { Http1ExchangeHandler } from "../../src/http1/lean-connections.js";
import fc from "fast-check";
import { rawConnect, readAnswerAfterDrain, type RawConnection } from "../support/raw-http.js";
import { fuzzParameters } from "../fuzz/fuzz-config.js";

/**
 * Lean HTTP/1.1 connections (src/http1/lean-connections.ts): what they serve must be written as
 * node:http writes it, and everything else must reach node:http intact, on real sockets with
 * bytes written by hand.
 */

const DIVIDE = "/demo.v1.CalculatorService/Divide";
/** Divide answers after this many milliseconds when the dividend is 999. */
const SLOW_MS = 300;

function routes(router: ConnectRouter) {
  const calculator = createCalculatorService();
  router.service(CalculatorService, {
    ...calculator,
    async divide(request, context) {
      if (request.dividend === 999) await new Promise((resolve) => setTimeout(resolve, SLOW_MS));
      if (request.dividend === 666) throw new ConnectError("refused", Code.PermissionDenied, { "x-reason": "test" });
      return calculator.divide(request, context);
    },
  });
}

interface TestServer {
  port: number;
  server: SinglePortServer;
  /** Requests the lean path served. */
  lean: { count: number };
}

const LIMITS = { maxHeaderBytes: 16384, headersTimeoutMs: 5000, idleTimeoutMs: 30000, maxConcurrentStreams: 100 };

/** A server whose lean connections ask `onHttp1Exchange` directly (no RPC dispatcher); node:http answers "node". */
async function startBareLeanServer(onHttp1Exchange: Http1ExchangeHandler, logger = createLogger("silent")): Promise<{ server: SinglePortServer; port: number }> {
  const server = new SinglePortServer({ onRequest: (_req, res) => res.end("node"), onHttp1Exchange, logger, limits: LIMITS });
  const { port } = await server.listen(0, "127.0.0.1");
  return { server, port };
}

async function startServer(lean: boolean, limits: Partial<{ headersTimeoutMs: number; idleTimeoutMs: number; maxHeaderBytes: number }> = {}): Promise<TestServer> {
  const dispatcher = createRpcDispatcher({
    routes,
    fastPath: true,
    fallback: (req, res) => {
      res.writeHead(req.url === "/healthz" ? 200 : 404, { "content-type": "text/plain" });
      res.end(req.url === "/healthz" ? "alive" : "not found");
    },
    logger: createLogger("silent"),
    router: {
      interceptors: [],
      acceptCompression: [],
      readMaxBytes: 4096,
      writeMaxBytes: 4096,
      shutdownSignal: new AbortController().signal,
    },
  });
  const counter = { count: 0 };
  const server = new SinglePortServer({
    onRequest: dispatcher.handleRequest,
    onStream: dispatcher.handleStream,
    onHttp1Exchange: lean
      ? (exchange) => {
          const taken = dispatcher.handleHttp1Exchange(exchange);
          if (taken) counter.count++;
          return taken;
        }
      : undefined,
    logger: createLogger("silent"),
    limits: { ...LIMITS, ...limits },
  });
  const address = await server.listen(0, "127.0.0.1");
  return { port: address.port, server, lean: counter };
}

const json = (value: unknown) => JSON.stringify(value);
function post(body: string | Buffer, headers: Record<string, string> = {}, contentType = "application/json"): Buffer {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  let head = `POST ${DIVIDE} HTTP/1.1\r\nHost: test\r\ncontent-type: ${contentType}\r\ncontent-length: ${bytes.length}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return Buffer.concat([Buffer.from(head + "\r\n", "latin1"), bytes]);
}
const divide = (dividend: number, divisor: number) => post(json({ dividend, divisor }));
const GET_HEALTH = Buffer.from("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n", "latin1");

interface ParsedResponse {
  head: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The complete responses in `bytes` (Content-Length or chunked), in order. */
function parseResponses(bytes: Buffer): ParsedResponse[] {
  const text = bytes.toString("latin1");
  const responses: ParsedResponse[] = [];
  let at = 0;
  while (at < text.length) {
    const headEnd = text.indexOf("\r\n\r\n", at);
    if (headEnd === -1) break;
    const head = text.slice(at, headEnd + 4);
    const lines = head.split("\r\n").filter(Boolean);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    let body = "";
    let next = headEnd + 4;
    if (headers["transfer-encoding"] === "chunked") {
      for (;;) {
        const sizeEnd = text.indexOf("\r\n", next);
        if (sizeEnd === -1) return responses;
        const size = parseInt(text.slice(next, sizeEnd), 16);
        next = sizeEnd + 2 + size + 2;
        if (next > text.length) return responses;
        if (size === 0) break;
        body += text.slice(sizeEnd + 2, sizeEnd + 2 + size);
      }
    } else {
      const length = Number(headers["content-length"] ?? 0);
      if (next + length > text.length) break;
      body = text.slice(next, next + length);
      next += length;
    }
    responses.push({ head, status: Number(lines[0].split(" ")[1]), headers, body });
    at = next;
  }
  return responses;
}

/** Waits (at most timeoutMs) until `count` complete responses arrived on the connection. */
async function responses(connection: RawConnection, count: number, timeoutMs = 3000): Promise<ParsedResponse[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const parsed = parseResponses(connection.received());
    if (parsed.length >= count || Date.now() > deadline) return parsed;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A response head with the parts that change from call to call (the date) blanked. */
const stable = (response: ParsedResponse) => response.head.replace(/\r\nDate: [^\r]+/, "\r\nDate: -");

/** A lean server and a node:http one with the same routes, started for the describe block that asks. */
function leanAndPlainServers(): { lean: TestServer; plain: TestServer } {
  const lean = {} as TestServer;
  const plain = {} as TestServer;
  beforeAll(async () => {
    const [started, reference] = await Promise.all([startServer(true), startServer(false)]);
    Object.assign(lean, started);
    Object.assign(plain, reference);
  });
  afterAll(() => {
    lean.server.destroyAll();
    plain.server.destroyAll();
  });
  return { lean, plain };
}

describe.runIf(nodeParserBinding !== undefined)("lean HTTP/1.1 connections", () => {
  const { lean, plain } = leanAndPlainServers();

  /** The same bytes on a fresh connection to each server; both answers, parsed. */
  async function sendToBoth(bytes: Buffer, count = 1): Promise<[ParsedResponse[], ParsedResponse[]]> {
    const results: ParsedResponse[][] = [];
    for (const target of [lean, plain]) {
      const connection = await rawConnect(target.port);
      await connection.write(bytes);
      results.push(await responses(connection, count));
      connection.destroy();
    }
    return [results[0], results[1]];
  }

  it("writes a served call's answer byte for byte as node:http does (Connect JSON, proto, errors, refusals)", async () => {
    const requests = [
      divide(10, 4),
      divide(1, 0),
      divide(666, 1),
      post(Buffer.from(toBinary(DivideRequestSchema, create(DivideRequestSchema, { dividend: 9, divisor: 3 }))), {}, "application/proto"),
      post(json({ dividend: 5, divisor: 5 }), { "connect-protocol-version": "1", "x-custom": "kept" }),
    ];
    const before = lean.lean.count;
    for (const request of requests) {
      const [fromLean, fromNode] = await sendToBoth(request);
      expect(fromLean).toHaveLength(1);
      expect(stable(fromLean[0])).toBe(stable(fromNode[0]));
      expect(fromLean[0].body).toBe(fromNode[0].body);
    }
    expect(lean.lean.count - before).toBe(requests.length);
    expect(plain.lean.count).toBe(0);
  });

  it("answers a request connect-node must judge (malformed JSON) through node:http's own objects, and stays lean", async () => {
    const before = lean.lean.count;
    const results: ParsedResponse[][] = [];
    for (const target of [lean, plain]) {
      const connection = await rawConnect(target.port);
      await connection.write(post('{"dividend":'));
      await responses(connection, 1);
      await connection.write(divide(8, 2));
      results.push(await responses(connection, 2));
      connection.destroy();
    }
    const [fromLean, fromNode] = results;
    expect(fromLean.map((r) => r.status)).toEqual([400, 200]);
    expect(fromLean.map(stable)).toEqual(fromNode.map(stable));
    expect(fromLean.map((r) => r.body)).toEqual(fromNode.map((r) => r.body));
    expect(JSON.parse(fromLean[0].body).code).toBe("invalid_argument");
    expect(lean.lean.count - before).toBe(2);
  });

  it("serves many calls on one keep-alive connection", async () => {
    const before = lean.lean.count;
    const connection = await rawConnect(lean.port);
    for (let i = 1; i <= 20; i++) {
      await connection.write(divide(i * 2, 2));
      const answers = await responses(connection, i);
      expect(answers).toHaveLength(i);
      expect(JSON.parse(answers[i - 1].body)).toEqual({ quotient: i });
      expect(answers[i - 1].headers.connection).toBe("keep-alive");
    }
    connection.destroy();
    expect(lean.lean.count - before).toBe(20);
  });

  it("reads a request that arrives a few bytes at a time", async () => {
    const connection = await rawConnect(lean.port);
    const request = divide(21, 7);
    for (let at = 0; at < request.length; at += 7) {
      await connection.write(request.subarray(at, at + 7));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const [answer] = await responses(connection, 1);
    expect(JSON.parse(answer.body)).toEqual({ quotient: 3 });
    connection.destroy();
  });

  it("hands the connection to node:http at the first request it does not serve, every byte intact", async () => {
    const connection = await rawConnect(lean.port);
    await connection.write(divide(4, 2));
    await responses(connection, 1);
    // A plain GET, then calls: node:http owns the connection from the GET on.
    await connection.write(Buffer.concat([GET_HEALTH, divide(9, 3), divide(8, 4)]));
    const answers = await responses(connection, 4);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(answers.map((r) => r.body)).toEqual([json({ quotient: 2 }), "alive", json({ quotient: 3 }), json({ quotient: 2 })]);
    connection.destroy();
  });

  it("answers pipelined requests in order: the second waits for the first, then goes to node:http", async () => {
    const connection = await rawConnect(lean.port);
    await connection.write(Buffer.concat([post(json({ dividend: 999, divisor: 9 })), divide(6, 3), GET_HEALTH]));
    const answers = await responses(connection, 3, 3000);
    expect(answers.map((r) => r.body)).toEqual([json({ quotient: 111 }), json({ quotient: 2 }), "alive"]);
    connection.destroy();
  });

  const handedOver: [string, Buffer, number][] = [
    [
      "a chunked body",
      Buffer.from(`POST ${DIVIDE} HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n8\r\n{"divide\r\n` + `e\r\nnd":6,"divisor\r\n4\r\n":2}\r\n0\r\n\r\n`, "latin1"),
      3,
    ],
    ["a repeated header", post(json({ dividend: 6, divisor: 2 }), { "x-twice": "1", "X-Twice": "2" }), 3],
    ["HTTP/1.0", Buffer.from(post(json({ dividend: 6, divisor: 2 })).toString("latin1").replace("HTTP/1.1", "HTTP/1.0"), "latin1"), 3],
    ["Expect: 100-continue", post(json({ dividend: 6, divisor: 2 }), { expect: "100-continue" }), 3],
  ];
  for (const [name, request, quotient] of handedOver) {
    it(`leaves ${name} to node:http, which answers it as it answers a connection of its own`, async () => {
      const before = lean.lean.count;
      const [fromLean, fromNode] = await sendToBoth(request);
      expect(lean.lean.count).toBe(before);
      expect(fromLean.length).toBeGreaterThan(0);
      expect(fromLean.at(-1)!.body).toBe(json({ quotient }));
      expect(fromLean.map(stable)).toEqual(fromNode.map(stable));
    });
  }

  it("keeps every header of a head it hands over, so the body is framed as the client framed it", async () => {
    // More header lines than node:http keeps (2000), then the length: the body must stay a body.
    const smuggled = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    const head = `POST ${DIVIDE} HTTP/1.1\r\nHost: test\r\n` + "a:\r\n".repeat(2100) + `content-length: ${smuggled.length}\r\n\r\n`;
    const [fromLean, fromNode] = await sendToBoth(Buffer.from(head + smuggled, "latin1"), 2);
    expect(fromLean.map((r) => r.body)).not.toContain("alive");
    expect(fromLean.map(stable)).toEqual(fromNode.map(stable));
    expect(fromLean).toHaveLength(1);
  });

  it("hands over requests with methods and versions node:http takes from llhttp's own numbering", async () => {
    for (const request of ["QUERY /healthz HTTP/1.1\r\nHost: test\r\n\r\n", "PATCH /healthz HTTP/1.1\r\nHost: test\r\n\r\n", "GET /healthz HTTP/2.0\r\nHost: test\r\n\r\n"]) {
      const [fromLean, fromNode] = await sendToBoth(Buffer.from(request, "latin1"));
      expect(fromLean.length).toBe(1);
      expect(fromLean.map(stable)).toEqual(fromNode.map(stable));
      expect(fromLean[0].body).toBe(fromNode[0].body);
    }
  });

  it("closes after answering a request that asks for Connection: close", async () => {
    const connection = await rawConnect(lean.port);
    await connection.write(post(json({ dividend: 6, divisor: 2 }), { connection: "close" }));
    const outcome = await connection.closed(2000);
    expect(outcome.closedByServer).toBe(true);
    const [answer] = parseResponses(outcome.received);
    expect(answer.headers.connection).toBe("close");
    expect(answer.body).toBe(json({ quotient: 3 }));
  });

  it("answers a malformed request with node:http's 400 and closes; a call before it still gets its answer", async () => {
    for (const lead of [Buffer.alloc(0), divide(2, 1)]) {
      const connection = await rawConnect(lean.port);
      await connection.write(Buffer.concat([lead, Buffer.from("NOT HTTP AT ALL\r\n\r\n", "latin1")]));
      const outcome = await connection.closed(2000);
      expect(outcome.closedByServer).toBe(true);
      const text = outcome.received.toString("latin1");
      expect(text.endsWith("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")).toBe(true);
      if (lead.length > 0) expect(text).toContain(json({ quotient: 2 }));
    }
  });

  it("answers an oversized header block with 431 and closes", async () => {
    const connection = await rawConnect(lean.port);
    await connection.write(post("{}", { "x-big": "a".repeat(20_000) }));
    const outcome = await connection.closed(2000);
    expect(outcome.closedByServer).toBe(true);
    expect(outcome.received.toString("latin1")).toBe("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n");
  });

  it("survives a client that hangs up in the middle of a body, and serves the next connection", async () => {
    const connection = await rawConnect(lean.port);
    const request = divide(10, 5);
    await connection.write(request.subarray(0, request.length - 3));
    await new Promise((resolve) => setTimeout(resolve, 50));
    connection.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = await rawConnect(lean.port);
    await next.write(divide(10, 5));
    expect((await responses(next, 1))[0].body).toBe(json({ quotient: 2 }));
    next.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lean.server.openConnections()).toBe(0);
  });

  it("serves a Node HTTP client's keep-alive requests on one connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = lean.lean.count;
    try {
      for (let i = 1; i <= 5; i++) {
        const body = await new Promise<string>((resolve, reject) => {
          const req = http.request({ host: "127.0.0.1", port: lean.port, path: DIVIDE, method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (text += chunk));
            res.on("end", () => resolve(text));
          });
          req.on("error", reject);
          req.end(json({ dividend: i, divisor: 1 }));
        });
        expect(JSON.parse(body)).toEqual({ quotient: i });
      }
    } finally {
      agent.destroy();
    }
    expect(lean.lean.count - before).toBe(5);
  });
});

/** Waits until the connection has been quiet for quietMs (or closed), at most timeoutMs. */
async function settled(connection: RawConnection, quietMs = 120, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = -1;
  let quietSince = Date.now();
  while (Date.now() < deadline && !connection.socket.destroyed) {
    const length = connection.received().length;
    if (length !== seen) {
      seen = length;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.runIf(nodeParserBinding !== undefined)("lean HTTP/1.1 connections: random request sequences", () => {
  const { lean, plain } = leanAndPlainServers();

  const BROKEN = Buffer.from("BROKEN\r\n\r\n", "latin1");
  // Requests the lean path serves, hands to connect-node, or hands (with the connection) to node:http.
  const request = fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 5 })).map(([a, b]) => divide(a, b)),
    fc.constant(GET_HEALTH),
    fc.constant(post('{"dividend":')),
    fc.constant(post(Buffer.from(toBinary(DivideRequestSchema, create(DivideRequestSchema, { dividend: 8, divisor: 2 }))), {}, "application/proto")),
    fc.constant(post(json({ dividend: 9, divisor: 3 }), { "x-twice": "1", "X-Twice": "2" })),
    fc.constant(post(json({ dividend: 9, divisor: 3 }), { connection: "close" })),
    fc.constant(Buffer.from(`POST ${DIVIDE} HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"di\r\n16\r\nvidend":6,"divisor":2}\r\n0\r\n\r\n`, "latin1")),
    fc.constant(BROKEN),
  );

  it("answer any sequence, however it is cut into packets, as node:http answers it", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(request, { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (requests, cuts, oneByOne) => {
          const answers: string[][] = [];
          for (const target of [lean, plain]) {
            const connection = await rawConnect(target.port);
            if (oneByOne) {
              // Each request once the previous one is answered: keep-alive reuse and hand-over.
              for (const bytes of requests) {
                await connection.write(bytes);
                await settled(connection);
              }
            } else {
              // Everything at once, cut at the given sizes: pipelining, heads split anywhere.
              const bytes = Buffer.concat(requests);
              let at = 0;
              for (let i = 0; at < bytes.length; i++) {
                const size = cuts[i % cuts.length];
                await connection.write(bytes.subarray(at, at + size));
                at += size;
              }
              await settled(connection);
            }
            answers.push(parseResponses(connection.received()).map((r) => `${stable(r)}${r.body}`));
            connection.destroy();
          }
          const [fromLean, fromNode] = answers;
          expect(fromLean.length).toBeGreaterThan(0);
          // The one known difference: when bytes that cannot be parsed (garbage, or anything after
          // a Connection: close request) follow requests not yet answered, node:http answers 400
          // (only if no answer has started) and drops the answers not yet written. The lean path
          // writes the answers already due first, and so may get further before the connection
          // is closed. Then what node:http answered must be the start of the lean answers.
          const parseError = (answer: string | undefined) => answer?.startsWith("HTTP/1.1 400 Bad Request\r\nConnection: close") === true;
          if (parseError(fromNode.at(-1)) && !parseError(fromLean.at(fromNode.length - 1))) {
            const answered = parseError(fromLean.at(-1)) ? fromLean.slice(0, -1) : fromLean;
            expect(answered.length).toBeGreaterThanOrEqual(fromNode.length - 1);
            expect(answered.slice(0, fromNode.length - 1)).toEqual(fromNode.slice(0, -1));
          } else {
            expect(fromLean).toEqual(fromNode);
          }
        },
      ),
      fuzzParameters(0.1),
    );
    // About a quarter of a second a run (30 here). A longer run, which gets the time it needs:
    // FUZZ_RUNS=2000 FUZZ_SEED=1 npx vitest run test/http1 -t "random" (200 sequences).
  }, 10_000 + (fuzzParameters(0.1).numRuns ?? 30) * 1_000);
});

describe.runIf(nodeParserBinding !== undefined)("lean HTTP/1.1 connections: timeouts and shutdown", () => {
  it("answers a head that stalls with 408 once headersTimeoutMs is over, as node:http does", async () => {
    const target = await startServer(true, { headersTimeoutMs: 300 });
    try {
      const connection = await rawConnect(target.port);
      await connection.write(divide(4, 2));
      expect((await responses(connection, 1))[0].body).toBe(json({ quotient: 2 }));
      await connection.write(`POST ${DIVIDE} HTTP/1.1\r\nHost: test\r\n`);
      const outcome = await connection.closed(3000);
      expect(outcome.closedByServer).toBe(true);
      expect(outcome.received.toString("latin1").endsWith("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")).toBe(true);
    } finally {
      target.server.destroyAll();
    }
  });

  it("closes a keep-alive connection idle for idleTimeoutMs, but not one whose call is still running", async () => {
    const target = await startServer(true, { idleTimeoutMs: 200 });
    try {
      const idle = await rawConnect(target.port);
      await idle.write(divide(4, 2));
      await responses(idle, 1);
      const started = Date.now();
      const outcome = await idle.closed(3000);
      expect(outcome.closedByServer).toBe(true);
      expect(Date.now() - started).toBeLessThan(2000);
      // A call longer than the idle timeout still gets its answer, and the connection is closed
      // once it has been idle after that.
      const busy = await rawConnect(target.port);
      await busy.write(post(json({ dividend: 999, divisor: 3 })));
      const [answer] = await responses(busy, 1, 3000);
      expect(answer.body).toBe(json({ quotient: 333 }));
      const afterBusy = await busy.closed(3000);
      expect(afterBusy.closedByServer).toBe(true);
    } finally {
      target.server.destroyAll();
    }
  });

  it("on stopAccepting closes idle connections at once and a busy one after its answer, which says Connection: close", async () => {
    const target = await startServer(true);
    try {
      const idle = await rawConnect(target.port);
      await idle.write(divide(4, 2));
      await responses(idle, 1);
      const busy = await rawConnect(target.port);
      await busy.write(post(json({ dividend: 999, divisor: 1 })));
      await new Promise((resolve) => setTimeout(resolve, 50));
      target.server.stopAccepting();
      expect((await idle.closed(1000)).closedByServer).toBe(true);
      const outcome = await busy.closed(3000);
      expect(outcome.closedByServer).toBe(true);
      const [answer] = parseResponses(outcome.received);
      expect(answer.body).toBe(json({ quotient: 999 }));
      expect(answer.headers.connection).toBe("close");
      for (let wait = 0; wait < 100 && target.server.openConnections() > 0; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(target.server.openConnections()).toBe(0);
    } finally {
      target.server.destroyAll();
    }
  });
});

describe.runIf(nodeParserBinding !== undefined)("lean HTTP/1.1 connections: the drain", () => {
  it("lets a request whose head is half sent finish when the drain begins, and closes after its answer", async () => {
    const target = await startServer(true);
    try {
      const connection = await rawConnect(target.port);
      const request = divide(12, 4);
      await connection.write(request.subarray(0, 20));
      await new Promise((resolve) => setTimeout(resolve, 50));
      target.server.stopAccepting();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await connection.write(request.subarray(20));
      const outcome = await connection.closed(3000);
      expect(outcome.closedByServer).toBe(true);
      const [answer] = parseResponses(outcome.received);
      expect(answer.body).toBe(json({ quotient: 3 }));
      expect(answer.headers.connection).toBe("close");
    } finally {
      target.server.destroyAll();
    }
  });

  it("survives a client that resets its connection while its call runs during the drain", async () => {
    const target = await startServer(true);
    try {
      const connection = await rawConnect(target.port);
      await connection.write(post(json({ dividend: 999, divisor: 1 })));
      await new Promise((resolve) => setTimeout(resolve, 50));
      target.server.stopAccepting();
      connection.socket.resetAndDestroy();
      // The answer is written to a reset socket: an unheard 'error' there would fail this file.
      await new Promise((resolve) => setTimeout(resolve, SLOW_MS + 200));
      expect(target.server.openConnections()).toBe(0);
    } finally {
      target.server.destroyAll();
    }
  });
});

describe.runIf(nodeParserBinding !== undefined)("lean HTTP/1.1 connections: the drain and answers still going out", () => {
  const request = `POST /any HTTP/1.1\r\nHost: test\r\ncontent-length: 0\r\n\r\n`;

  it("sends the whole of a large answer the client has not read yet when the drain begins, then closes", async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const { server, port } = await startBareLeanServer((exchange) => {
      exchange.on("end", () => exchange.respond(200, { "content-type": "text/plain" }, big));
      return true;
    });
    try {
      const { head, totalBytes, closedByServer } = await readAnswerAfterDrain(port, request, () => server.stopAccepting());
      expect(closedByServer).toBe(true);
      expect(head).toContain(`Content-Length: ${big.length}`);
      expect(totalBytes).toBe(head.length + big.length);
    } finally {
      server.destroyAll();
    }
  });

  it("says Connection: close in a connect-node answer written after the drain began, and closes", async () => {
    const { server, port } = await startBareLeanServer((exchange) => {
      exchange.on("end", () => {
        const { res } = exchange.toNodeRequest();
        setTimeout(() => {
          server.stopAccepting();
          res.writeHead(200, { "content-type": "text/plain" });
          res.end("late");
        }, 50);
      });
      return true;
    });
    try {
      const connection = await rawConnect(port);
      await connection.write(request);
      const outcome = await connection.closed(3000);
      expect(outcome.closedByServer).toBe(true);
      const [answer] = parseResponses(outcome.received);
      expect(answer.body).toBe("late");
      expect(answer.headers.connection).toBe("close");
    } finally {
      server.destroyAll();
    }
  });
});

describe.runIf(nodeParserBinding !== undefined)("lean HTTP/1.1 connections: a failure of our own", () => {
  it("cuts only the connection whose request handler threw, and logs it", async () => {
    const logged: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger("error", sink);
    const { server, port } = await startBareLeanServer((exchange) => {
      if (exchange.headers["x-explode"] !== undefined) throw new TypeError("handler bug");
      return false;
    }, logger);
    try {
      const failing = await rawConnect(port);
      await failing.write(post("{}", { "x-explode": "1" }));
      const outcome = await failing.closed(2000);
      expect(outcome.closedByServer).toBe(true);
      expect(outcome.received.length).toBe(0);
      const fine = await rawConnect(port);
      await fine.write(post("{}"));
      expect((await responses(fine, 1))[0].body).toBe("node");
      fine.destroy();
      logger.flush();
      expect(logged.join("")).toContain("lean HTTP/1.1 connection failed");
      expect(logged.join("")).toContain("handler bug");
    } finally {
      server.destroyAll();
    }
  });
});

describe("lean HTTP/1.1 connections: where they apply", () => {
  it("are available on this Node (20 and 22 were checked); elsewhere node:http serves HTTP/1.1 alone", () => {
    const major = Number(process.versions.node.split(".")[0]);
    expect(nodeParserBinding !== undefined).toBe(major === 20 || major === 22);
  });
});
