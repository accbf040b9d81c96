/**
 * The access log line and the request id: accepted from x-request-id or generated, returned on
 * success and on error, on every protocol; trace id from traceparent; peer address; secrets redacted.
 */
import * as http2 from "node:http2";
import { Writable } from "node:stream";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { createLogger } from "../../src/ops/logger.js";
import { connectNodeTransports, type TransportMatrix } from "../support/connect-transports.js";
import { curl } from "../support/curl.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

let gw: StartedGateway;
let matrix: TransportMatrix;

beforeAll(async () => {
  gw = await startGateway();
  matrix = connectNodeTransports(gw.url);
});
afterAll(async () => {
  matrix?.close();
  await gw?.close();
});

const settle = () => new Promise((r) => setTimeout(r, 30));
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

describe("request id", () => {
  for (const name of ["connect over HTTP/1.1, json", "connect over HTTP/2, binary", "grpc over HTTP/2, binary", "grpc-web over HTTP/1.1, binary"]) {
    it(`${name}: the client's id is returned and logged with the trace id and peer`, async () => {
      const client = createClient(GreeterService, matrix.get(name).transport);
      const id = `req-${name.replace(/\W+/g, "-")}`;
      let returned: string | null = null;
      await client.greet({ name: "Ada" }, { headers: { "x-request-id": id, traceparent: TRACEPARENT }, onHeader: (h) => (returned = h.get("x-request-id")) });
      expect(returned).toBe(id);
      await settle();
      const line = gw.logs.find((l) => l.requestId === id);
      expect(line).toMatchObject({ method: "demo.v1.GreeterService/Greet", code: "ok", traceId: TRACE_ID, peer: "127.0.0.1" });
      expect(typeof line!.durationMs).toBe("number");
    });

    it(`${name}: without one, an id is generated, returned on errors too, and logged`, async () => {
      const client = createClient(GreeterService, matrix.get(name).transport);
      let error: ConnectError | undefined;
      try {
        await client.greet({ name: "" });
      } catch (e) {
        error = ConnectError.from(e);
      }
      expect(error?.code).toBe(Code.InvalidArgument);
      const id = error!.metadata.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      await settle();
      expect(gw.logs.find((l) => l.requestId === id)).toMatchObject({ code: "invalid_argument" });
    });
  }

  it("curl sees x-request-id in the response headers; an unusable client id is replaced", async () => {
    const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, {
      http: "2",
      headers: { "content-type": "application/json", "x-request-id": "x".repeat(300) },
      body: '{"name":"Ada"}',
    });
    expect(res.status).toBe(200);
    expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("a client id with quotes and backslashes is kept, and the log line stays valid JSON", async () => {
    const id = 'quote"back\\slash';
    const client = createClient(GreeterService, matrix.get("grpc over HTTP/2, binary").transport);
    let returned: string | null = null;
    await client.greet({ name: "Ada" }, { headers: { "x-request-id": id }, onHeader: (h) => (returned = h.get("x-request-id")) });
    expect(returned).toBe(id);
    await settle();
    // The sink parses every line as JSON: an unescaped quote would have thrown there.
    expect(gw.logs.find((l) => l.requestId === id)).toMatchObject({ method: "demo.v1.GreeterService/Greet", protocol: "grpc", code: "ok" });
  });

  it("streams return the id in the response headers", async () => {
    const client = createClient(GreeterService, matrix.get("grpc over HTTP/2, binary").transport);
    let returned: string | null = null;
    for await (const _ of client.greetStream({ name: "Ada", count: 2 }, { headers: { "x-request-id": "stream-1" }, onHeader: (h) => (returned = h.get("x-request-id")) })) {
      // drain
    }
    expect(returned).toBe("stream-1");
  });
});

describe("calls refused before the interceptors run", () => {
  const logged = (id: string) => gw.logs.find((l) => l.requestId === id);

  it("an unsupported content-type (415) and HTTP method (405) on a served procedure get a line with the reason", async () => {
    for (const http of ["1.1", "2"] as const) {
      const wrongType = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, { http, headers: { "content-type": "text/plain", "x-request-id": `refused-415-${http}` }, body: "hi" });
      expect(wrongType.status).toBe(415);
      const wrongMethod = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, { http, method: "PUT", headers: { "content-type": "application/json", "x-request-id": `refused-405-${http}` }, body: "{}" });
      expect(wrongMethod.status).toBe(405);
      // The answers carry the id the line is logged under.
      expect([wrongType.headers["x-request-id"], wrongMethod.headers["x-request-id"]]).toEqual([`refused-415-${http}`, `refused-405-${http}`]);
      await settle();
      expect(logged(`refused-415-${http}`)).toMatchObject({ msg: "rpc", method: "demo.v1.GreeterService/Greet", httpMethod: "POST", code: "unknown", httpStatus: 415, refused: 'unsupported content-type "text/plain"', peer: "127.0.0.1" });
      expect(logged(`refused-405-${http}`)).toMatchObject({ msg: "rpc", method: "demo.v1.GreeterService/Greet", httpMethod: "PUT", code: "unknown", httpStatus: 405, refused: "HTTP method PUT not allowed" });
    }
  });

  it("a Connect GET with an unsupported encoding (415) and a call streaming both ways over HTTP/1.1 (505) get a line with the reason", async () => {
    const badEncoding = await curl(`${gw.url}/demo.v1.GreeterService/Greet?connect=v1&encoding=xml&message=%3Cx%2F%3E`, { http: "1.1", headers: { "x-request-id": "refused-get-encoding" } });
    expect(badEncoding.status).toBe(415);
    const bidi = await curl(`${gw.url}/demo.v1.CalculatorService/Accumulate`, { http: "1.1", headers: { "content-type": "application/connect+json", "x-request-id": "refused-bidi-h1" }, body: "" });
    expect(bidi.status).toBe(505);
    expect([badEncoding.headers["x-request-id"], bidi.headers["x-request-id"]]).toEqual(["refused-get-encoding", "refused-bidi-h1"]);
    await settle();
    expect(logged("refused-get-encoding")).toMatchObject({ method: "demo.v1.GreeterService/Greet", httpMethod: "GET", code: "unknown", httpStatus: 415, refused: 'unsupported Connect GET encoding "xml"' });
    expect(logged("refused-bidi-h1")).toMatchObject({ method: "demo.v1.CalculatorService/Accumulate", code: "unknown", httpStatus: 505, refused: "a call streaming both ways needs HTTP/2" });
  });

  it("a call to a procedure not served gets a line with code unimplemented, gRPC and Connect alike", async () => {
    const session = http2.connect(gw.url);
    try {
      const status = await new Promise<unknown>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/demo.v1.GreeterService/Nope", "content-type": "application/grpc", te: "trailers", "x-request-id": "unknown-grpc" });
        req.on("response", (headers) => resolve([headers["grpc-status"], headers["x-request-id"]]));
        req.on("error", reject);
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      });
      expect(status).toEqual(["12", "unknown-grpc"]);
    } finally {
      session.close();
    }
    const connect = await curl(`${gw.url}/no.such.Service/Call`, { http: "1.1", headers: { "content-type": "application/json", "x-request-id": "unknown-connect" }, body: "{}" });
    expect(connect.status).toBe(404);
    expect(connect.headers["x-request-id"]).toBe("unknown-connect");
    await settle();
    expect(logged("unknown-grpc")).toMatchObject({ method: "/demo.v1.GreeterService/Nope", protocol: "grpc", code: "unimplemented", refused: "unknown procedure" });
    expect(logged("unknown-grpc")!.httpStatus).toBeUndefined();
    // Over HTTP/2 a method is any token: what is logged of it is cut short.
    const session2 = http2.connect(gw.url);
    try {
      await new Promise<void>((resolve, reject) => {
        const req = session2.request({ ":method": "X".repeat(1000), ":path": "/no.such.Service/Call", "content-type": "application/grpc", "x-request-id": "long-method" });
        req.on("response", () => resolve());
        req.on("error", reject);
        req.end();
      });
    } finally {
      session2.close();
    }
    await settle();
    expect(logged("long-method")!.httpMethod).toBe("X".repeat(200));
    expect(logged("unknown-connect")).toMatchObject({ method: "/no.such.Service/Call", protocol: "connect", code: "unimplemented", httpStatus: 404, refused: "unknown procedure" });
  });
});

describe("redaction", () => {
  it("credentials in logged objects are censored", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger("info", sink);
    logger.info({ headers: { authorization: "Bearer s3cr3t", "x-api-key": "k_123", accept: "x" }, authorization: "Basic abc" }, "dump");
    logger.flush();
    const text = lines.join("");
    expect(text).not.toContain("s3cr3t");
    expect(text).not.toContain("k_123");
    expect(text).not.toContain("Basic abc");
    expect(text).toContain('"accept":"x"');
  });
});
