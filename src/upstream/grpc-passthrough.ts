import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { leanRespond, leanSendTrailers } from "../http2/lean-response.js";
import type { Logger } from "../ops/logger.js";
import type { CancelSignal, Cluster, Leased, UpstreamCallOptions } from "./cluster.js";
import type { Endpoint } from "./endpoint.js";
import type { EndpointSessions } from "./endpoint-sessions.js";
import type { Http2ClientStream } from "./http2-client/client-stream.js";
import { formatGrpcTimeout, parseGrpcTimeout, upstreamTimeoutMs } from "./deadline.js";
import { relayNodeResponseMetadata, type HeaderPolicy } from "./header-policy.js";
import { markNotSent } from "./upstream-errors.js";
import { injectTraceHeaders, runInRequestContext } from "../ops/tracing.js";

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;
const ENVELOPE_HEADER_BYTES = 5;
/** Request headers the pass-through copies upstream as they are (the allow-list does not decide these). */
const PROTOCOL_REQUEST_HEADERS: readonly string[] = ["grpc-encoding", "grpc-accept-encoding", "user-agent"];
const RESPONSE_HEAD_HEADERS = ["content-type", "grpc-encoding", "grpc-accept-encoding"] as const;
const STATUS_HEADERS = ["grpc-status", "grpc-message", "grpc-status-details-bin"] as const;
// Shared, never mutated by Node (it copies options): saves an object per call.
const NO_REQUEST_OPTIONS: Omit<http2.ClientSessionRequestOptions, "signal"> = Object.freeze({});
const WAIT_FOR_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({ waitForTrailers: true });
const END_STREAM: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true });
const noop = () => undefined;

/** Where the pass-through sends one RPC path, and how. */
export interface PassthroughTarget {
  cluster: Cluster;
  method: DescMethod;
  idempotent: boolean;
  headers: HeaderPolicy;
  /** The route's longest upstream call; 0 means no limit. */
  routeMaxTimeoutMs: number;
  /** Whole-body calls go over the gateway's own HTTP/2 client (http2-client/), not Node's. */
  ownClient: boolean;
}

export interface PassthroughOptions {
  logger: Logger;
  maxMessageBytes: number;
  /** The gateway's `limits.maxTimeoutMs`: a client asking for more is refused, as on every other path; 0: no limit. */
  maxClientTimeoutMs: number;
}

/**
 * An upstream stream as the relay uses it: Node's ClientHttp2Stream, or the gateway's own
 * client's stream, which has the same events and members (`failure` only on the latter).
 */
type UpstreamStream = http2.ClientHttp2Stream | Http2ClientStream;

/** The upstream's answer once its response headers arrived. */
interface UpstreamAnswer {
  upstream: UpstreamStream;
  headers: http2.IncomingHttpHeaders;
  /** The headers were the whole response (a gRPC "trailers-only" status). */
  trailersOnly: boolean;
}

/** A routed path, resolved once: its target and what every call to it shares. */
interface PathRoute {
  target: PassthroughTarget;
  /** `pkg.Service/Method`, for the cluster's errors and the access log. */
  procedure: string;
  replayable: boolean;
}

/** The header block of a trailers-only upstream status that was not retried, to relay as it is. */
const trailersOnlyHeaders = new WeakMap<ConnectError, http2.IncomingHttpHeaders>();

/**
 * gRPC → gRPC without decoding: a gRPC call arriving on HTTP/2 for a route whose upstream speaks
 * gRPC is relayed frame by frame to an upstream HTTP/2 stream. Only headers are rewritten (the
 * allow-list, a recomputed grpc-timeout); messages, compression and trailers cross untouched.
 * The response is relayed chunk by chunk with backpressure (and streaming requests are piped),
 * so HTTP/2 flow control reaches from the client to the upstream and back: a slow side slows
 * the other instead of filling the gateway's memory.
 *
 * What it skips, knowingly: the connect interceptor chain (it writes its own access-log line), and
 * message-size checks on streams (the upstream applies its own). Unary and server-streaming
 * requests are read whole first (bounded by limits.maxMessageBytes), so they can be retried.
 */
