/**
 * A client may reset any stream with any error code (RFC 9113 §6.4). The gateway, as a user runs
 * it (src/main.ts in its own process, no safety net), must survive every code on every path —
 * the unary fast path and connect-node's — and keep serving. The HTTP/2 layer itself resets streams
 * that break the protocol (e.g. a body longer than its content-length), with the same effect.
 */
import { afterAll, beforeEach, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway-process.js";
import { EMPTY_SETTINGS, Flags, frame, FrameType, headerBlock, HTTP2_PREFACE, rawConnect } from "../support/raw-http.js";

const CODES = { PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11 };
const CALLS = [
  { name: "gRPC unary (fast path)", path: "/demo.v1.GreeterService/Greet", contentType: "application/grpc" },
  { name: "gRPC-web unary (fast path)", path: "/demo.v1.GreeterService/Greet", contentType: "application/grpc-web+proto" },
  { name: "Connect JSON unary (fast path)", path: "/demo.v1.GreeterService/Greet", contentType: "application/json" },
  { name: "gRPC server streaming (connect-node)", path: "/demo.v1.GreeterService/GreetStream", contentType: "application/grpc" },
];

let gw: GatewayProcess | undefined;
// A fresh process whenever the previous test killed it, so each path is judged on its own.
beforeEach(async () => {
  if (gw === undefined || !alive(gw)) gw = await startGatewayProcess();
}, 30_000);
afterAll(() => {
  gw?.child.kill("SIGKILL");
});

function alive(process: GatewayProcess): boolean {
  return process.child.exitCode === null && process.child.signalCode === null;
}

for (const call of CALLS) {
  it(`RST_STREAM with an error code on a ${call.name} does not crash the gateway`, async () => {
    const gateway = gw!;
    const c = await rawConnect(gateway.port);
    const frames = [HTTP2_PREFACE, EMPTY_SETTINGS];
    let streamId = 1;
    for (const code of Object.values(CODES)) {
      const block = headerBlock([[":method", "POST"], [":scheme", "http"], [":path", call.path], [":authority", "x"], ["content-type", call.contentType], ["te", "trailers"]]);
      const rst = Buffer.alloc(4);
      rst.writeUInt32BE(code);
      frames.push(frame(FrameType.HEADERS, Flags.END_HEADERS, streamId, block), frame(FrameType.RST_STREAM, 0, streamId, rst));
      streamId += 2;
    }
    await c.write(Buffer.concat(frames));
    await new Promise((r) => setTimeout(r, 500));
    c.destroy();
    expect(alive(gateway), `the gateway process died: ${gateway.stderr().split("\n").slice(0, 12).join("\n")}`).toBe(true);
    const client = createClient(GreeterService, createGrpcTransport({ baseUrl: gateway.url }));
    expect((await client.greet({ name: "after" }, { timeoutMs: 3_000 })).greeting).toContain("after");
  });
}

it("a unary body longer than its content-length (the server's HTTP/2 layer resets the stream) does not crash the gateway", async () => {
  const gateway = gw!;
  const c = await rawConnect(gateway.port);
  const block = headerBlock([[":method", "POST"], [":scheme", "http"], [":path", "/demo.v1.GreeterService/Greet"], [":authority", "x"], ["content-type", "application/json"], ["content-length", "5"]]);
  await c.write(Buffer.concat([HTTP2_PREFACE, EMPTY_SETTINGS, frame(FrameType.HEADERS, Flags.END_HEADERS, 1, block), frame(FrameType.DATA, Flags.END_STREAM, 1, Buffer.from('{"name":"abcdef"}'))]));
  await new Promise((r) => setTimeout(r, 500));
  c.destroy();
  expect(alive(gateway), `the gateway process died: ${gateway.stderr().split("\n").slice(0, 12).join("\n")}`).toBe(true);
});
