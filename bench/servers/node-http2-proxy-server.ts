/**
 * Floor peer of the proxy cases: a minimal gRPC forwarder written with node:http2 alone.
 *
 * It does only what any proxy on Node's http2 module must do and nothing the gateway adds (no
 * routing table, header policy, retries, deadlines, metrics or logging): each incoming stream's
 * request body is read whole, sent on ONE shared HTTP/2 client session to the echo upstream
 * (same path and content-type, `te: trailers`), and the upstream's response headers, data and
 * trailers are relayed back as they came. So the proxied rows can be read against what a plain
 * Node program reaches on this machine: the cost here is Node's own HTTP/2 server and client,
 * twice per call, which the gateway cannot go below either.
 *
 * Usage: node bench/servers/node-http2-proxy-server.js <port> <upstreamPort>
 *   (prints "READY <port>" once bound)
 */
import * as http2 from "node:http2";
import { listenOnLoopback } from "./listen-on-loopback.js";

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

const port = Number(process.argv[2] ?? 0);
const upstreamPort = Number(process.argv[3]);
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0) {
  process.stderr.write("usage: node-http2-proxy-server <port> <upstreamPort>\n");
  process.exit(2);
}
const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;

const ignore = () => {};

let upstream: http2.ClientHttp2Session | undefined;

/** The one upstream session; connected on first use and again only after it went away. */
function upstreamSession(): http2.ClientHttp2Session {
  if (upstream === undefined || upstream.closed || upstream.destroyed) {
    const session = http2.connect(upstreamUrl);
    // Its open streams see the failure themselves and answer UNAVAILABLE; an unhandled
    // session 'error' would end the process instead.
    session.on("error", ignore);
    session.on("close", () => {
      if (upstream === session) upstream = undefined;
    });
    upstream = session;
  }
  return upstream;
}

/** gRPC UNAVAILABLE: trailers-only if nothing was sent yet, else as the trailers of the started response. */
function unavailable(stream: http2.ServerHttp2Stream, message: string, setTrailers: (t: http2.OutgoingHttpHeaders) => void): void {
  if (stream.closed || stream.destroyed) return;
  const status = { "grpc-status": "14", "grpc-message": encodeURIComponent(message) };
  if (!stream.headersSent) {
    stream.respond({ ":status": 200, "content-type": "application/grpc", ...status }, { endStream: true });
    return;
  }
  // Read by the 'wantTrailers' listener, which fires once the response's end is flushed.
  setTrailers(status);
  if (!stream.writableEnded) stream.end();
}

function forward(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer): void {
  // Replaced by the upstream's own trailers; kept only if the upstream ends without any.
  let trailers: http2.OutgoingHttpHeaders = { "grpc-status": "13", "grpc-message": "upstream response had no trailers" };
  const setTrailers = (t: http2.OutgoingHttpHeaders) => (trailers = t);
  let call: http2.ClientHttp2Stream;
  try {
    call = upstreamSession().request({
      ":method": "POST",
      ":path": headers[":path"],
      "content-type": headers["content-type"] ?? "application/grpc",
      te: "trailers",
    });
  } catch (error) {
    // request() throws at once when the session is already closing (e.g. after a GOAWAY).
    unavailable(stream, (error as Error).message, setTrailers);
    return;
  }
  let ended = false;
  let upstreamError: string | undefined;

  call.on("response", (responseHeaders, flags) => {
    if (stream.closed) return;
    // A trailers-only upstream answer (an error status, no messages) stays trailers-only.
    if (flags & NGHTTP2_FLAG_END_STREAM) stream.respond(responseHeaders, { endStream: true });
    else stream.respond(responseHeaders, { waitForTrailers: true });
  });
  call.on("data", (chunk: Buffer) => {
    if (stream.closed) return;
    if (!stream.write(chunk)) {
      call.pause();
      stream.once("drain", () => call.resume());
    }
  });
  call.on("trailers", setTrailers);
  call.on("end", () => {
    ended = true;
    if (!stream.closed && stream.headersSent && !stream.writableEnded) stream.end();
  });
  call.on("error", (error: Error) => (upstreamError = error.message));
  // A reset with NO_ERROR or CANCEL closes the call without an 'error': both mean it failed.
  call.on("close", () => {
    if (!ended) unavailable(stream, upstreamError ?? `upstream stream closed (RST_STREAM ${call.rstCode})`, setTrailers);
  });
  stream.on("wantTrailers", () => stream.sendTrailers(trailers));
  // The client gave up (or its connection died): no reason to keep the upstream working.
  stream.on("close", () => {
    if (!ended && !call.closed) call.close(NGHTTP2_CANCEL);
  });
  call.end(body);
}

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  // A client's reset must not end the process; the 'close' listeners clean up.
  stream.on("error", ignore);
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  stream.on("end", () => {
    if (stream.closed) return;
    forward(stream, headers, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  });
});

listenOnLoopback(server, port, "node-http2-proxy");
