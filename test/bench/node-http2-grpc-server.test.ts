import { spawn, type ChildProcess } from "node:child_process";
import * as http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService, GreetRequestSchema, GreetResponseSchema } from "../../gen/demo/v1/greeter_pb.js";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The benchmark's gRPC floor, started as the benchmark starts it (on a free port). */
let child: ChildProcess;
let url: string;

beforeAll(async () => {
  child = spawn(process.execPath, ["--import", "tsx", "bench/servers/node-http2-grpc-server.ts", "0"], { cwd: projectRoot, stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const ready = /READY (\d+)/.exec(out);
      if (ready) resolve(ready[1]);
    });
    child.once("exit", (code) => reject(new Error(`the floor server exited with ${code}`)));
  });
  url = `http://127.0.0.1:${port}`;
}, 30_000);

afterAll(() => {
  child.kill("SIGKILL");
});

/** One raw gRPC exchange: response headers, body and trailers as the server sent them. */
async function exchange(path: string, body: Buffer, contentType = "application/grpc") {
  const session = http2.connect(url);
  try {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    stream.end(body);
    const [headers, chunks, trailers] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("response", resolve)),
      new Promise<Buffer[]>((resolve) => {
        const parts: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => parts.push(chunk));
        stream.once("end", () => resolve(parts));
      }),
      new Promise<http2.IncomingHttpHeaders | undefined>((resolve) => {
        stream.once("trailers", resolve);
        stream.once("close", () => resolve(undefined));
      }),
    ]);
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
    expect(compressed.headers["grpc-status"]).toBe(String(Code.Unimplemented));
    const truncated = await exchange(PATH, enveloped(new Uint8Array([0x0a, 5, 0x61])).subarray(0, 6));
    expect(truncated.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    const notGrpc = await exchange(PATH, Buffer.from("{}"), "application/json");
    expect(notGrpc.headers["grpc-status"]).toBe(String(Code.Unimplemented));
  });
});
