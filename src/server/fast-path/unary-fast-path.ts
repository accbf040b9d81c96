import { Code, ConnectError, type HandlerContext, type Interceptor, type MethodImplSpec } from "@connectrpc/connect";
import { compressionNegotiate, mergeNonProtocolHeaders, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, trailerMux } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { IncomingHttpHeaders } from "node:http";
import { envelope, ENVELOPE_HEADER_BYTES } from "../envelope.js";
import { fixGrpcMessageTrailer } from "../grpc-message.js";
import { invokeUnary, UnaryCall, type ResponseMetadata } from "./unary-call.js";

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** How the fast path speaks one request content-type. */
export interface WireFormat {
  protocol: "grpc" | "grpc-web" | "connect";
  binary: boolean;
  responseContentType: string;
}

/** The request content-types the fast path serves; anything else goes to connect-node. */
const wireFormats = new Map<string, WireFormat>([
  ["application/grpc", { protocol: "grpc", binary: true, responseContentType: "application/grpc+proto" }],
  ["application/grpc+proto", { protocol: "grpc", binary: true, responseContentType: "application/grpc+proto" }],
  ["application/grpc-web", { protocol: "grpc-web", binary: true, responseContentType: "application/grpc-web+proto" }],
  ["application/grpc-web+proto", { protocol: "grpc-web", binary: true, responseContentType: "application/grpc-web+proto" }],
  ["application/proto", { protocol: "connect", binary: true, responseContentType: "application/proto" }],
  ["application/json", { protocol: "connect", binary: false, responseContentType: "application/json" }],
]);

const GRPC_WEB_TRAILER_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;
const OK_TRAILER = new Headers({ "grpc-status": "0" });
const OK_TRAILERS_OBJECT: Readonly<Record<string, string>> = Object.freeze({ "grpc-status": "0" });
const OK_GRPC_WEB_TRAILER_FRAME = envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(OK_TRAILER));

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

/** Where the outcome of a fast-path call goes, depending on the HTTP API that carried it. */
export interface ReplyChannel {
  /** Send the finished answer. */
  write(reply: UnaryReply): void;
  /** Hand the request over to connect-node, with the bytes read so far. */
  replay(alreadyRead: Buffer[], requestEnded: boolean): void;
  /** Something unexpected broke: log it and cut the call. */
  fail(error: unknown): void;
}

/** A complete unary answer, ready for either HTTP API to write. */
export interface UnaryReply {
  status: number;
  headers: Record<string, string | string[]>;
  body: Uint8Array | undefined;
  /** HTTP trailers (gRPC over HTTP/2 only). */
  trailers: Readonly<Record<string, string | string[]>> | undefined;
}

/** The request facts the fast path needs, read once from whichever HTTP API carried it. */
export interface UnaryRequestFacts {
  headers: IncomingHttpHeaders;
  /** Builds the absolute request URL, only if somebody asks for it. */
  url: () => string;
  /** Calls back when the call ends early because the client went away. */
  onClientGone: (listener: () => void) => void;
}

/** A request the fast path accepted on its headers: its wire format and parsed deadline. */
export interface AcceptedRequest {
  format: WireFormat;
  timeoutMs: number | undefined;
}

/**
 * Serves well-formed unary calls over gRPC, gRPC-web and Connect (POST) without connect-node's
 * per-call machinery: no async-iterable pipeline, no eager Headers/URL/AbortController.
 * It only takes requests it can answer exactly as connect-node would; anything unusual
 * (compression, other codecs, malformed deadlines, malformed or oversized bodies) is replayed
 * to connect-node, which produces the reference behaviour and error.
 */
export class UnaryFastPath {
  constructor(private readonly options: FastPathOptions) {}

