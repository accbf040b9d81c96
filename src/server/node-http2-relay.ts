import * as http2 from "node:http2";
import type { Duplex } from "node:stream";
import { Http2ErrorCode } from "../http2/frames.js";
import type { Http2ServerStream } from "../http2/server/server-stream.js";

const { NGHTTP2_FLAG_END_STREAM } = http2.constants;

/**
 * What a client connection served by the gateway's own HTTP/2 server (src/http2/server/) does not
 * serve itself, Node's http2 server serves: each such stream is sent again, in-process, as a
 * request of Node's http2 client over an in-memory connection to Node's server (one per client
 * connection, opened when first needed), and the answer is relayed back frame for frame: status,
 * headers, body, trailers or reset code. Node's whole stack (connect-node, the web pages,
 * reflection, health) then answers as it does for its own connections; the relay costs some CPU
 * per call, which is why the fast path serves the hot calls itself.
 *
 * Not relayed: request trailers (nothing behind Node's server reads them) and the PRIORITY of a
 * stream.
 */
export class NodeHttp2Relay {
  private session: http2.ClientHttp2Session | undefined;

  /** `openConnection` hands Node's server one end of a new in-memory connection and returns the other. */
  constructor(private readonly openConnection: () => Duplex) {}

  /**
   * Relay `stream` to Node's server, its request as received; `alreadyRead` the body bytes a
   * handler took before giving the stream up (then `requestEnded` says whether those were all).
   */
  relay(stream: Http2ServerStream, alreadyRead: Buffer[] = [], requestEnded = false): void {
    const endStream = stream.endedWithHeaders;
    let inner: http2.ClientHttp2Stream;
    try {
      inner = this.currentSession().request({ ...stream.requestHeaders }, { endStream: endStream && alreadyRead.length === 0 });
    } catch {
      // The in-memory connection is closing (the gateway drains): the client may retry elsewhere.
      stream.close(Http2ErrorCode.REFUSED_STREAM);
      return;
    }
    inner.on("error", noop);
    let trailers: http2.IncomingHttpHeaders | undefined;
    // A relay that cannot go on (a header Node's client accepted but the own server cannot send)
    // resets both streams instead of throwing out of an event listener.
    const guarded =
      <A extends unknown[]>(step: (...args: A) => void) =>
      (...args: A): void => {
        if (stream.closed) return;
        try {
          step(...args);
        } catch {
          stream.close(Http2ErrorCode.INTERNAL_ERROR);
        }
      };
    inner.on(
      "headers",
      guarded((informational: http2.IncomingHttpHeaders) => {
        if (!stream.headersSent) stream.additionalHeaders(withoutRequestPseudoHeaders(informational));
      }),
    );
    // Node's client emits 'response' a tick after it parsed the headers, by which time data of the
    // same read may be waiting: the body is read only once the headers are out.
    // A gRPC answer always ends with trailers: one that ends without them was cut inside.
    let grpcBody = false;
    inner.on(
      "response",
      guarded((responseHeaders: http2.IncomingHttpHeaders, flags: number) => {
        const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
        grpcBody = !endStream && isGrpc(responseHeaders["content-type"]);
        stream.respond(withoutRequestPseudoHeaders(responseHeaders), { endStream });
        inner.on("data", onData);
        inner.on("end", onEnd);
      }),
    );
    const onData = guarded((chunk: Buffer) => {
      if (stream.write(chunk)) return;
      inner.pause();
      stream.once("drain", () => inner.resume());
    });
    const onEnd = guarded(() => {
      if (trailers === undefined && grpcBody) stream.close(Http2ErrorCode.INTERNAL_ERROR);
      else stream.endWithTrailers(trailers && withoutRequestPseudoHeaders(trailers));
    });
    inner.on("trailers", (received: http2.IncomingHttpHeaders) => {
      trailers = received;
    });
    inner.on("close", () => {
      // Reset, or its connection lost, before the answer ended: the client hears the same code.
      if (!stream.closed && !stream.writableEnded) stream.close(inner.rstCode || Http2ErrorCode.INTERNAL_ERROR);
    });
    let aborted = false;
    stream.on("aborted", () => {
      aborted = true;
    });
    stream.on("close", () => {
      // Only a reset or a lost client travels inward. A stream that ended normally ended with the
      // inner one's answer, which Node closes by itself: a CANCEL here would count against the
      // in-memory connection's reset budget (SinglePortServer.countStream) and, call after call,
      // get it cut with every relayed call on it.
      // A request never ended inward (the client left during an early answer's upload) is cut too.
      const code = stream.rstCode ?? (aborted || !inner.writableEnded ? Http2ErrorCode.CANCEL : undefined);
      if (code !== undefined && !inner.closed) inner.close(code);
    });
    for (const chunk of alreadyRead) inner.write(chunk);
    if (endStream) return;
    if (requestEnded) inner.end();
    else stream.pipe(inner);
  }

  /** Close the in-memory connection once its streams are done. */
  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private currentSession(): http2.ClientHttp2Session {
    const open = this.session;
    if (open !== undefined && !open.closed && !open.destroyed) return open;
    const session = http2.connect("http://gateway.in-process", { createConnection: this.openConnection });
    session.on("error", noop);
    // Node's server may end it (maximum connection age, drain): the next stream opens another.
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    session.on("goaway", forget);
    session.on("close", forget);
    this.session = session;
    return session;
  }
}

/** application/grpc and its +proto, +json… forms, not gRPC-web (whose status travels in the body). */
function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web");
}

/** Response headers as Node's client presents them, ready to send on: no pseudo-header but :status. */
function withoutRequestPseudoHeaders(headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */ && name !== ":status") continue;
    out[name] = headers[name];
  }
  return out;
}

function noop(): void {}
