import { Code, ConnectError, type Interceptor, type MethodImplSpec } from "@connectrpc/connect";
import { compressionNegotiate, mergeNonProtocolHeaders, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, trailerMux } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { HttpRequest, HttpResponse } from "../http-types.js";
import { invokeUnary, type UnaryCallInput } from "./unary-call.js";

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** How the fast path speaks one request content-type. */
interface WireFormat {
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

const ENVELOPE_HEADER_BYTES = 5;
const GRPC_WEB_TRAILER_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;
const OK_TRAILER = new Headers({ "grpc-status": "0" });
const OK_GRPC_WEB_TRAILER_FRAME = envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(OK_TRAILER));

/** Settings shared with connect-node's handlers, so both paths apply the same limits. */
export interface FastPathOptions {
  interceptors: Interceptor[];
  readMaxBytes: number;
  writeMaxBytes: number;
  compressMinBytes: number;
  acceptCompression: Compression[];
  shutdownSignal: AbortSignal;
}

/** Hands a request the fast path started to read over to connect-node, with the bytes read so far. */
export type ReplayToConnect = (alreadyRead: Buffer[], requestEnded: boolean) => void;

/**
 * Serves well-formed unary calls over gRPC, gRPC-web and Connect (POST) without connect-node's
 * per-call machinery: no async-iterable pipeline, no eager Headers/URL/AbortController.
 * It only takes requests it can answer exactly as connect-node would; anything unusual
 * (compression, deadlines, other codecs, malformed or oversized bodies) is replayed to
 * connect-node, which produces the reference behaviour and error.
 */
export class UnaryFastPath {
  constructor(private readonly options: FastPathOptions) {}

  /** Serve the call if it is a plain case; returns false (having consumed nothing) otherwise. */
  tryServe(spec: UnarySpec, req: HttpRequest, res: HttpResponse, replay: ReplayToConnect): boolean {
    if (req.method !== "POST") return false;
    const headers = req.headers;
    const format = wireFormats.get(headers["content-type"] ?? "");
    if (format === undefined) return false;
    if (format.protocol === "connect") {
      if (!isIdentity(headers["content-encoding"]) || headers["connect-timeout-ms"] !== undefined) return false;
      const version = headers["connect-protocol-version"];
      if (version !== undefined && version !== "1") return false;
    } else {
      // gRPC needs HTTP/2 trailers; connect-node decides what to do with gRPC over HTTP/1.1.
      if (format.protocol === "grpc" && req.httpVersionMajor !== 2) return false;
      if (!isIdentity(headers["grpc-encoding"]) || headers["grpc-timeout"] !== undefined) return false;
    }
    const declaredLength = Number(headers["content-length"] ?? 0);
    if (declaredLength > this.options.readMaxBytes + ENVELOPE_HEADER_BYTES) return false;

    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received > this.options.readMaxBytes + ENVELOPE_HEADER_BYTES) {
        stopReading();
        replay(chunks, false);
      }
    };
    const onEnd = () => {
      stopReading();
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received);
      const input = this.decode(spec, format, body);
      if (input === undefined) replay(chunks, true);
      else void this.respond(spec, format, req, res, input);
    };
    const stopReading = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.pause();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    return true;
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

  private async respond(
    spec: UnarySpec,
    format: WireFormat,
    req: HttpRequest,
    res: HttpResponse,
    message: MessageShape<DescMessage>,
  ): Promise<void> {
    const headers = req.headers;
    const acceptHeader = format.protocol === "connect" ? headers["accept-encoding"] : headers["grpc-accept-encoding"];
    const compression =
      acceptHeader === undefined
        ? null
        : compressionNegotiate(this.options.acceptCompression, null, String(acceptHeader), "").response;
    const responseHeader = new Headers();
    const responseTrailer = new Headers();
    let abort: AbortController | undefined;
    let finished = false;
    const call: UnaryCallInput = {
      requestMethod: "POST",
      protocolName: format.protocol,
      headers,
      responseHeader,
      responseTrailer,
      url: () => requestUrl(req),
      signal: () => {
        abort = new AbortController();
        res.once("close", () => {
          if (!finished) abort?.abort(new ConnectError("the client went away", Code.Canceled));
        });
        return AbortSignal.any([abort.signal, this.options.shutdownSignal]);
      },
    };
    let output: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      const result = await invokeUnary(spec, this.options.interceptors, call, message);
      output = this.serialize(spec, format, result.message);
    } catch (cause) {
      error = cause instanceof ConnectError ? cause : new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
    } finally {
      finished = true;
    }
    if (res.destroyed || res.writableEnded) return;
    if (format.protocol === "connect") await this.writeConnect(res, format, responseHeader, responseTrailer, output, error, compression);
    else await this.writeGrpc(res, format, responseHeader, responseTrailer, output, error, compression);
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

  private async writeGrpc(
    res: HttpResponse,
    format: WireFormat,
    responseHeader: Headers,
    responseTrailer: Headers,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): Promise<void> {
    const head: Record<string, string | string[]> = { "content-type": format.responseContentType };
    if (compression) head["grpc-encoding"] = compression.name;
    copyInto(head, responseHeader);
    let frame: Uint8Array | undefined;
    if (output !== undefined) {
      frame =
        compression && output.byteLength >= this.options.compressMinBytes
          ? envelope(COMPRESSED_FLAG, await compression.compress(output))
          : envelope(0, output);
    }
    const plainTrailer = error === undefined && isEmpty(responseTrailer);
    const trailer = plainTrailer ? OK_TRAILER : withStatus(responseTrailer, error);
    if (format.protocol === "grpc") {
      res.writeHead(200, head);
      (res as { addTrailers(t: Record<string, string | string[]>): void }).addTrailers(copyInto({}, trailer));
      if (frame) res.end(frame);
      else res.end();
      return;
    }
    let trailerFrame = plainTrailer ? OK_GRPC_WEB_TRAILER_FRAME : envelope(GRPC_WEB_TRAILER_FLAG, trailerSerialize(trailer));
    if (compression && trailerFrame.byteLength - ENVELOPE_HEADER_BYTES >= this.options.compressMinBytes) {
      trailerFrame = envelope(GRPC_WEB_TRAILER_FLAG | COMPRESSED_FLAG, await compression.compress(trailerFrame.subarray(ENVELOPE_HEADER_BYTES)));
    }
    res.writeHead(200, head);
    res.end(frame ? Buffer.concat([frame, trailerFrame]) : trailerFrame);
  }

  private async writeConnect(
    res: HttpResponse,
    format: WireFormat,
    responseHeader: Headers,
    responseTrailer: Headers,
    output: Uint8Array | undefined,
    error: ConnectError | undefined,
    compression: Compression | null,
  ): Promise<void> {
    let status = 200;
    let body: Uint8Array;
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
    const header = isEmpty(responseTrailer) ? responseHeader : trailerMux(responseHeader, responseTrailer);
    header.set("content-length", String(body.byteLength));
    res.writeHead(status, copyInto({}, header));
    res.end(body);
  }
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

function envelope(flags: number, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + data.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(data.byteLength, 1);
  frame.set(data, ENVELOPE_HEADER_BYTES);
  return frame;
}

function requestUrl(req: HttpRequest): string {
  const encrypted = "encrypted" in req.socket && (req.socket as { encrypted?: boolean }).encrypted;
  const authority = "authority" in req ? req.authority : req.headers.host;
  return new URL(req.url ?? "/", `${encrypted ? "https" : "http"}://${authority ?? "localhost"}`).toString();
}
