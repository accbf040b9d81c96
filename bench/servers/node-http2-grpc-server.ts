/**
 * Floor peer of the gRPC unary Greet cases (1×100 and 2k-even): Greet over gRPC on node:http2 alone.
 *
 * One route, POST /demo.v1.GreeterService/Greet with application/grpc: the body is read whole,
 * its one uncompressed length-prefixed message decoded with protobuf-es `fromBinary`, passed to
 * the same greeter implementation the gateway and the peers call (src/services/greeter-service.ts),
 * and the answer sent as Node's API sends one: `respond()` with `waitForTrailers`, `end()` with
 * the enveloped message, `sendTrailers()` with grpc-status 0. A request that is not gRPC gets
 * 415 (or 405 when not a POST), as the gRPC spec asks; any other path, or a message that cannot
 * be read, a trailers-only answer with the gRPC status that says why. No router, interceptors,
 * deadlines, compression, limits or metadata: what is left is Node's own HTTP/2 server used
 * through its public API, plus protobuf. That is not a lower bound: the gateway goes around part
 * of that API (src/http2/lean-response.ts) and runs with its own GC flags, and can beat it.
 *
 * Usage: node bench/servers/node-http2-grpc-server.js <port>   (prints "READY <port>" once bound)
 */
import * as http2 from "node:http2";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GreetRequestSchema, GreetResponseSchema, type GreetRequest } from "../../gen/demo/v1/greeter_pb.js";
import { GREET_PATH, greetForFloor } from "./floor-greeter.js";
import { listenOnLoopback } from "./listen-on-loopback.js";

/** The 5-byte gRPC message prefix: flags (0: not compressed) and the length, big-endian. */
const PREFIX_BYTES = 5;

/** application/grpc or application/grpc+proto, with or without parameters. */
const isGrpc = (contentType: string | undefined) => contentType !== undefined && /^application\/grpc(\+proto)?\s*(;|$)/i.test(contentType);

/** Whether an answer can still be sent: a client's reset can close the stream before the answer is ready, and Node's respond() throws on a closed stream. */
const canAnswer = (stream: http2.ServerHttp2Stream) => !stream.closed && !stream.destroyed && !stream.headersSent;

/** A trailers-only answer: the status in the response headers, no body. */
function replyError(stream: http2.ServerHttp2Stream, error: unknown): void {
  if (!canAnswer(stream)) return;
  const connectError = ConnectError.from(error);
  stream.respond(
    { ":status": 200, "content-type": "application/grpc", "grpc-status": String(connectError.code), "grpc-message": encodeURIComponent(connectError.rawMessage) },
    { endStream: true },
  );
}

function reply(stream: http2.ServerHttp2Stream, response: MessageInitShape<typeof GreetResponseSchema>): void {
  if (!canAnswer(stream)) return;
  const message = toBinary(GreetResponseSchema, create(GreetResponseSchema, response));
  const body = Buffer.allocUnsafe(PREFIX_BYTES + message.byteLength);
  body[0] = 0;
  body.writeUInt32BE(message.byteLength, 1);
  body.set(message, PREFIX_BYTES);
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.end(body);
}

function greet(stream: http2.ServerHttp2Stream, body: Buffer): void {
  let request: GreetRequest;
  try {
    if (body.length < PREFIX_BYTES || body.readUInt32BE(1) !== body.length - PREFIX_BYTES) {
      throw new ConnectError("expected exactly one length-prefixed message", Code.InvalidArgument);
    }
    // A compressed message without a grpc-encoding it could name is the client's error (spec: INTERNAL).
    if (body[0] !== 0) throw new ConnectError("compressed message, but no compression was negotiated", Code.Internal);
    request = fromBinary(GreetRequestSchema, body.subarray(PREFIX_BYTES));
  } catch (error) {
    replyError(stream, ConnectError.from(error, Code.InvalidArgument));
    return;
  }
  greetForFloor(
    "grpc",
    request,
    (response) => reply(stream, response),
    (error) => replyError(stream, error),
  );
}

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  // A reset or a broken connection ends the stream; nothing to answer then.
  stream.on("error", () => {});
  // Answered before the body is read: Node resets the rest of the upload itself.
  if (headers[":method"] !== "POST" || !isGrpc(headers["content-type"])) {
    stream.respond({ ":status": headers[":method"] !== "POST" ? 405 : 415 }, { endStream: true });
    return;
  }
  if (headers[":path"] !== GREET_PATH) {
    replyError(stream, new ConnectError(`${String(headers[":path"])} is not served here`, Code.Unimplemented));
    return;
  }
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  stream.on("end", () => {
    if (canAnswer(stream)) greet(stream, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  });
});

const port = Number(process.argv[2] ?? 0);
listenOnLoopback(server, port, "node-http2-grpc server");
