import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
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
import { ENVELOPE_HEADER_BYTES } from "../envelope.js";
import type { FastCall, FastSpec, UnaryReply } from "./fast-call.js";
import { ReplyBuilder } from "./replies.js";
import { endUnstartedStream, runServerStream, type ServerStreamDeps } from "./server-stream.js";
import { invokeUnary } from "./unary-chain.js";
import { connectStreamFormats, wireFormats, type WireFormat } from "./wire-formats.js";

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

/** The request body of a call as the fast path reads it: Node's HTTP/2 stream or HTTP/1.1 request, or a lean HTTP/1.1 exchange. */
export interface RequestBody {
  readableEnded?: boolean;
  [CALL]?: FastCall;
  on(event: "data" | "end", listener: (chunk: Buffer) => void): unknown;
  off(event: "data" | "end", listener: (chunk: Buffer) => void): unknown;
  pause(): unknown;
}

/** Where a request body's listeners find their call, so they can be shared instead of made per call. */
const CALL = Symbol("fast-path call");

/**
 * Serves well-formed unary calls over gRPC, gRPC-web and Connect (POST), and plain server
 * streams, without connect-node's per-call machinery: no async-iterable pipeline, no eager
 * Headers/URL/AbortController, and, when the interceptor chain only observes calls, no chain of
 * promises either. It only takes
 * requests it can answer exactly as connect-node would; anything unusual (compression, other
 * codecs, malformed deadlines, malformed or oversized bodies) is replayed to connect-node,
 * which produces the reference behaviour and error.
 */
export class RpcFastPath {
  /** Observers run directly when the chain is nothing but observers (or empty); undefined otherwise. */
  private readonly observers: readonly CallObserver[] | undefined;
  private readonly replies: ReplyBuilder;
  private readonly streamDeps: ServerStreamDeps;
  private readonly onBodyData: (this: RequestBody, chunk: Buffer) => void;
  private readonly onBodyEnd: (this: RequestBody) => void;

  constructor(private readonly options: FastPathOptions) {
    const chain = options.interceptors;
    this.observers = chain.length === 0 ? [] : chain.length === 1 ? observersOf(chain[0]) : undefined;
    this.replies = new ReplyBuilder(options.acceptCompression, options.compressMinBytes);
    this.streamDeps = {
      observers: this.observers ?? [],
      replies: this.replies,
      serialize: (call, message) => this.serialize(call, message),
      deliver: (call, reply) => this.deliver(call, reply),
    };
    const limit = options.readMaxBytes + ENVELOPE_HEADER_BYTES;
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
      if (this.replies.negotiate(headers["connect-accept-encoding"]) !== null) return undefined;
    } else {
      if (format.protocol === "grpc" && httpVersionMajor !== 2) return undefined;
      if (!isIdentity(headers["grpc-encoding"]) || headers["grpc-timeout"] !== undefined) return undefined;
      if (this.replies.negotiate(headers["grpc-accept-encoding"]) !== null) return undefined;
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
          if (call.spec.kind === "server_streaming") endUnstartedStream(call, asCallError(reason), this.streamDeps);
          else this.deliver(call, this.replies.reply(call, undefined, asCallError(reason)));
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
      runServerStream(call, call.spec, input, this.streamDeps).catch((error: unknown) => call.fail(error));
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
    this.deliver(call, this.replies.reply(call, output, error));
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
    this.deliver(call, this.replies.reply(call, output, error));
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

}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

function isIdentity(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}

