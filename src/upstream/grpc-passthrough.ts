import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Logger } from "../ops/logger.js";
import type { Cluster, Leased } from "./cluster.js";
import type { EndpointSessions } from "./endpoint-sessions.js";
import { formatGrpcTimeout, parseGrpcTimeout, upstreamTimeoutMs } from "./deadline.js";
import { relayNodeResponseMetadata, type HeaderPolicy } from "./header-policy.js";
import { markNotSent } from "./upstream-errors.js";
import { injectTraceHeaders, runInRequestContext } from "../ops/tracing.js";

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;
const ENVELOPE_HEADER_BYTES = 5;

/** Where the pass-through sends one RPC path, and how. */
export interface PassthroughTarget {
  cluster: Cluster;
  method: DescMethod;
  idempotent: boolean;
  headers: HeaderPolicy;
  /** The route's longest upstream call; 0 means no limit. */
  routeMaxTimeoutMs: number;
}

export interface PassthroughOptions {
  logger: Logger;
  maxMessageBytes: number;
  /** The gateway's `limits.maxTimeoutMs`: a client asking for more is refused, as on every other path; 0: no limit. */
  maxClientTimeoutMs: number;
}

/** The upstream's answer once its response headers arrived. */
interface UpstreamAnswer {
  upstream: http2.ClientHttp2Stream;
  headers: http2.IncomingHttpHeaders;
  /** The headers were the whole response (a gRPC "trailers-only" status). */
  trailersOnly: boolean;
}

/** The header block of a trailers-only upstream status that was not retried, to relay as it is. */
const trailersOnlyHeaders = new WeakMap<ConnectError, http2.IncomingHttpHeaders>();

/**
 * gRPC → gRPC without decoding: a gRPC call arriving on HTTP/2 for a route whose upstream speaks
 * gRPC is relayed frame by frame to an upstream HTTP/2 stream. Only headers are rewritten (the
 * allow-list, a recomputed grpc-timeout); messages, compression and trailers cross untouched.
 * The streams are piped, so HTTP/2 flow control reaches from the client to the upstream and
 * back: a slow side slows the other instead of filling the gateway's memory.
 *
 * What it skips, knowingly: the connect interceptor chain (it writes its own access-log line), and
 * message-size checks on streams (the upstream applies its own). Unary and server-streaming
 * requests are read whole first (bounded by limits.maxMessageBytes), so they can be retried.
 */
export class GrpcPassthrough {
  constructor(
    private readonly targets: ReadonlyMap<string, PassthroughTarget>,
    private readonly options: PassthroughOptions,
  ) {}

