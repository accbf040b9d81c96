import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { compressionNegotiate, mergeNonProtocolHeaders, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJsonBytes, trailerMux } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { create, fromBinary, fromJsonString, isMessage, toBinary, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { IncomingHttpHeaders } from "node:http";
import {
  asCallError,
  notifyEnded,
  notifyReceived,
  notifySent,
  notifyStarted,
  observersOf,
  type CallObserver,
} from "../../interceptors/call-observer.js";
import { envelope, ENVELOPE_HEADER_BYTES } from "../envelope.js";
import { fixGrpcMessageTrailer } from "../grpc-message.js";
import type { FastCall, FastSpec, ServerStreamingSpec, UnaryReply } from "./fast-call.js";
import { invokeUnary } from "./unary-chain.js";
import { connectStreamFormats, wireFormats, type WireFormat } from "./wire-formats.js";

const GRPC_WEB_TRAILER_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;
const OK_TRAILER = new Headers({ "grpc-status": "0" });
/** The trailers of every successful gRPC call without trailers of its own (shared, never modified). */
export const OK_TRAILERS_OBJECT: Readonly<Record<string, string>> = Object.freeze({ "grpc-status": "0" });
const OK_GRPC_WEB_TRAILER_FRAME = envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(OK_TRAILER));
/** Distinct accept-encoding values remembered with their negotiated compression. */
const NEGOTIATION_CACHE_SIZE = 64;

/** Settings shared with connect-node's handlers, so both paths apply the same limits. */
export interface FastPathOptions {
  interceptors: Interceptor[];
  readMaxBytes: number;
  writeMaxBytes: number;
  compressMinBytes: number;
  acceptCompression: Compression[];
  shutdownSignal: AbortSignal;
  /** Largest deadline a client may ask for (connect-node's meaning: larger is an error). */
  maxTimeoutMs: number;
  requestGate?: (context: HandlerContext) => void | Promise<void>;
}

/** A request the fast path accepted on its headers: its wire format and parsed deadline. */
export interface AcceptedRequest {
  format: WireFormat;
  timeoutMs: number | undefined;
}

/** The request body of a call as the fast path reads it: Node's HTTP/2 stream or HTTP/1.1 request. */
type RequestBody = NodeJS.ReadableStream & { readableEnded?: boolean; [CALL]?: FastCall };

/** Where a request body's listeners find their call, so they can be shared instead of made per call. */
const CALL = Symbol("fast-path call");

/**
 * Serves well-formed unary calls over gRPC, gRPC-web and Connect (POST) without connect-node's
 * per-call machinery: no async-iterable pipeline, no eager Headers/URL/AbortController, and,
 * when the interceptor chain only observes calls, no chain of promises either. It only takes
 * requests it can answer exactly as connect-node would; anything unusual (compression, other
 * codecs, malformed deadlines, malformed or oversized bodies) is replayed to connect-node,
 * which produces the reference behaviour and error.
 */
export class RpcFastPath {
  /** Observers run directly when the chain is nothing but observers (or empty); undefined otherwise. */
  private readonly observers: readonly CallObserver[] | undefined;
  private readonly negotiated = new Map<string, Compression | null>();
  private readonly onBodyData: (this: RequestBody, chunk: Buffer) => void;
  private readonly onBodyEnd: (this: RequestBody) => void;

  constructor(private readonly options: FastPathOptions) {
    const chain = options.interceptors;
    this.observers = chain.length === 0 ? [] : chain.length === 1 ? observersOf(chain[0]) : undefined;
    const limit = options.readMaxBytes + ENVELOPE_HEADER_BYTES;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const fastPath = this;
    this.onBodyData = function (chunk) {
      const call = this[CALL]!;
      call.chunks.push(chunk);
      call.received += chunk.length;
      if (call.received > limit) {
        fastPath.stopReading(this);
        call.replay(false);
      }
    };
    this.onBodyEnd = function () {
      const call = this[CALL]!;
      fastPath.stopReading(this);
      fastPath.bodyComplete(call);
    };
  }

