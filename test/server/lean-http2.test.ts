import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService, GreetRequestSchema } from "../../gen/demo/v1/greeter_pb.js";
import { Http2ServerConnection } from "../../src/http2/server/server-connection.js";
import { curl } from "../support/curl.js";
import { encodeEnvelope } from "../support/envelope.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

/*
 * fastPath.leanHttp2: cleartext HTTP/2 on the gateway's own HTTP/2 server. The hot calls are served
 * on its streams, everything else is relayed in-process to Node's http2 server; a client must not
 * be able to tell which server answered. (It is the default: every suite runs on it, and the
 * "node-http2" vitest project runs the end-to-end suites again on Node's server.)
 */

describe("lean HTTP/2 connections", () => {
  let lean: StartedGateway;
  let node: StartedGateway;
  const received = vi.spyOn(Http2ServerConnection.prototype, "receive");
  beforeAll(async () => {
    lean = await startGateway({ fastPath: { leanHttp2: true } });
    node = await startGateway({ fastPath: { leanHttp2: false } });
  });
  afterAll(async () => {
    received.mockRestore();
    await lean?.close();
    await node?.close();
  });

  it("serves cleartext HTTP/2 on the own server: fast-path and relayed calls on one connection", async () => {
    const sessionManager = new Http2SessionManager(lean.url);
    try {
      const transport = createGrpcTransport({ baseUrl: lean.url, sessionManager });
      const before = received.mock.calls.length;
      // Greet is a fast-path call; Sum (client streaming) is relayed to Node's http2 server.
      const greeting = await createClient(GreeterService, transport).greet({ name: "Ada" });
      async function* numbers() {
        for (let i = 1n; i <= 4n; i++) yield { number: i };
      }
      const sum = await createClient(CalculatorService, transport).sum(numbers());
      expect(greeting.greeting).toBe("Hello, Ada!");
      expect(sum.sum).toBe(10n);
      expect(received.mock.calls.length).toBe(before + 1);
      // Both calls are logged with the client's address, the relayed one too.
      const lines = lean.logs.filter((line) => line.msg === "rpc" && ["demo.v1.GreeterService/Greet", "demo.v1.CalculatorService/Sum"].includes(line.method as string));
      expect(lines.map((line) => [line.method, line.peer])).toEqual([
        ["demo.v1.GreeterService/Greet", "127.0.0.1"],
        ["demo.v1.CalculatorService/Sum", "127.0.0.1"],
      ]);
    } finally {
      sessionManager.abort();
    }
  });

  it("answers a Connect GET over h2c (relayed) as Node's server does", async () => {
    const message = encodeURIComponent(JSON.stringify({ name: "Ada" }));
    const path = `/demo.v1.GreeterService/Greet?encoding=json&message=${message}`;
    const [fromLean, fromNode] = await Promise.all([lean, node].map((gw) => curl(`${gw.url}${path}`, { http: "2" })));
    expect(fromLean.httpVersion).toBe("2");
    expect(fromLean.status).toBe(fromNode.status);
    expect(withoutVarying(fromLean.headers)).toEqual(withoutVarying(fromNode.headers));
    expect(JSON.parse(fromLean.text).greeting).toBe("Hello, Ada!");
  });

  it("gives the same answer as Node's server when the fast path hands a call over after reading it", async () => {
    // A truncated protobuf message: the fast path reads it, cannot decode it, and replays it to
    // connect-node, which on the own server means the relay with the bytes already read.
    const valid = toBinary(GreetRequestSchema, create(GreetRequestSchema, { name: "Ada Lovelace" }));
    const body = encodeEnvelope(valid.subarray(0, valid.length - 3));
    const [fromLean, fromNode] = await Promise.all([lean, node].map((gw) => rawGrpcCall(gw.url, "/demo.v1.GreeterService/Greet", body)));
    // connect-node's answer to a message it cannot parse.
    expect(fromLean.trailers).toEqual({ "grpc-status": "13", "grpc-message": "parse binary: premature EOF" });
    expect(fromLean).toEqual(fromNode);
  });
});

describe("lean HTTP/2 connections with a request gate", () => {
  let lean: StartedGateway;
  let node: StartedGateway;
  beforeAll(async () => {
    // A call the fast path hands over to connect-node meets the gate on both paths, on either
    // server (two tokens; it should be one, see the README's known limits). A burst of two lets
    // that through; a third gate run (the fast path again, on Node's side of the relay) would not.
    const rateLimit = { enabled: true, requestsPerSecond: 1, burst: 2 };
    lean = await startGateway({ fastPath: { leanHttp2: true }, security: { rateLimit } });
    node = await startGateway({ fastPath: { leanHttp2: false }, security: { rateLimit } });
  });
  afterAll(async () => {
    await lean?.close();
    await node?.close();
  });

  it("does not offer a relayed call to the fast path again", async () => {
    const valid = toBinary(GreetRequestSchema, create(GreetRequestSchema, { name: "Ada Lovelace" }));
    const body = encodeEnvelope(valid.subarray(0, valid.length - 3));
    const [fromLean, fromNode] = await Promise.all([lean, node].map((gw) => rawGrpcCall(gw.url, "/demo.v1.GreeterService/Greet", body)));
    expect(fromLean.trailers).toEqual({ "grpc-status": "13", "grpc-message": "parse binary: premature EOF" });
    expect(fromLean).toEqual(fromNode);
  });
});

/** One gRPC call with Node's http2 client: status, headers and trailers without the per-call fields. */
async function rawGrpcCall(url: string, path: string, body: Buffer): Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown>; body: string }> {
  const session = http2.connect(url);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
      let headers: Record<string, unknown> = {};
      let trailers: Record<string, unknown> = {};
      const parts: Buffer[] = [];
      stream.on("response", (h) => (headers = withoutVarying(h)));
      stream.on("trailers", (t) => (trailers = withoutVarying(t)));
      stream.on("data", (chunk: Buffer) => parts.push(chunk));
      stream.on("end", () => resolve({ headers, trailers, body: Buffer.concat(parts).toString("hex") }));
      stream.on("error", reject);
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

/** Header fields without those that differ call by call (date, request id). */
function withoutVarying(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name !== "date" && name !== "x-request-id"));
}