  /** Take the stream when it is a gRPC call to a routed method; false leaves it alone. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    if (headers[":method"] !== "POST") return false;
    const contentType = headers["content-type"];
    if (contentType === undefined || !contentType.startsWith("application/grpc") || contentType.startsWith("application/grpc-web")) return false;
    const path = headers[":path"];
    const target = path === undefined ? undefined : this.targets.get(path);
    if (target === undefined) return false;
    // No server span here (no interceptors): upstream attempts continue the client's own trace.
    runInRequestContext(headers, () => new PassthroughCall(stream, headers, path!, target, this.options).run());
    return true;
  }
}

class PassthroughCall {
  private readonly startedAt = performance.now();
  private readonly abort = new AbortController();
  private upstream: http2.ClientHttp2Stream | undefined;
  private leased: Leased<UpstreamAnswer> | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private responded = false;
  private finished = false;
  /** The status to end with instead of the upstream's (deadline, broken upstream). */
  private override: ConnectError | undefined;
  private upstreamTrailers: http2.IncomingHttpHeaders | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly path: string,
    private readonly target: PassthroughTarget,
    private readonly options: PassthroughOptions,
  ) {}

  run(): void {
    this.stream.on("error", () => undefined);
    this.stream.once("close", () => {
      // The client reset the stream or went away: cancel upstream at once.
      if (!this.finished) this.cancel(new ConnectError("the client cancelled the call", Code.Canceled));
    });
    this.forward().catch((error: unknown) => this.fail(ConnectError.from(error)));
  }

  private async forward(): Promise<void> {
    const clientTimeoutMs = parseGrpcTimeout(this.headers["grpc-timeout"] as string | undefined);
    const maxClient = this.options.maxClientTimeoutMs;
    if (clientTimeoutMs !== undefined && maxClient > 0 && clientTimeoutMs > maxClient) {
      throw new ConnectError(`timeout ${clientTimeoutMs}ms must be <= ${maxClient}`, Code.InvalidArgument);
    }
    const timeoutMs = upstreamTimeoutMs(clientTimeoutMs, this.target.routeMaxTimeoutMs);
    if (timeoutMs !== undefined) {
      this.deadlineTimer = setTimeout(
        () => this.cancel(new ConnectError(`the deadline of ${Math.round(timeoutMs)} ms was exceeded`, Code.DeadlineExceeded)),
        timeoutMs,
      );
    }
    const kind = this.target.method.methodKind;
    const replayable = kind === "unary" || kind === "server_streaming";
    const body = replayable ? await this.readRequest() : undefined;
    if (this.abort.signal.aborted) return;

    this.leased = await this.target.cluster.invoke(
      {
        method: this.path.slice(1),
        signal: this.abort.signal,
        timeoutMs,
        idempotent: this.target.idempotent,
        replayable,
      },
      (endpoint, remainingMs) => this.attempt(endpoint.sessions, remainingMs, body),
    );
    if (this.finished) {
      this.leased.value.upstream.close(NGHTTP2_CANCEL);
      this.leased.finish(new ConnectError("cancelled", Code.Canceled));
      return;
    }
    this.relayResponse(this.leased.value, this.leased.endpoint.sessions);
  }

  /** One upstream stream; resolves with its response headers, rejects when it fails before them. */
  private async attempt(
    sessions: EndpointSessions,
    remainingMs: number | undefined,
    body: Buffer | undefined,
  ): Promise<UpstreamAnswer> {
    const headers: http2.OutgoingHttpHeaders = {
      "content-type": this.headers["content-type"],
      te: "trailers",
    };
    for (const name of ["grpc-encoding", "grpc-accept-encoding", "user-agent"]) {
      const value = this.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    this.target.headers.forwardNode(this.headers, headers);
    injectTraceHeaders(headers);
    if (remainingMs !== undefined) headers["grpc-timeout"] = formatGrpcTimeout(remainingMs);
    let upstream: http2.ClientHttp2Stream;
    try {
      upstream = await sessions.request("POST", this.path, headers, {});
    } catch (error) {
      // The connection failed before the request headers left: nothing reached the upstream.
      throw markNotSent(ConnectError.from(error, Code.Unavailable));
    }
    this.upstream = upstream;
    upstream.on("error", () => undefined);
    if (this.abort.signal.aborted) {
      upstream.close(NGHTTP2_CANCEL);
      throw ConnectError.from(this.abort.signal.reason);
    }
    if (body !== undefined) upstream.end(body);
    else this.stream.pipe(upstream);

    return new Promise<UpstreamAnswer>((resolve, reject) => {
      const onAbort = () => {
        upstream.close(NGHTTP2_CANCEL);
        reject(ConnectError.from(this.abort.signal.reason));
      };
      this.abort.signal.addEventListener("abort", onAbort, { once: true });
      const settle = () => {
        this.abort.signal.removeEventListener("abort", onAbort);
        upstream.off("close", onClose);
      };
      const onClose = () => {
        settle();
        reject(streamClosedError(upstream));
      };
      upstream.once("close", onClose);
      upstream.once("response", (responseHeaders, flags) => {
        settle();
        sessions.notifyResponseByteRead(upstream);
        const trailersOnly = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
        const status = responseHeaders["grpc-status"];
        if (trailersOnly && status === String(Code.Unavailable)) {
          // Only this status may be retried; the cluster decides, and if it does not, it is relayed as it is.
          const error = new ConnectError(decodeGrpcMessage(responseHeaders["grpc-message"]), Code.Unavailable);
          error.isWireError = true;
          trailersOnlyHeaders.set(error, responseHeaders);
          reject(error);
          return;
        }
        resolve({ upstream, headers: responseHeaders, trailersOnly });
      });
    });
  }

  private relayResponse(answer: UpstreamAnswer, sessions: EndpointSessions): void {
    const { upstream } = answer;
    const out = responseHead(answer.headers);
    if (answer.trailersOnly) {
      this.respondTrailersOnly(out);
      this.complete(statusOf(answer.headers));
      return;
    }
    this.responded = true;
    this.stream.respond(out, { waitForTrailers: true });
    upstream.once("trailers", (trailers) => (this.upstreamTrailers = trailers));
    upstream.on("data", () => sessions.notifyResponseByteRead(upstream));
    this.stream.once("wantTrailers", () => {
      const trailers: http2.OutgoingHttpHeaders = {};
      const override = this.override ?? (this.upstreamTrailers === undefined ? streamClosedError(upstream) : undefined);
      if (override !== undefined) {
        trailers["grpc-status"] = String(override.code);
        trailers["grpc-message"] = encodeURIComponent(override.rawMessage);
      } else {
        copyStatus(this.upstreamTrailers!, trailers);
        relayNodeResponseMetadata(this.upstreamTrailers!, trailers);
      }
      if (!this.stream.closed) this.stream.sendTrailers(trailers);
      this.complete(override ?? statusOf(this.upstreamTrailers!));
    });
    // Without an END_STREAM from the upstream (reset, connection lost), end the response ourselves.
    upstream.once("close", () => {
      if (upstream.readableEnded || this.stream.writableEnded) return;
      this.override ??= streamClosedError(upstream);
      upstream.unpipe(this.stream);
      if (!this.stream.closed) this.stream.end();
    });
    upstream.pipe(this.stream);
  }

  /** Read a request that is one message (unary, server-streaming), within limits.maxMessageBytes. */
  private readRequest(): Promise<Buffer> {
    const limit = this.options.maxMessageBytes + ENVELOPE_HEADER_BYTES;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          this.stream.off("data", onData);
          this.stream.pause();
          reject(new ConnectError(`message larger than ${this.options.maxMessageBytes} bytes`, Code.ResourceExhausted));
          return;
        }
        chunks.push(chunk);
      };
      this.stream.on("data", onData);
      this.stream.once("end", () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
      this.abort.signal.addEventListener("abort", () => resolve(Buffer.alloc(0)), { once: true });
    });
  }

  /** End the call early (deadline, client gone): cancel upstream, answer with `reason` if still possible. */
  private cancel(reason: ConnectError): void {
    if (this.finished) return;
    this.abort.abort(reason);
    this.upstream?.close(NGHTTP2_CANCEL);
    if (this.responded) {
      this.override = reason;
      this.upstream?.unpipe(this.stream);
      if (!this.stream.closed && !this.stream.writableEnded) this.stream.end();
      else this.complete(reason);
    } else {
      this.fail(reason);
    }
  }

  /** Answer with an error status (trailers-only) if nothing was sent yet, or end the response with it. */
  private fail(error: ConnectError): void {
    if (this.finished) return;
    if (this.responded) {
      this.cancel(error);
      return;
    }
    const relayed = trailersOnlyHeaders.get(error);
    if (relayed !== undefined) {
      this.respondTrailersOnly(responseHead(relayed));
    } else {
      this.respondTrailersOnly({
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(error.code),
        "grpc-message": encodeURIComponent(error.rawMessage),
      });
    }
    this.complete(error);
  }

  private respondTrailersOnly(headers: http2.OutgoingHttpHeaders): void {
    this.responded = true;
    if (this.stream.closed || this.stream.headersSent) return;
    this.stream.respond(headers, { endStream: true });
  }

  private complete(outcome: ConnectError | undefined): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadlineTimer);
    this.leased?.finish(outcome);
    if (this.options.logger.isLevelEnabled("info")) {
      this.options.logger.info(
        {
          method: this.path.slice(1),
          protocol: "grpc",
          httpMethod: "POST",
          code: codeName(outcome?.code),
          durationMs: Math.round((performance.now() - this.startedAt) * 1000) / 1000,
          upstream: this.leased?.endpoint.address,
          passthrough: true,
        },
        "rpc",
      );
    }
  }
}