  /** The wire format and deadline when this request is one the fast path serves, judged on headers alone. */
  accepts(spec: FastSpec, method: string | undefined, headers: IncomingHttpHeaders, httpVersionMajor: number): AcceptedRequest | undefined {
    if (method !== "POST") return undefined;
    if (spec.kind === "server_streaming") return this.acceptsServerStream(headers, httpVersionMajor);
    const format = wireFormats.get(headers["content-type"] ?? "");
    if (format === undefined) return undefined;
    let timeout: ReturnType<typeof parseGrpcTimeout> | undefined;
    if (format.protocol === "connect") {
      if (!isIdentity(headers["content-encoding"])) return undefined;
      const version = headers["connect-protocol-version"];
      if (version !== undefined && version !== "1") return undefined;
      const value = headers["connect-timeout-ms"];
      if (value !== undefined) timeout = parseConnectTimeout(String(value), this.options.maxTimeoutMs);
    } else {
      // gRPC needs HTTP/2 trailers; connect-node decides what to do with gRPC over HTTP/1.1.
      if (format.protocol === "grpc" && httpVersionMajor !== 2) return undefined;
      if (!isIdentity(headers["grpc-encoding"])) return undefined;
      const value = headers["grpc-timeout"];
      if (value !== undefined) timeout = parseGrpcTimeout(String(value), this.options.maxTimeoutMs);
    }
    // An invalid deadline is an error connect-node words; leave it to connect-node.
    if (timeout?.error) return undefined;
    const declaredLength = Number(headers["content-length"] ?? 0);
    if (declaredLength > this.options.readMaxBytes + ENVELOPE_HEADER_BYTES) return undefined;
    return { format, timeoutMs: timeout?.timeoutMs };
  }

  /**
   * Server streams are served here only in their plainest form: no deadline (what a stream does
   * when it runs out of time is connect-node's to say), no compression either way, and an
   * interceptor chain that only observes. Everything else goes to connect-node.
   */
  private acceptsServerStream(headers: IncomingHttpHeaders, httpVersionMajor: number): AcceptedRequest | undefined {
    // Interceptors that do more than observe may wrap the stream itself: connect-node runs those.
    if (this.observers === undefined) return undefined;
    const contentType = headers["content-type"] ?? "";
    const format = wireFormats.get(contentType) ?? connectStreamFormats.get(contentType);
    if (format === undefined || !format.enveloped) return undefined;
    if (format.protocol === "connect") {
      if (!isIdentity(headers["connect-content-encoding"]) || headers["connect-timeout-ms"] !== undefined) return undefined;
      const version = headers["connect-protocol-version"];
      if (version !== undefined && version !== "1") return undefined;
      if (this.negotiate(headers["connect-accept-encoding"]) !== null) return undefined;
    } else {
      if (format.protocol === "grpc" && httpVersionMajor !== 2) return undefined;
      if (!isIdentity(headers["grpc-encoding"]) || headers["grpc-timeout"] !== undefined) return undefined;
      if (this.negotiate(headers["grpc-accept-encoding"]) !== null) return undefined;
    }
    const declaredLength = Number(headers["content-length"] ?? 0);
    if (declaredLength > this.options.readMaxBytes + ENVELOPE_HEADER_BYTES) return undefined;
    return { format, timeoutMs: undefined };
  }

  /**
   * Run the request gate, read the body, then answer through the call's write, or its replay
   * when connect-node must take over.
   */
  serve(call: FastCall, body: RequestBody): void {
    const gate = this.options.requestGate;
    if (gate === undefined) {
      this.read(call, body);
      return;
    }
    // The gate runs before the body is read, so a refused client cannot make us buffer its upload.
    Promise.resolve()
      .then(() => gate(call))
      .then(
        () => this.read(call, body),
        (reason: unknown) => {
          call.finish();
          this.deliver(call, this.reply(call, undefined, asCallError(reason)));
        },
      )
      .catch((error: unknown) => call.fail(error));
  }

  private read(call: FastCall, body: RequestBody): void {
    // A request whose headers carried END_STREAM may already be over once an async gate returns.
    if (body.readableEnded) {
      this.bodyComplete(call);
      return;
    }
    body[CALL] = call;
    body.on("data", this.onBodyData);
    body.on("end", this.onBodyEnd);
  }

  private stopReading(body: RequestBody): void {
    body.off("data", this.onBodyData);
    body.off("end", this.onBodyEnd);
    body.pause();
  }

  private bodyComplete(call: FastCall): void {
    const input = this.decode(call);
    if (input === undefined) {
      call.replay(true);
      return;
    }
    if (call.spec.kind === "server_streaming") {
      this.runServerStream(call, call.spec, input).catch((error: unknown) => call.fail(error));
      return;
    }
    if (this.observers === undefined) {
      this.runChain(call, input).catch((error: unknown) => call.fail(error));
      return;
    }
    const observers = this.observers;
    if (observers.length > 0) {
      notifyStarted(observers, call);
      notifyReceived(observers, call);
    }
    let output: unknown;
    try {
      output = call.spec.impl(input as never, call);
    } catch (cause) {
      this.complete(call, undefined, cause);
      return;
    }
    // Most implementations answer synchronously: no promise for them.
    if (isPromiseLike(output)) {
      output.then(
        (message) => this.completeWithOutput(call, message),
        (cause: unknown) => this.complete(call, undefined, cause),
      );
    } else {
      this.completeWithOutput(call, output);
    }
  }

