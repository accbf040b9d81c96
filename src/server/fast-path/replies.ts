import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, mergeNonProtocolHeaders, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJsonBytes, trailerMux } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { envelope, ENVELOPE_HEADER_BYTES } from "../envelope.js";
import { fixGrpcMessageTrailer } from "../grpc-message.js";
import type { FastCall, UnaryReply } from "./fast-call.js";

const GRPC_WEB_TRAILER_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;
const OK_TRAILER = new Headers({ "grpc-status": "0" });
/** The trailers of every successful gRPC call without trailers of its own (shared, never modified). */
export const OK_TRAILERS_OBJECT: Readonly<Record<string, string>> = Object.freeze({ "grpc-status": "0" });
const OK_GRPC_WEB_TRAILER_FRAME = envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(OK_TRAILER));
/** Distinct accept-encoding values remembered with their negotiated compression. */
const NEGOTIATION_CACHE_SIZE = 64;

/**
 * Builds what the fast path sends, byte for byte as connect-node's handlers would: unary
 * answers and errors in each protocol, the headers of a stream, and the ends of streams.
 */
export class ReplyBuilder {
  private readonly negotiated = new Map<string, Compression | null>();

  constructor(
    private readonly acceptCompression: Compression[],
    private readonly compressMinBytes: number,
  ) {}

  /** The answer to a unary call (or a stream that failed before its first message) in the client's protocol. */
  reply(call: FastCall, output: Uint8Array | undefined, error: ConnectError | undefined): UnaryReply | Promise<UnaryReply> {
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
  negotiate(accept: string | string[] | undefined): Compression | null {
    if (accept === undefined) return null;
    const key = String(accept);
    let compression = this.negotiated.get(key);
    if (compression === undefined) {
      compression = compressionNegotiate(this.acceptCompression, null, key, "").response;
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
    if (compression && output !== undefined && output.byteLength >= this.compressMinBytes) {
      return compression.compress(output).then((compressed) => this.grpcFrames(call, envelope(COMPRESSED_FLAG, compressed), error, compression));
    }
    return this.grpcFrames(call, output === undefined ? undefined : envelope(0, output), error, compression);
  }

  /** The message frame (if any) with the status: in HTTP trailers (gRPC) or a trailer frame (gRPC-web). */
  private grpcFrames(
    call: FastCall,
    frame: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): UnaryReply | Promise<UnaryReply> {
    const headers = this.responseHeaders(call, compression);
    if (call.format.protocol === "grpc") return { status: 200, headers, body: frame, trailers: this.grpcTrailers(call, error) };
    const trailerFrame = this.grpcWebTrailerFrame(call, error);
    const withTrailer = (last: Uint8Array): UnaryReply => ({ status: 200, headers, body: frame ? Buffer.concat([frame, last]) : last, trailers: undefined });
    if (compression && trailerFrame.byteLength - ENVELOPE_HEADER_BYTES >= this.compressMinBytes) {
      return compression
        .compress(trailerFrame.subarray(ENVELOPE_HEADER_BYTES))
        .then((compressed) => withTrailer(envelope(GRPC_WEB_TRAILER_FLAG | COMPRESSED_FLAG, compressed)));
    }
    return withTrailer(trailerFrame);
  }

  /** Response headers: content type, compression, the implementation's headers, then the observers'. */
  responseHeaders(call: FastCall, compression: Compression | null): Record<string, string | string[]> {
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
    const compress = compression !== null && (output?.byteLength ?? 0) >= this.compressMinBytes;
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
    if (compression && body.byteLength >= this.compressMinBytes) {
      body = await compression.compress(body);
      responseHeader.set("content-encoding", compression.name);
    }
    const responseTrailer = call.peekResponseTrailer();
    const header =
      responseTrailer === undefined || isEmpty(responseTrailer) ? responseHeader : trailerMux(responseHeader, responseTrailer);
    header.set("content-length", String(body.byteLength));
    return { status, headers: copyInto({}, header), body, trailers: undefined };
  }

  /** The HTTP trailers that end a gRPC call or stream. */
  grpcTrailers(call: FastCall, error: ConnectError | undefined): Readonly<Record<string, string | string[]>> {
    if (isPlain(call, error)) return OK_TRAILERS_OBJECT;
    const trailers = copyInto({}, withStatus(call.responseTrailer, error));
    fixGrpcMessageTrailer(trailers);
    return trailers;
  }

  /** The trailer frame that ends a gRPC-web call or stream. */
  grpcWebTrailerFrame(call: FastCall, error: ConnectError | undefined): Uint8Array {
    return isPlain(call, error) ? OK_GRPC_WEB_TRAILER_FRAME : envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(withStatus(call.responseTrailer, error)));
  }

  /** The end-of-stream message that ends a Connect stream: the error if any, and the trailers. */
  connectEndStream(call: FastCall, error: ConnectError | undefined): Uint8Array {
    return envelope(endStreamFlag, Buffer.from(JSON.stringify(endStreamToJson(call.responseTrailer, error, undefined))));
  }
}

/** Success without trailers of the implementation's own: the shared trailers do. */
function isPlain(call: FastCall, error: ConnectError | undefined): boolean {
  const responseTrailer = call.peekResponseTrailer();
  return error === undefined && (responseTrailer === undefined || isEmpty(responseTrailer));
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