/** The response headers for the client: status, content-type, compression and the upstream's metadata. */
function responseHead(upstream: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ":status": upstream[":status"] ?? 200 };
  for (const name of ["content-type", "grpc-encoding", "grpc-accept-encoding"] as const) {
    const value = upstream[name];
    if (value !== undefined) out[name] = value;
  }
  copyStatus(upstream, out);
  relayNodeResponseMetadata(upstream, out);
  return out;
}

function copyStatus(from: http2.IncomingHttpHeaders, into: http2.OutgoingHttpHeaders): void {
  for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"] as const) {
    const value = from[name];
    if (value !== undefined) into[name] = value;
  }
}

/** The status in a trailer block as an error (undefined for OK), marked as the upstream's own. */
function statusOf(trailers: http2.IncomingHttpHeaders): ConnectError | undefined {
  const status = Number(trailers["grpc-status"] ?? Code.Unknown);
  if (status === 0) return undefined;
  const error = new ConnectError(decodeGrpcMessage(trailers["grpc-message"]), status in Code ? status : Code.Unknown);
  error.isWireError = true;
  return error;
}

/** Why an upstream stream ended without a status (gRPC's mapping of HTTP/2 reset codes). */
function streamClosedError(upstream: http2.ClientHttp2Stream): ConnectError {
  const code = upstream.rstCode;
  if (code === http2.constants.NGHTTP2_REFUSED_STREAM) {
    return markNotSent(new ConnectError("upstream refused the stream (REFUSED_STREAM)", Code.Unavailable));
  }
  // The client's own cancellation is handled before this; a CANCEL here means the upstream's
  // connection went away (Node resets its streams with CANCEL): a transport failure.
  if (code === NGHTTP2_CANCEL) return new ConnectError("upstream connection lost (stream cancelled)", Code.Unavailable);
  if (code === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM) return new ConnectError("upstream: ENHANCE_YOUR_CALM", Code.ResourceExhausted);
  return new ConnectError(`upstream stream closed without a status (HTTP/2 code ${code ?? "none"})`, Code.Unavailable);
}

function decodeGrpcMessage(value: string | string[] | undefined): string {
  if (typeof value !== "string") return "";
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function codeName(code: Code | undefined): string {
  return code === undefined ? "ok" : codeToString(code);
}