  /** The request message, or undefined when connect-node should produce the error. */
  private decode(call: FastCall): MessageShape<DescMessage> | undefined {
    const schema = call.spec.method.input;
    const body = call.body();
    try {
      let payload = body;
      if (call.format.enveloped) {
        if (body.length < ENVELOPE_HEADER_BYTES || body[0] !== 0) return undefined;
        const length = body.readUInt32BE(1);
        if (length !== body.length - ENVELOPE_HEADER_BYTES) return undefined;
        payload = body.subarray(ENVELOPE_HEADER_BYTES);
      }
      if (payload.length > this.options.readMaxBytes) return undefined;
      return call.format.binary
        ? fromBinary(schema, payload)
        : fromJsonString(schema, payload.toString("utf8"), { ignoreUnknownFields: true });
    } catch {
      return undefined;
    }
  }

  /** Serialize what the implementation returned, then answer. */
  private completeWithOutput(call: FastCall, output: unknown): void {
    let bytes: Uint8Array;
    try {
      const schema = call.spec.method.output;
      bytes = this.serialize(call, isMessage(output, schema) ? output : create(schema, output as never));
    } catch (cause) {
      this.complete(call, undefined, cause);
      return;
    }
    this.complete(call, bytes, undefined);
  }

  /** The call is over (output bytes, or a cause of failure): tell the observers and answer. */
  private complete(call: FastCall, output: Uint8Array | undefined, cause: unknown): void {
    const error = output === undefined ? asCallError(cause) : undefined;
    if (error) call.failWith(error);
    call.finish();
    const observers = this.observers!;
    if (observers.length > 0) {
      if (error === undefined) notifySent(observers, call);
      notifyEnded(observers, call, error);
    }
    this.deliver(call, this.reply(call, output, error));
  }

