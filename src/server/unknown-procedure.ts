import { envelope } from "./envelope.js";
import { encodeGrpcMessage } from "./grpc-message.js";
import type { HttpRequest, HttpResponse } from "./http-types.js";
import { nodeHeaderValue } from "./fast-path/node-headers-view.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "../interceptors/request-id.js";

const RPC_PATH = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;
const CONNECT_END_STREAM_FLAG = 0x02;
const CONNECT_CONTENT_TYPE = /^application\/(connect\+)?(json|proto)\b/;

/**
 * Answer a call to a procedure this gateway does not serve, in the caller's own protocol,
 * so every client reports UNIMPLEMENTED with a readable message. Returns the request id the
 * answer carries (the client's x-request-id if sane, else a new one), or undefined when the
 * request does not look like an RPC at all (nothing is answered then).
 */
export function answerUnknownProcedure(req: HttpRequest, res: HttpResponse): string | undefined {
  const contentType = req.headers["content-type"] ?? "";
  const path = (req.url ?? "/").split("?", 1)[0];
  const message = `unknown procedure ${path}`;
  const requestId = () => requestIdFrom(nodeHeaderValue(req.headers, REQUEST_ID_HEADER));
  if (contentType.startsWith("application/grpc")) {
    const id = requestId();
    // A trailers-only response: the status travels in the only header block.
    const headers = {
      "content-type": contentType.split(";", 1)[0],
      "grpc-status": "12",
      "grpc-message": encodeGrpcMessage(message),
      "x-request-id": id,
    };
    if ("stream" in res) {
      // writeHead()+end() would add an empty DATA frame after the headers; gRPC clients then
      // miss the status. One HEADERS frame with END_STREAM is what gRPC calls trailers-only.
      res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
    } else {
      res.writeHead(200, headers);
      res.end();
    }
    return id;
  }
  const looksLikeConnect =
    RPC_PATH.test(path) &&
    ((req.method === "POST" && CONNECT_CONTENT_TYPE.test(contentType)) ||
      (req.method === "GET" && /[?&]connect=v1\b/.test(req.url ?? "")));
  if (!looksLikeConnect) return undefined;
  const id = requestId();
  if (contentType.startsWith("application/connect+")) {
    // Streaming clients only read errors from the end-of-stream message, with HTTP 200.
    const frame = envelope(CONNECT_END_STREAM_FLAG, Buffer.from(JSON.stringify({ error: { code: "unimplemented", message } })));
    res.writeHead(200, { "content-type": contentType.split(";", 1)[0], "content-length": frame.length, "x-request-id": id });
    res.end(frame);
    return id;
  }
  const body = JSON.stringify({ code: "unimplemented", message });
  res.writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-request-id": id });
  res.end(body);
  return id;
}