export class GrpcPassthrough {
  private readonly routes = new Map<string, PathRoute>();

  constructor(
    targets: ReadonlyMap<string, PassthroughTarget>,
    private readonly options: PassthroughOptions,
  ) {
    for (const [path, target] of targets) {
      const kind = target.method.methodKind;
      this.routes.set(path, { target, procedure: path.slice(1), replayable: kind === "unary" || kind === "server_streaming" });
    }
  }

  /** Take the stream when it is a gRPC call to a routed method; false leaves it alone. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    if (headers[":method"] !== "POST") return false;
    const contentType = headers["content-type"];
    if (contentType === undefined || !contentType.startsWith("application/grpc") || contentType.startsWith("application/grpc-web")) return false;
    const path = headers[":path"];
    const route = path === undefined ? undefined : this.routes.get(path);
    if (route === undefined) return false;
    new PassthroughCall(stream, headers, path!, route, this.options).run();
    return true;
  }
}

/**
 * A call's cancellation, in the shape the cluster needs. An AbortController per call cost more
 * than the rest of the gateway's own per-call work (EventTarget, AbortSignal, listener objects).
 */
class CallCancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | undefined;

  addEventListener(_type: "abort", listener: () => void): void {
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const index = this.listeners?.indexOf(listener) ?? -1;
    if (index !== -1) this.listeners!.splice(index, 1);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }
}