  /** The wire format and deadline when this request is one the fast path serves, judged on headers alone. */
  accepts(method: string | undefined, headers: IncomingHttpHeaders, httpVersionMajor: number): AcceptedRequest | undefined {
    if (method !== "POST") return undefined;
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
   * Run the request gate, read the body from a readable request (compat request or raw HTTP/2
   * stream), then either answer through `write`, or call `replay` when connect-node must take over.
   */
  serve(
    spec: UnarySpec,
    accepted: AcceptedRequest,
    body: NodeJS.ReadableStream,
    facts: UnaryRequestFacts,
    channel: ReplyChannel,
  ): void {
    const call = new UnaryCall({
      spec,
      protocolName: accepted.format.protocol,
      headers: facts.headers,
      timeoutMs: accepted.timeoutMs,
      url: facts.url,
      onClientGone: facts.onClientGone,
      shutdownSignal: this.options.shutdownSignal,
    });
    const readAndAnswer = () => this.readAndAnswer(call, spec, accepted.format, body, facts, channel);
    const gate = this.options.requestGate;
    if (gate === undefined) {
      readAndAnswer();
      return;
    }
    // The gate runs before the body is read, so a refused client cannot make us buffer its upload.
    Promise.resolve()
      .then(() => gate(call.context()))
      .then(
        readAndAnswer,
        (reason: unknown) => {
          call.finish();
          return this.reply(accepted.format, facts, call, undefined, asConnectError(reason)).then((reply) => channel.write(reply));
        },
      )
      .catch((error: unknown) => channel.fail(error));
  }

  private readAndAnswer(
    call: UnaryCall,
    spec: UnarySpec,
    format: WireFormat,
    body: NodeJS.ReadableStream,
    facts: UnaryRequestFacts,
    channel: ReplyChannel,
  ): void {
    const chunks: Buffer[] = [];
    let received = 0;
    const limit = this.options.readMaxBytes + ENVELOPE_HEADER_BYTES;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received > limit) {
        stopReading();
        channel.replay(chunks, false);
      }
    };
    const onEnd = () => {
      stopReading();
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received);
      const input = this.decode(spec, format, bytes);
      if (input === undefined) channel.replay(chunks, true);
      else
        this.answer(call, spec, format, facts, input).then(
          (reply) => channel.write(reply),
          (error: unknown) => channel.fail(error),
        );
    };
    const stopReading = () => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.pause();
    };
    // A request whose headers carried END_STREAM may already be over once an async gate returns.
    if ((body as { readableEnded?: boolean }).readableEnded) {
      onEnd();
      return;
    }
    body.on("data", onData);
    body.on("end", onEnd);
  }

  /** The request message, or undefined when connect-node should produce the error. */
  private decode(spec: UnarySpec, format: WireFormat, body: Buffer): MessageShape<DescMessage> | undefined {
    const schema = spec.method.input;
    try {
      if (format.protocol === "connect") {
        if (body.length > this.options.readMaxBytes) return undefined;
        return format.binary
          ? fromBinary(schema, body)
          : fromJsonString(schema, body.toString("utf8"), { ignoreUnknownFields: true });
      }
      if (body.length < ENVELOPE_HEADER_BYTES || body[0] !== 0) return undefined;
      const length = body.readUInt32BE(1);
      if (length !== body.length - ENVELOPE_HEADER_BYTES || length > this.options.readMaxBytes) return undefined;
      return fromBinary(schema, body.subarray(ENVELOPE_HEADER_BYTES));
    } catch {
      return undefined;
    }
  }

  /** Run the call and build the reply: the message, or the error, in the client's protocol. */
  private async answer(
    call: UnaryCall,
    spec: UnarySpec,
    format: WireFormat,
    facts: UnaryRequestFacts,
    message: MessageShape<DescMessage>,
  ): Promise<UnaryReply> {
    let output: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      const serialize = (out: MessageShape<DescMessage>) => this.serialize(spec, format, out);
      const result = await invokeUnary(call, spec, this.options.interceptors, message, serialize);
      output = result.bytes ?? serialize(result.message);
    } catch (cause) {
      error = asConnectError(cause);
    } finally {
      call.finish();
    }
    return this.reply(format, facts, call, output, error);
  }

  private reply(
    format: WireFormat,
    facts: UnaryRequestFacts,
    call: UnaryCall,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
  ): Promise<UnaryReply> {
    const headers = facts.headers;
    const acceptHeader = format.protocol === "connect" ? headers["accept-encoding"] : headers["grpc-accept-encoding"];
    const compression =
      acceptHeader === undefined
        ? null
        : compressionNegotiate(this.options.acceptCompression, null, String(acceptHeader), "").response;
    return format.protocol === "connect"
      ? this.connectReply(format, call.response, output, error, compression)
      : this.grpcReply(format, call.response, output, error, compression);
  }

  private serialize(spec: UnarySpec, format: WireFormat, message: MessageShape<DescMessage>): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = format.binary
        ? toBinary(spec.method.output, message)
        : Buffer.from(toJsonString(spec.method.output, message));
    } catch (cause) {
      throw format.binary
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

  private async grpcReply(
    format: WireFormat,
    response: ResponseMetadata,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): Promise<UnaryReply> {
    const headers: Record<string, string | string[]> = { "content-type": format.responseContentType };
    if (compression) headers["grpc-encoding"] = compression.name;
    const responseHeader = response.peekHeader();
    if (responseHeader) copyInto(headers, responseHeader);
    let frame: Uint8Array | undefined;
    if (output !== undefined) {
      frame =
        compression && output.byteLength >= this.options.compressMinBytes
          ? envelope(COMPRESSED_FLAG, await compression.compress(output))
          : envelope(0, output);
    }
    const responseTrailer = response.peekTrailer();
    const plainTrailer = error === undefined && (responseTrailer === undefined || isEmpty(responseTrailer));
    const trailer = plainTrailer ? OK_TRAILER : withStatus(response.trailer, error);
    if (format.protocol === "grpc") {
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

  private async connectReply(
    format: WireFormat,
    response: ResponseMetadata,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): Promise<UnaryReply> {
    if (error === undefined && output !== undefined && response.peekHeader() === undefined && response.peekTrailer() === undefined) {
      // The common case needs no Headers object at all.
      let body = output;
      const headers: Record<string, string> = { "content-type": format.responseContentType };
      if (compression && body.byteLength >= this.options.compressMinBytes) {
        body = await compression.compress(body);
        headers["content-encoding"] = compression.name;
      }
      headers["content-length"] = String(body.byteLength);
      return { status: 200, headers, body, trailers: undefined };
    }
    let status = 200;
    let body: Uint8Array;
    const responseHeader = response.header;
    if (error === undefined && output !== undefined) {
      responseHeader.set("content-type", format.responseContentType);
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
    const responseTrailer = response.peekTrailer();
    const header =
      responseTrailer === undefined || isEmpty(responseTrailer) ? responseHeader : trailerMux(responseHeader, responseTrailer);
    header.set("content-length", String(body.byteLength));
    return { status, headers: copyInto({}, header), body, trailers: undefined };
  }
}

function asConnectError(cause: unknown): ConnectError {
  // Anything that is not a ConnectError is an internal failure whose message must not reach the client.
  return cause instanceof ConnectError ? cause : new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
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

function copyInto(target: Record<string, string | string[]>, headers: Headers): Record<string, string | string[]> {
  headers.forEach((value, key) => {
    target[key] = key === "set-cookie" ? headers.getSetCookie() : value;
  });
  return target;
}
