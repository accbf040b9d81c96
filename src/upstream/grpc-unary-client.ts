import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { envelope, ENVELOPE_HEADER_BYTES } from "../server/envelope.js";
import { formatGrpcTimeout } from "./deadline.js";
import type { EndpointSessions } from "./endpoint-sessions.js";
import { markNotSent } from "./upstream-errors.js";

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;
const USER_AGENT = "connect-gateway (grpc unary)";

/** A finished unary call: the response message with the upstream's headers and trailers. */
export interface GrpcUnaryResult<O extends DescMessage> {
  header: Headers;
  trailer: Headers;
  message: MessageShape<O>;
}

export interface GrpcUnaryCall<I extends DescMessage, O extends DescMessage> {
  method: DescMethodUnary<I, O>;
  input: MessageInitShape<I>;
  /** Request metadata (already filtered by the route's allow-list). */
  header: HeadersInit | undefined;
  signal: AbortSignal | undefined;
  timeoutMs: number | undefined;
  readMaxBytes: number;
}

/**
 * A unary gRPC call on one raw HTTP/2 stream of the endpoint's shared connection. It does what
 * connect-node's gRPC client does for a unary call, without its per-call machinery (async
 * iterable pipelines, sentinels, interceptor plumbing), which costs several times more CPU than
 * the call itself when the gateway forwards thousands of calls a second. Streaming calls and the
 * Connect protocol still go through connect-node's client.
 */
export function grpcUnaryCall<I extends DescMessage, O extends DescMessage>(
  sessions: EndpointSessions,
  call: GrpcUnaryCall<I, O>,
): Promise<GrpcUnaryResult<O>> {
  const { method, signal, timeoutMs } = call;
  if (signal?.aborted) return Promise.reject(ConnectError.from(signal.reason, Code.Canceled));
  const message = isMessage(call.input, method.input) ? call.input : create(method.input, call.input);
  const bytes = toBinary(method.input, message);
  const body = envelope(0, bytes);

  const headers: http2.OutgoingHttpHeaders = {
    "content-type": "application/grpc+proto",
    te: "trailers",
    "user-agent": USER_AGENT,
  };
  if (call.header !== undefined) new Headers(call.header).forEach((value, name) => (headers[name] = value));
  if (timeoutMs !== undefined) headers["grpc-timeout"] = formatGrpcTimeout(timeoutMs);
  const path = `/${method.parent.typeName}/${method.name}`;

  return new Promise<GrpcUnaryResult<O>>((resolve, reject) => {
    let stream: http2.ClientHttp2Stream | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (error: ConnectError | undefined, result?: GrpcUnaryResult<O>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (error !== undefined) {
        if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
        reject(error);
      } else {
        resolve(result!);
      }
    };
    const onAbort = () => finish(ConnectError.from(signal!.reason, Code.Canceled));
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => finish(new ConnectError(`the upstream did not answer within ${Math.round(timeoutMs)} ms`, Code.DeadlineExceeded)), timeoutMs);
    }

    sessions.request("POST", path, headers, {}).then(
      (opened) => {
        stream = opened;
        if (settled) {
          opened.close(NGHTTP2_CANCEL);
          return;
        }
        let responseHeaders: http2.IncomingHttpHeaders | undefined;
        let trailers: http2.IncomingHttpHeaders | undefined;
        const chunks: Buffer[] = [];
        let received = 0;
        opened.on("error", () => undefined);
        opened.once("response", (h, flags) => {
          responseHeaders = h;
          if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) trailers = h;
        });
        opened.once("trailers", (t) => (trailers = t));
        opened.on("data", (chunk: Buffer) => {
          received += chunk.length;
          if (received > call.readMaxBytes + ENVELOPE_HEADER_BYTES) {
            finish(new ConnectError(`upstream response larger than ${call.readMaxBytes} bytes`, Code.ResourceExhausted));
            return;
          }
          chunks.push(chunk);
        });
        opened.once("close", () => {
          if (settled) return;
          if (responseHeaders === undefined || trailers === undefined) {
            finish(closedWithoutStatus(opened));
            return;
          }
          sessions.notifyResponseByteRead(opened);
          finish(...parseResponse(method, responseHeaders, trailers, chunks, received));
        });
        opened.end(body);
      },
      (reason: unknown) => finish(markNotSent(ConnectError.from(reason, Code.Unavailable))),
    );
  });
}

function parseResponse<O extends DescMessage>(
  method: DescMethodUnary<DescMessage, O>,
  responseHeaders: http2.IncomingHttpHeaders,
  trailers: http2.IncomingHttpHeaders,
  chunks: Buffer[],
  received: number,
): [ConnectError | undefined, GrpcUnaryResult<O>?] {
  const header = webHeaders(responseHeaders);
  const trailer = trailers === responseHeaders ? new Headers() : webHeaders(trailers);
  const status = Number(responseHeaders[":status"] ?? 0);
  if (status !== 200) {
    const error = new ConnectError(`upstream answered HTTP ${status}`, codeFromHttpStatus(status), header);
    error.isWireError = true;
    return [error];
  }
  const statusError = findTrailerError(trailers === responseHeaders ? header : trailer);
  if (statusError !== undefined) {
    // The status travels with every header and trailer the upstream sent, as connect's client reports it.
    if (trailers !== responseHeaders) header.forEach((value, name) => statusError.metadata.append(name, value));
    return [statusError];
  }
  if (!trailer.has("grpc-status") && !header.has("grpc-status")) {
    return [new ConnectError("protocol error: the upstream sent no grpc-status", Code.Internal)];
  }
  const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received);
  if (bytes.length < ENVELOPE_HEADER_BYTES) return [new ConnectError("protocol error: missing output message for unary method", Code.Unimplemented)];
  if ((bytes[0] & 0x01) !== 0) return [new ConnectError("protocol error: compressed response that was not asked for", Code.Internal)];
  const length = bytes.readUInt32BE(1);
  if (length !== bytes.length - ENVELOPE_HEADER_BYTES) return [new ConnectError("protocol error: one unary response message expected", Code.Unimplemented)];
  try {
    const message = fromBinary(method.output, bytes.subarray(ENVELOPE_HEADER_BYTES));
    return [undefined, { header, trailer, message }];
  } catch (cause) {
    return [new ConnectError("cannot decode the upstream response", Code.Internal, undefined, undefined, cause)];
  }
}

function webHeaders(node: http2.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const name in node) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = node[name];
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}

/** Why a stream ended without a status: REFUSED_STREAM was never processed, anything else is a lost connection. */
function closedWithoutStatus(stream: http2.ClientHttp2Stream): ConnectError {
  if (stream.rstCode === NGHTTP2_REFUSED_STREAM) {
    return markNotSent(new ConnectError("upstream refused the stream (REFUSED_STREAM)", Code.Unavailable));
  }
  return new ConnectError(`upstream stream closed without a status (HTTP/2 code ${stream.rstCode ?? "none"})`, Code.Unavailable);
}