class PassthroughCall {
  private readonly startedAt = performance.now();
  private readonly signal = new CallCancellation();
  private timeoutMs: number | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** The request message of a replayable call, once read whole. */
  private body: Buffer | undefined;
  private bodyChunks: Buffer[] | undefined;
  private bodySize = 0;
  /** The latest attempt's upstream stream. */
  private upstream: UpstreamStream | undefined;
  /** Rejects the attempt waiting for its response headers (set only while it waits). */
  private rejectPending: ((reason: ConnectError) => void) | undefined;
  private leased: Leased<UpstreamAnswer> | undefined;
  /** The upstream stream whose response is being relayed to the client, and its Node connection (if it is one). */
  private relayed: UpstreamStream | undefined;
  private relayedSessions: EndpointSessions | undefined;
  private awaitingDrain = false;
  private responded = false;
  private finished = false;
  /** The status to end with instead of the upstream's (deadline, broken upstream). */
  private override: ConnectError | undefined;
  private upstreamTrailers: http2.IncomingHttpHeaders | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly path: string,
    private readonly route: PathRoute,
    private readonly options: PassthroughOptions,
  ) {}

  run(): void {
    const stream = this.stream;
    // `on`, not `once`, for events a stream emits once at most: no wrapper to allocate and remove.
    stream.on("error", noop);
    stream.on("close", this.onClientClose);
    try {
      const clientTimeoutMs = parseGrpcTimeout(this.headers["grpc-timeout"] as string | undefined);
      const maxClient = this.options.maxClientTimeoutMs;
      if (clientTimeoutMs !== undefined && maxClient > 0 && clientTimeoutMs > maxClient) {
        throw new ConnectError(`timeout ${clientTimeoutMs}ms must be <= ${maxClient}`, Code.InvalidArgument);
      }
      this.timeoutMs = upstreamTimeoutMs(clientTimeoutMs, this.route.target.routeMaxTimeoutMs);
    } catch (error) {
      this.fail(ConnectError.from(error));
      return;
    }
    if (this.timeoutMs !== undefined) this.deadlineTimer = setTimeout(this.onDeadline, this.timeoutMs);
    if (this.route.replayable) {
      stream.on("data", this.onRequestData);
      stream.on("end", this.onRequestEnd);
    } else {
      this.dispatch();
    }
  }

  private readonly onClientClose = (): void => {
    // The client reset the stream or went away: cancel upstream at once.
    if (!this.finished) this.cancel(new ConnectError("the client cancelled the call", Code.Canceled));
  };

  private readonly onDeadline = (): void => {
    this.cancel(new ConnectError(`the deadline of ${Math.round(this.timeoutMs!)} ms was exceeded`, Code.DeadlineExceeded));
  };

  /** Collects a request that is one message (unary, server-streaming), within limits.maxMessageBytes. */
  private readonly onRequestData = (chunk: Buffer): void => {
    // A call that has ended (a deadline during the upload, say) keeps nothing more of its request.
    if (this.finished) return;
    this.bodySize += chunk.length;
    if (this.bodySize > this.options.maxMessageBytes + ENVELOPE_HEADER_BYTES) {
      this.stream.off("data", this.onRequestData);
      this.stream.off("end", this.onRequestEnd);
      this.stream.pause();
      this.fail(new ConnectError(`message larger than ${this.options.maxMessageBytes} bytes`, Code.ResourceExhausted));
      return;
    }
    if (this.body === undefined) this.body = chunk;
    else (this.bodyChunks ??= [this.body]).push(chunk);
  };

  private readonly onRequestEnd = (): void => {
    if (this.finished) return;
    if (this.bodyChunks !== undefined) this.body = Buffer.concat(this.bodyChunks, this.bodySize);
    else this.body ??= Buffer.alloc(0);
    this.bodyChunks = undefined;
    this.dispatch();
  };

  private dispatch(): void {
    if (this.signal.aborted || this.finished) return;
    // No server span here (no interceptors): upstream attempts continue the client's own trace.
    // Stream events do not carry the trace context, so it is entered here, where the attempts
    // start (a plain call when tracing is off).
    runInRequestContext(this.headers, this.invokeCluster);
  }

  private readonly invokeCluster = (): void => {
    const target = this.route.target;
    const call: UpstreamCallOptions = {
      method: this.route.procedure,
      signal: this.signal,
      timeoutMs: this.timeoutMs,
      idempotent: target.idempotent,
      replayable: this.route.replayable,
      connectsItself: this.usesOwnClient(),
    };
    target.cluster.invoke(call, this.attempt).then(this.onLeased, this.onInvokeFailed);
  };

  private readonly onInvokeFailed = (error: unknown): void => {
    this.fail(ConnectError.from(error));
  };

  private readonly onLeased = (leased: Leased<UpstreamAnswer>): void => {
    this.leased = leased;
    if (this.finished) {
      leased.value.upstream.close(NGHTTP2_CANCEL);
      leased.finish(new ConnectError("cancelled", Code.Canceled));
      return;
    }
    this.relayResponse(leased.value, leased.endpoint.sessions);
  };

  /** Whether attempts go over the gateway's own HTTP/2 client: it takes requests known whole. */
  private usesOwnClient(): boolean {
    return this.route.target.ownClient && this.body !== undefined;
  }

  /** One upstream stream; resolves with its response headers, rejects when it fails before them. */
  private readonly attempt = (endpoint: Endpoint, remainingMs: number | undefined): Promise<UpstreamAnswer> => {
    // Reached only after a cancellation (the cluster checks the signal between attempts); fail
    // with its reason, not as "not sent", which the cluster would retry.
    if (this.finished) return Promise.reject(ConnectError.from(this.signal.reason ?? new ConnectError("the call has already ended", Code.Canceled)));
    const sessions = endpoint.sessions;
    const incoming = this.headers;
    const headers: http2.OutgoingHttpHeaders = { "content-type": incoming["content-type"], te: "trailers" };
    for (const name of PROTOCOL_REQUEST_HEADERS) {
      const value = incoming[name];
      if (value !== undefined) headers[name] = value;
    }
    this.route.target.headers.forwardNode(incoming, headers);
    injectTraceHeaders(headers);
    if (remainingMs !== undefined) headers["grpc-timeout"] = formatGrpcTimeout(remainingMs);
    if (this.usesOwnClient()) {
      let upstream: Http2ClientStream;
      try {
        upstream = sessions.passthroughConnection().request(this.path, headers, this.body!);
      } catch (error) {
        return Promise.reject(markNotSent(ConnectError.from(error, Code.Unavailable)));
      }
      return this.exchange(upstream, undefined);
    }
    return sessions.request("POST", this.path, headers, NO_REQUEST_OPTIONS).then(
      (upstream) => this.exchange(upstream, sessions),
      (error: unknown) => {
        // The connection failed before the request headers left: nothing reached the upstream.
        throw markNotSent(ConnectError.from(error, Code.Unavailable));
      },
    );
  };

  /** Wait for the response headers of `upstream`; `sessions` is its Node connection, or undefined for the own client (which sent the body already). */
  private exchange(upstream: UpstreamStream, sessions: EndpointSessions | undefined): Promise<UpstreamAnswer> {
    this.upstream = upstream;
    // Node's streams emit 'error' (unhandled, it would end the process); the own client's never do.
    if (sessions !== undefined) upstream.on("error", noop);
    if (this.signal.aborted) {
      upstream.close(NGHTTP2_CANCEL);
      return Promise.reject(ConnectError.from(this.signal.reason));
    }
    return new Promise<UpstreamAnswer>((resolve, reject) => {
      let answered = false;
      this.rejectPending = reject;
      upstream.on("close", () => {
        if (answered) {
          this.onUpstreamClose(upstream);
          return;
        }
        this.rejectPending = undefined;
        reject(streamClosedError(upstream));
      });
      upstream.on("response", (responseHeaders: http2.IncomingHttpHeaders, flags: number) => {
        answered = true;
        this.rejectPending = undefined;
        const trailersOnly = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
        if (trailersOnly && responseHeaders["grpc-status"] === UNAVAILABLE) {
          // Only this status may be retried; the cluster decides, and if it does not, it is relayed as it is.
          const error = new ConnectError(decodeGrpcMessage(responseHeaders["grpc-message"]), Code.Unavailable);
          error.isWireError = true;
          trailersOnlyHeaders.set(error, responseHeaders);
          reject(error);
          return;
        }
        resolve({ upstream, headers: responseHeaders, trailersOnly });
      });
      if (sessions === undefined) return;
      const nodeStream = upstream as http2.ClientHttp2Stream;
      if (this.body !== undefined) nodeStream.end(this.body);
      else this.stream.pipe(nodeStream);
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
    this.relayed = upstream;
    // Only Node's connections need to hear that response bytes arrived (their keep-alive timer).
    this.relayedSessions = this.usesOwnClient() ? undefined : sessions;
    leanRespond(this.stream, out, WAIT_FOR_TRAILERS);
    this.stream.on("wantTrailers", this.onWantTrailers);
    upstream.on("trailers", this.onUpstreamTrailers);
    upstream.on("data", this.onUpstreamData);
    upstream.on("end", this.onUpstreamEnd);
    // The own client's stream holds what arrived with the headers until now (Node's resumes itself on "data").
    upstream.resume();
  }

  private readonly onUpstreamTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    this.upstreamTrailers = trailers;
  };

  /** A lean pipe: forward each chunk, pause the upstream while the client's side is full. */
  private readonly onUpstreamData = (chunk: Buffer): void => {
    const upstream = this.relayed!;
    this.relayedSessions?.notifyResponseByteRead(upstream as http2.ClientHttp2Stream);
    if (this.stream.destroyed) return;
    if (!this.stream.write(chunk) && !this.awaitingDrain) {
      this.awaitingDrain = true;
      upstream.pause();
      this.stream.once("drain", this.onClientDrain);
    }
  };

  private readonly onClientDrain = (): void => {
    this.awaitingDrain = false;
    this.relayed?.resume();
  };

  private readonly onUpstreamEnd = (): void => {
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end();
  };

  /** Without an END_STREAM from the upstream (reset, connection lost), end the response ourselves. */
  private onUpstreamClose(upstream: UpstreamStream): void {
    if (upstream !== this.relayed) return;
    if (upstream.readableEnded || this.stream.writableEnded) return;
    this.override ??= streamClosedError(upstream);
    this.stopRelay();
    if (!this.stream.closed) this.stream.end();
  }

  private stopRelay(): void {
    const upstream = this.relayed;
    if (upstream === undefined) return;
    upstream.off("data", this.onUpstreamData);
    upstream.off("end", this.onUpstreamEnd);
  }

  private readonly onWantTrailers = (): void => {
    const trailers: http2.OutgoingHttpHeaders = {};
    const upstreamTrailers = this.upstreamTrailers;
    const override = this.override ?? (upstreamTrailers === undefined ? streamClosedError(this.relayed!) : undefined);
    if (override !== undefined) {
      trailers["grpc-status"] = String(override.code);
      trailers["grpc-message"] = encodeURIComponent(override.rawMessage);
    } else {
      copyStatus(upstreamTrailers!, trailers);
      relayNodeResponseMetadata(upstreamTrailers!, trailers);
    }
    if (!this.stream.closed) leanSendTrailers(this.stream, trailers);
    this.complete(override ?? statusOf(upstreamTrailers!));
  };

  /** End the call early (deadline, client gone): cancel upstream, answer with `reason` if still possible. */
  private cancel(reason: ConnectError): void {
    if (this.finished) return;
    this.signal.abort(reason);
    this.upstream?.close(NGHTTP2_CANCEL);
    const reject = this.rejectPending;
    if (reject !== undefined) {
      this.rejectPending = undefined;
      reject(reason);
    }
    if (this.responded) {
      this.override = reason;
      this.stopRelay();
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
    leanRespond(this.stream, headers, END_STREAM);
  }

  private complete(outcome: ConnectError | undefined): void {
    if (this.finished) return;
    this.finished = true;
    // No attempt follows (attempt() refuses one now), and the client stream may outlive the call
    // as a shape specimen (src/ops/shape-specimens.ts) holding this call through its listener.
    this.body = undefined;
    this.bodyChunks = undefined;
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.leased?.finish(outcome);
    if (this.options.logger.isLevelEnabled("info")) {
      this.options.logger.info(
        {
          method: this.route.procedure,
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

const UNAVAILABLE = String(Code.Unavailable);

/** The response headers for the client: status, content-type, compression and the upstream's metadata. */
function responseHead(upstream: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ":status": upstream[":status"] ?? 200 };
  for (const name of RESPONSE_HEAD_HEADERS) {
    const value = upstream[name];
    if (value !== undefined) out[name] = value;
  }
  copyStatus(upstream, out);
  relayNodeResponseMetadata(upstream, out);
  return out;
}

function copyStatus(from: http2.IncomingHttpHeaders, into: http2.OutgoingHttpHeaders): void {
  for (const name of STATUS_HEADERS) {
    const value = from[name];
    if (value !== undefined) into[name] = value;
  }
}

/** The status in a trailer block as an error (undefined for OK), marked as the upstream's own. */
function statusOf(trailers: http2.IncomingHttpHeaders): ConnectError | undefined {
  const raw = trailers["grpc-status"];
  if (raw === "0") return undefined;
  const status = Number(raw ?? Code.Unknown);
  if (status === 0) return undefined;
  const error = new ConnectError(decodeGrpcMessage(trailers["grpc-message"]), status in Code ? status : Code.Unknown);
  error.isWireError = true;
  return error;
}

/** Why an upstream stream ended without a status (gRPC's mapping of HTTP/2 reset codes). */
function streamClosedError(upstream: UpstreamStream): ConnectError {
  // The own client says why when it knows more than a reset code (connection lost, GOAWAY).
  if ("failure" in upstream && upstream.failure !== undefined) return upstream.failure;
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