  /**
   * A server stream: headers with the first message, each message as the implementation yields
   * it (waiting while the client is not keeping up), then the status in trailers (gRPC) or in
   * the trailer frame (gRPC-web). Observer headers always go in the response headers, as they
   * do on connect-node's path, where a stream's headers are settled before it runs.
   */
  private async runServerStream(call: FastCall, spec: ServerStreamingSpec, input: MessageShape<DescMessage>): Promise<void> {
    const observers = this.observers ?? [];
    if (observers.length > 0) {
      notifyStarted(observers, call);
      notifyReceived(observers, call);
    }
    // Created up front: a stream must notice the client leaving even while the implementation waits.
    const signal = call.signal;
    const grpc = call.format.protocol === "grpc";
    let started = false;
    let failure: unknown;
    let failed = false;
    let iterator: AsyncIterator<unknown> | undefined;
    try {
      iterator = spec.impl(input as never, call)[Symbol.asyncIterator]();
      for (;;) {
        const next = await iterator.next();
        if (next.done) {
          iterator = undefined;
          break;
        }
        if (call.isGone()) break;
        const schema = spec.method.output;
        const frame = envelope(0, this.serialize(call, isMessage(next.value, schema) ? next.value : create(schema, next.value as never)));
        if (!started) {
          started = true;
          call.startResponse(200, this.responseHeaders(call, null), grpc);
        }
        if (observers.length > 0) notifySent(observers, call);
        if (!call.writeBody(frame)) await new Promise<void>((resolve) => call.whenDrained(resolve));
      }
    } catch (cause) {
      failed = true;
      failure = cause;
      iterator = undefined;
    }
    // Stopped early (the client left): let the implementation's finally blocks run.
    if (iterator?.return) await Promise.resolve(iterator.return()).catch(() => undefined);
    call.finish();
    const gone = call.isGone();
    const error = failed ? asCallError(failure) : gone ? asCallError(signal.reason ?? new ConnectError("the client went away", Code.Canceled)) : undefined;
    if (observers.length > 0) notifyEnded(observers, call, error);
    if (gone) return;
    if (call.format.protocol === "connect") {
      // Connect answers a stream with 200 and puts any error in the end-of-stream message.
      if (!started) call.startResponse(200, this.responseHeaders(call, null), false);
      const end = JSON.stringify(endStreamToJson(call.responseTrailer, error, undefined));
      call.writeBody(envelope(endStreamFlag, Buffer.from(end)));
      call.endResponse(undefined);
      return;
    }
    if (!started) {
      this.deliver(call, this.reply(call, undefined, error));
      return;
    }
    const responseTrailer = call.peekResponseTrailer();
    const plainTrailer = error === undefined && (responseTrailer === undefined || isEmpty(responseTrailer));
    if (grpc) {
      if (plainTrailer) {
        call.endResponse(OK_TRAILERS_OBJECT);
        return;
      }
      const trailers = copyInto({}, withStatus(call.responseTrailer, error));
      fixGrpcMessageTrailer(trailers);
      call.endResponse(trailers);
      return;
    }
    call.writeBody(plainTrailer ? OK_GRPC_WEB_TRAILER_FRAME : envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(withStatus(call.responseTrailer, error))));
    call.endResponse(undefined);
  }

  /** The general case: an interceptor chain that does more than observe. */
  private async runChain(call: FastCall, message: MessageShape<DescMessage>): Promise<void> {
    let output: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      const serialize = (out: MessageShape<DescMessage>) => this.serialize(call, out);
      const result = await invokeUnary(call, this.options.interceptors, message, serialize);
      output = result.bytes ?? serialize(result.message);
    } catch (cause) {
      error = asCallError(cause);
    } finally {
      call.finish();
    }
    this.deliver(call, this.reply(call, output, error));
  }

  private deliver(call: FastCall, reply: UnaryReply | Promise<UnaryReply>): void {
    if (reply instanceof Promise) {
      reply.then(
        (ready) => call.write(ready),
        (error: unknown) => call.fail(error),
      );
      return;
    }
    try {
      call.write(reply);
    } catch (error) {
      call.fail(error);
    }
  }

  private serialize(call: FastCall, message: MessageShape<DescMessage>): Uint8Array {
    let bytes: Uint8Array;
    const binary = call.format.binary;
    try {
      bytes = binary ? toBinary(call.spec.method.output, message) : Buffer.from(toJsonString(call.spec.method.output, message));
    } catch (cause) {
      throw binary
        ? new ConnectError(`serialize binary: ${cause instanceof Error ? cause.message : String(cause)}`, Code.Internal)
        : ConnectError.from(cause, Code.Internal);
    }
    if (bytes.byteLength > this.options.writeMaxBytes) {
      throw new ConnectError(
        `message size ${bytes.byteLength} is larger than configured writeMaxBytes ${this.options.writeMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
    return bytes;
  }

  /** The answer in the client's protocol: the message, or the error. */
  private reply(call: FastCall, output: Uint8Array | undefined, error: ConnectError | undefined): UnaryReply | Promise<UnaryReply> {
    const compression = this.compressionFor(call);
    return call.format.protocol === "connect"
      ? this.connectReply(call, output, error, compression)
      : this.grpcReply(call, output, error, compression);
  }

  /** The response compression for the client's accept header. */
  private compressionFor(call: FastCall): Compression | null {
    return this.negotiate(call.format.protocol === "connect" ? call.headers["accept-encoding"] : call.headers["grpc-accept-encoding"]);
  }

  /** The response compression for an accept header value, negotiated once per distinct value. */
  private negotiate(accept: string | string[] | undefined): Compression | null {
    if (accept === undefined) return null;
    const key = String(accept);
    let compression = this.negotiated.get(key);
    if (compression === undefined) {
      compression = compressionNegotiate(this.options.acceptCompression, null, key, "").response;
      if (this.negotiated.size >= NEGOTIATION_CACHE_SIZE) this.negotiated.clear();
      this.negotiated.set(key, compression);
    }
    return compression;
  }

  private grpcReply(
    call: FastCall,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): UnaryReply | Promise<UnaryReply> {
    if (compression && output !== undefined && output.byteLength >= this.options.compressMinBytes) {
      return compression.compress(output).then((compressed) => this.grpcReplyAsync(call, envelope(COMPRESSED_FLAG, compressed), error, compression));
    }
    const frame = output === undefined ? undefined : envelope(0, output);
    const headers = this.responseHeaders(call, compression);
    const responseTrailer = call.peekResponseTrailer();
    if (error === undefined && (responseTrailer === undefined || isEmpty(responseTrailer))) {
      if (call.format.protocol === "grpc") return { status: 200, headers, body: frame, trailers: OK_TRAILERS_OBJECT };
      if (!compression) {
        return { status: 200, headers, body: frame ? Buffer.concat([frame, OK_GRPC_WEB_TRAILER_FRAME]) : OK_GRPC_WEB_TRAILER_FRAME, trailers: undefined };
      }
    }
    return this.grpcReplyAsync(call, frame, error, compression, headers);
  }

  /** gRPC and gRPC-web answers that carry trailers of their own, or need compression. */
  private async grpcReplyAsync(
    call: FastCall,
    frame: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
    headers = this.responseHeaders(call, compression),
  ): Promise<UnaryReply> {
    const responseTrailer = call.peekResponseTrailer();
    const plainTrailer = error === undefined && (responseTrailer === undefined || isEmpty(responseTrailer));
    const trailer = plainTrailer ? OK_TRAILER : withStatus(call.responseTrailer, error);
    if (call.format.protocol === "grpc") {
      if (plainTrailer) return { status: 200, headers, body: frame, trailers: OK_TRAILERS_OBJECT };
      const trailers = copyInto({}, trailer);
      fixGrpcMessageTrailer(trailers);
      return { status: 200, headers, body: frame, trailers };
    }
    let trailerFrame = plainTrailer ? OK_GRPC_WEB_TRAILER_FRAME : envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(trailer));
    if (compression && trailerFrame.byteLength - ENVELOPE_HEADER_BYTES >= this.options.compressMinBytes) {
      const compressed = await compression.compress(trailerFrame.subarray(ENVELOPE_HEADER_BYTES));
      trailerFrame = envelope(GRPC_WEB_TRAILER_FLAG | COMPRESSED_FLAG, compressed);
    }
    return { status: 200, headers, body: frame ? Buffer.concat([frame, trailerFrame]) : trailerFrame, trailers: undefined };
  }

  private responseHeaders(call: FastCall, compression: Compression | null): Record<string, string | string[]> {
    const headers: Record<string, string | string[]> = { "content-type": call.format.responseContentType };
    if (compression) headers["grpc-encoding"] = compression.name;
    const responseHeader = call.peekResponseHeader();
    if (responseHeader) copyInto(headers, responseHeader);
    addObserverHeaders(headers, call);
    return headers;
  }

  private connectReply(
    call: FastCall,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): UnaryReply | Promise<UnaryReply> {
    const compress = compression !== null && (output?.byteLength ?? 0) >= this.options.compressMinBytes;
    if (error === undefined && output !== undefined && !compress && call.peekResponseHeader() === undefined && call.peekResponseTrailer() === undefined) {
      // The common case needs no Headers object at all.
      const headers: Record<string, string> = { "content-type": call.format.responseContentType };
      addObserverHeaders(headers, call);
      headers["content-length"] = String(output.byteLength);
      return { status: 200, headers, body: output, trailers: undefined };
    }
    return this.connectReplyAsync(call, output, error, compression);
  }

  private async connectReplyAsync(
    call: FastCall,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): Promise<UnaryReply> {
    let status = 200;
    let body: Uint8Array;
    const responseHeader = call.responseHeader;
    if (error === undefined && output !== undefined) {
      responseHeader.set("content-type", call.format.responseContentType);
      const extra = call.observerHeaders();
      if (extra) for (let i = 0; i < extra.length; i += 2) responseHeader.set(extra[i], extra[i + 1]);
      body = output;
    } else {
      const failure = error ?? new ConnectError("internal error", Code.Internal);
      status = codeToHttpStatus(failure.code);
      responseHeader.set("content-type", "application/json");
      if (!failure.isWireError) mergeNonProtocolHeaders(responseHeader, failure.metadata);
      body = errorToJsonBytes(failure, {});
    }
    if (compression && body.byteLength >= this.options.compressMinBytes) {
      body = await compression.compress(body);
      responseHeader.set("content-encoding", compression.name);
    }
    const responseTrailer = call.peekResponseTrailer();
    const header =
      responseTrailer === undefined || isEmpty(responseTrailer) ? responseHeader : trailerMux(responseHeader, responseTrailer);
    header.set("content-length", String(body.byteLength));
    return { status, headers: copyInto({}, header), body, trailers: undefined };
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

function isIdentity(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}

function isEmpty(headers: Headers): boolean {
  for (const _ of headers.keys()) return false;
  return true;
}

function withStatus(trailer: Headers, error: ConnectError | undefined): Headers {
  if (!trailer.has("grpc-status")) trailer.set("grpc-status", "0");
  if (error) setTrailerStatus(trailer, error);
  return trailer;
}

/** Observer headers win over the implementation's, as an interceptor setting them after the call would. */
function addObserverHeaders(target: Record<string, string | string[]>, call: FastCall): void {
  const extra = call.observerHeaders();
  if (extra === undefined) return;
  for (let i = 0; i < extra.length; i += 2) target[extra[i]] = extra[i + 1];
}

function copyInto(target: Record<string, string | string[]>, headers: Headers): Record<string, string | string[]> {
  headers.forEach((value, key) => {
    target[key] = key === "set-cookie" ? headers.getSetCookie() : value;
  });
  return target;
}
