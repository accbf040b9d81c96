/**
 * The exact requests the load tools send, and a check of one reply to each.
 *
 * A load tool only sees HTTP status codes; a gRPC or gRPC-web failure still answers HTTP 200.
 * So before (and after) loading a server, the runner replays the very same bytes with Node's
 * own http/http2 client and checks the reply down to grpc-status and the decoded messages.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { create, fromBinary, fromJson, toBinary, toJsonString, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

export type WireProtocol = "grpc" | "grpc-web" | "connect-json";

/** One RPC as bytes on the wire, plus what a good reply looks like. */
export interface WireRequest {
  protocol: WireProtocol;
  /** "/package.Service/Method" */
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Expected number of response messages (1 for unary). */
  messages: number;
  /** Throws if a decoded response message is wrong. */
  check(message: unknown): void;
}

/** A 5-byte length-prefixed frame (gRPC and gRPC-web): flags, big-endian length, payload. */
export function frame(payload: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

export function unframe(body: Buffer): { flags: number; payload: Buffer }[] {
  const frames: { flags: number; payload: Buffer }[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < 5) throw new Error(`truncated frame header at byte ${offset}`);
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    if (body.length - offset - 5 < length) throw new Error(`truncated frame at byte ${offset}`);
    frames.push({ flags, payload: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return frames;
}

/** Build the request of one procedure for a protocol. */
export function wireRequest<I extends DescMessage, O extends DescMessage>(spec: {
  protocol: WireProtocol;
  path: string;
  input: I;
  output: O;
  request: MessageInitShape<I>;
  messages?: number;
  check?: (message: MessageShape<O>) => void;
}): WireRequest {
  const { protocol, input, output } = spec;
  const request = create(input, spec.request);
  const check = (message: unknown) => spec.check?.(message as MessageShape<O>);
  switch (protocol) {
    case "grpc":
      return {
        protocol,
        path: spec.path,
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: frame(toBinary(input, request)),
        messages: spec.messages ?? 1,
        check: (m) => check(fromBinary(output, m as Uint8Array)),
      };
    case "grpc-web":
      return {
        protocol,
        path: spec.path,
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: frame(toBinary(input, request)),
        messages: spec.messages ?? 1,
        check: (m) => check(fromBinary(output, m as Uint8Array)),
      };
    case "connect-json":
      return {
        protocol,
        path: spec.path,
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: Buffer.from(toJsonString(input, request)),
        messages: 1,
        check: (m) => check(fromJson(output, JSON.parse((m as Buffer).toString("utf8")))),
      };
  }
}

interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  trailers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function replayH2(url: string, req: WireRequest, timeoutMs: number): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no complete reply within ${timeoutMs} ms`));
    }, timeoutMs);
    session.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const stream = session.request({ ":method": "POST", ":path": req.path, ...req.headers });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    });
    stream.on("end", () => {
      clearTimeout(timer);
      session.close();
      resolve({ status: Number(headers[":status"]), headers, trailers, body: Buffer.concat(chunks) });
    });
    stream.end(req.body);
  });
}

function replayH1(url: string, req: WireRequest, timeoutMs: number): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const r = http.request(url + req.path, { method: "POST", headers: { ...req.headers, "content-length": req.body.length }, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    r.on("timeout", () => r.destroy(new Error(`no complete reply within ${timeoutMs} ms`)));
    r.on("error", reject);
    r.end(req.body);
  });
}

export interface VerifiedReply {
  /** Response body bytes (what h2load counts as "data"). */
  bodyBytes: number;
  messages: number;
}

/**
 * Send `req` once over HTTP/2 (h2c prior knowledge) or HTTP/1.1 and check the reply fully:
 * HTTP status, grpc-status, message count, and each decoded message.
 */
export async function replayAndVerify(url: string, httpVersion: "1.1" | "2", req: WireRequest, timeoutMs = 15_000): Promise<VerifiedReply> {
  const reply = httpVersion === "2" ? await replayH2(url, req, timeoutMs) : await replayH1(url, req, timeoutMs);
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  if (reply.status !== 200) {
    throw new Error(`HTTP ${reply.status}: ${reply.body.toString("utf8").slice(0, 200)}`);
  }
  let payloads: Buffer[];
  if (req.protocol === "connect-json") {
    payloads = [reply.body];
  } else if (req.protocol === "grpc") {
    const status = first(reply.trailers["grpc-status"]) ?? first(reply.headers["grpc-status"]);
    if (status !== "0") {
      const message = first(reply.trailers["grpc-message"]) ?? first(reply.headers["grpc-message"]) ?? "";
      throw new Error(`grpc-status ${status ?? "(missing)"}: ${decodeURIComponent(message)}`);
    }
    payloads = unframe(reply.body).map((f) => f.payload);
  } else {
    const frames = unframe(reply.body);
    const trailer = frames.find((f) => (f.flags & 0x80) !== 0);
    const trailerText = trailer?.payload.toString("latin1") ?? "";
    const status = /^grpc-status:\s*(\d+)/im.exec(trailerText)?.[1] ?? first(reply.headers["grpc-status"]);
    if (status !== "0") throw new Error(`grpc-web status ${status ?? "(missing)"}: ${trailerText.trim() || "(no trailer frame)"}`);
    payloads = frames.filter((f) => (f.flags & 0x80) === 0).map((f) => f.payload);
  }
  if (payloads.length !== req.messages) {
    throw new Error(`expected ${req.messages} response message(s), got ${payloads.length}`);
  }
  for (const payload of payloads) req.check(payload);
  return { bodyBytes: reply.body.length, messages: payloads.length };
}
