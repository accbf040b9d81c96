/**
 * Floor peer of the Connect JSON HTTP/1.1 case: Greet as Connect unary JSON on node:http alone.
 *
 * One route, POST /demo.v1.GreeterService/Greet with application/json: the body is read whole,
 * decoded with protobuf-es `fromJsonString`, passed to the same greeter implementation the
 * gateway and the peers call (src/services/greeter-service.ts), and the answer is encoded with
 * `toJsonString` and sent as 200 application/json with a content-length. Everything else is a
 * 404. No router, interceptors, compression, timeouts or other Connect features: what is left
 * is Node's own HTTP/1.1 server (parser, socket writes) plus JSON, the least any Node server of
 * this call costs on this machine, and so the ceiling of a "×connect-node" ratio.
 *
 * Usage: node bench/servers/node-http1-json-server.js <port>   (prints "READY <port>" once bound)
 */
import * as http from "node:http";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { GreetRequestSchema, GreetResponseSchema, type GreetRequest } from "../../gen/demo/v1/greeter_pb.js";
import { GREET_PATH, greetForFloor } from "./floor-greeter.js";
import { listenOnLoopback } from "./listen-on-loopback.js";

/** application/json, with or without parameters (Connect allows "; charset=utf-8"). */
const isJson = (contentType: string | undefined) => contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType);

function reply(res: http.ServerResponse, status: number, body: string | Uint8Array): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": typeof body === "string" ? Buffer.byteLength(body) : body.byteLength });
  res.end(body);
}

/** A Connect unary error: the code's HTTP status and the JSON error body, as connect-node sends them. */
function replyError(res: http.ServerResponse, error: unknown): void {
  const connectError = ConnectError.from(error);
  reply(res, codeToHttpStatus(connectError.code), errorToJsonBytes(connectError, undefined));
}

function greet(res: http.ServerResponse, text: string): void {
  let request: GreetRequest;
  try {
    request = fromJsonString(GreetRequestSchema, text);
  } catch (error) {
    // Malformed JSON or a field of the wrong type: the client's fault, as Connect reports it.
    replyError(res, new ConnectError((error as Error).message, Code.InvalidArgument));
    return;
  }
  greetForFloor(
    "connect",
    request,
    (response) => reply(res, 200, toJsonString(GreetResponseSchema, create(GreetResponseSchema, response))),
    (error) => replyError(res, error),
  );
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== GREET_PATH || !isJson(req.headers["content-type"])) {
    // Node discards the unread request body itself, keeping the connection usable.
    res.writeHead(404, { "content-length": 0 });
    res.end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => greet(res, (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString("utf8")));
});

const port = Number(process.argv[2] ?? 0);
listenOnLoopback(server, port, "node-http1-json server");
