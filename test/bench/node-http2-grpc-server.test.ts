import { once } from "node:events";
import * as http2 from "node:http2";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService, GreetRequestSchema, GreetResponseSchema } from "../../gen/demo/v1/greeter_pb.js";
import { NODE_HTTP2_GRPC_ID, SERVERS, type RunningServer } from "../../bench/servers/registry.js";
import { EMPTY_SETTINGS, Flags, FrameType, HTTP2_PREFACE, frame, headerBlock, rawConnect } from "../support/raw-http.js";

/** The benchmark's gRPC floor, started by its registry entry as the benchmark starts it. */
let server: RunningServer;
let url: string;

beforeAll(async () => {
  server = await SERVERS.find((spec) => spec.id === NODE_HTTP2_GRPC_ID)!.start();
  url = server.endpoint("grpc")!.url;
}, 60_000);

afterAll(async () => {
  await server?.stop(2000);
});

interface Exchange {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | undefined;
}

/** One raw exchange: response headers, body and trailers as the server sent them; fails on a stream or session error. */
async function exchange(path: string, body: Buffer, contentType = "application/grpc", method = "POST"): Promise<Exchange> {
  const session = http2.connect(url);
  try {
    const stream = session.request({ ":method": method, ":path": path, "content-type": contentType, te: "trailers" });
    stream.end(method === "POST" ? body : undefined);
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders | undefined;
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("trailers", (received: http2.IncomingHttpHeaders) => (trailers = received));
    const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
    if (!stream.closed) await once(stream, "close");
    return { headers, body: Buffer.concat(chunks), trailers };
  } finally {
    session.close();
  }
}

function enveloped(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + message.byteLength);
  out[0] = flags;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

const PATH = "/demo.v1.GreeterService/Greet";

describe("the benchmark's gRPC floor (bench/servers/node-http2-grpc-server.ts)", () => {
  it("answers Greet to a gRPC client as the gateway does", async () => {
    const client = createClient(GreeterService, createGrpcTransport({ baseUrl: url }));
    expect((await client.greet({ name: "floor" })).greeting).toBe("Hello, floor!");
  });

  it("sends the message in a body and grpc-status 0 in trailers", async () => {
    const reply = await exchange(PATH, enveloped(toBinary(GreetRequestSchema, create(GreetRequestSchema, { name: "raw" }))));
    expect(reply.headers[":status"]).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/grpc");
    expect(reply.body.readUInt32BE(1)).toBe(reply.body.length - 5);
    expect(fromBinary(GreetResponseSchema, reply.body.subarray(5)).greeting).toBe("Hello, raw!");
    expect(reply.trailers?.["grpc-status"]).toBe("0");
  });

  it("answers what it does not serve trailers-only, with the gRPC status that says why", async () => {
    const unknown = await exchange("/demo.v1.GreeterService/Nope", enveloped(new Uint8Array()));
    expect(unknown.headers["grpc-status"]).toBe(String(Code.Unimplemented));
    expect(unknown.body.length).toBe(0);
    const compressed = await exchange(PATH, enveloped(new Uint8Array([1, 2]), 1));
    expect(compressed.headers["grpc-status"]).toBe(String(Code.Internal));
    const truncated = await exchange(PATH, enveloped(new Uint8Array([0x0a, 5, 0x61])).subarray(0, 6));
    expect(truncated.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
  });

  it("refuses what is not a gRPC request with the HTTP status the gRPC spec names", async () => {
    const notGrpc = await exchange(PATH, Buffer.from("{}"), "application/json");
    expect(notGrpc.headers[":status"]).toBe(415);
    const notPost = await exchange(PATH, Buffer.alloc(0), "application/grpc", "GET");
    expect(notPost.headers[":status"]).toBe(405);
  });

  it("stays up when a client resets its calls in the same packet that ends them", async () => {
    // END_STREAM and RST_STREAM(NO_ERROR) read together: each answer races its stream's reset, and
    // Node's respond() throws on a stream the reset has closed.
    const port = Number(new URL(url).port);
    const request = enveloped(toBinary(GreetRequestSchema, create(GreetRequestSchema, { name: "gone" })));
    const headers = headerBlock([
      [":method", "POST"],
      [":scheme", "http"],
      [":path", PATH],
      [":authority", `127.0.0.1:${port}`],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ]);
    const frames = [HTTP2_PREFACE, EMPTY_SETTINGS];
    for (let id = 1; id <= 39; id += 2) {
      frames.push(frame(FrameType.HEADERS, Flags.END_HEADERS, id, headers), frame(FrameType.DATA, Flags.END_STREAM, id, request), frame(FrameType.RST_STREAM, 0, id, Buffer.alloc(4)));
    }
    const connection = await rawConnect(port);
    await connection.write(Buffer.concat(frames));
    await connection.closed(300);
    const client = createClient(GreeterService, createGrpcTransport({ baseUrl: url }));
    expect((await client.greet({ name: "after" })).greeting).toBe("Hello, after!");
});
});
