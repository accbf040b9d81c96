/**
 * A minimal Connect-protocol client over fetch, for messages as JSON the explorer cannot know
 * ahead of time (no generated code). It records what a person debugging a call wants to see:
 * status, headers, each streamed message with its arrival time, trailers and the error.
 * Spec: connectrpc.com/docs/protocol. Uses only fetch and streams, so it also runs in Node.
 */
import type { MethodKind } from "../../src/web/explorer-types.js";

export interface CallRequest {
  baseUrl: string;
  path: string;
  kind: MethodKind;
  /** Request messages (protobuf JSON): exactly one unless the client streams. */
  messages: unknown[];
  /** Extra request headers, e.g. authorization. */
  headers: [string, string][];
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface CallObserver {
  onHeaders?(status: number, headers: [string, string][], atMs: number): void;
  onMessage?(message: unknown, atMs: number): void;
}

export interface CallError {
  /** The Connect code, snake_case ("invalid_argument"). */
  code: string;
  message: string;
  details?: unknown[];
}

export interface CallResult {
  /** Undefined when no response arrived (network failure, CORS, cancelled). */
  httpStatus: number | undefined;
  headers: [string, string][];
  trailers: [string, string][];
  messages: { value: unknown; atMs: number }[];
  error?: CallError;
  /** Time until the response headers arrived. */
  timeToHeadersMs?: number;
  totalMs: number;
}

const END_STREAM_FLAG = 0b10;
const COMPRESSED_FLAG = 0b01;

/** Make one call; never throws for RPC, HTTP or network failures: they are in `error`. */
export async function callConnectJson(request: CallRequest, observer: CallObserver = {}): Promise<CallResult> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const result: CallResult = { httpStatus: undefined, headers: [], trailers: [], messages: [], totalMs: 0 };
  const finish = (error?: CallError) => {
    if (error) result.error = error;
    result.totalMs = elapsed();
    return result;
  };

  const unary = request.kind === "unary";
  const headers = new Headers();
  for (const [name, value] of request.headers) headers.append(name, value);
  headers.set("content-type", unary ? "application/json" : "application/connect+json");
  headers.set("connect-protocol-version", "1");
  if (request.timeoutMs) headers.set("connect-timeout-ms", String(Math.round(request.timeoutMs)));
  const encoder = new TextEncoder();
  const body = unary
    ? encoder.encode(JSON.stringify(request.messages[0] ?? {}))
    : concat(request.messages.map((message) => envelope(encoder.encode(JSON.stringify(message ?? {})))));

  let response: Response;
  try {
    response = await fetch(`${request.baseUrl}${request.path}`, { method: "POST", headers, body, signal: request.signal });
  } catch (cause) {
    if (request.signal?.aborted) return finish({ code: "canceled", message: "the call was cancelled" });
    // fetch says no more for a refused connection than for a CORS refusal, on purpose.
    return finish({ code: "unavailable", message: `no response: ${(cause as Error).message}` });
  }

  result.httpStatus = response.status;
  result.timeToHeadersMs = elapsed();
  for (const [name, value] of response.headers) {
    // Unary Connect responses carry trailers as headers with a "trailer-" prefix.
    if (unary && name.startsWith("trailer-")) result.trailers.push([name.slice("trailer-".length), value]);
    else result.headers.push([name, value]);
  }
  observer.onHeaders?.(response.status, result.headers, result.timeToHeadersMs);

  try {
    if (unary || response.status !== 200) {
      const text = await response.text();
      if (response.status === 200) {
        const message = parseJson(text);
        result.messages.push({ value: message, atMs: elapsed() });
        observer.onMessage?.(message, elapsed());
        return finish();
      }
      return finish(errorFromBody(text, response.status));
    }
    return finish(await readStream(response, result, observer, elapsed));
  } catch (cause) {
    if (request.signal?.aborted) return finish({ code: "canceled", message: "the call was cancelled" });
    return finish({ code: "internal", message: `reading the response failed: ${(cause as Error).message}` });
  }
}

/** Read enveloped messages as they arrive; returns the end-of-stream message's error, if any. */
async function readStream(response: Response, result: CallResult, observer: CallObserver, elapsed: () => number): Promise<CallError | undefined> {
  if (!response.body) return { code: "internal", message: "the response has no body" };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (value) buffer = buffer.length === 0 ? value : concat([buffer, value]);
    for (;;) {
      if (buffer.length < 5) break;
      const flags = buffer[0];
      const length = new DataView(buffer.buffer, buffer.byteOffset, 5).getUint32(1);
      if (buffer.length < 5 + length) break;
      const payload = decoder.decode(buffer.subarray(5, 5 + length));
      buffer = buffer.subarray(5 + length);
      if (flags & COMPRESSED_FLAG) return { code: "internal", message: "received a compressed message, but asked for none" };
      if (flags & END_STREAM_FLAG) {
        const end = parseJson(payload) as { error?: { code?: string; message?: string; details?: unknown[] }; metadata?: Record<string, string[]> };
        for (const [name, values] of Object.entries(end.metadata ?? {})) {
          for (const value of values) result.trailers.push([name, value]);
        }
        await reader.cancel().catch(() => undefined);
        if (!end.error) return undefined;
        return { code: end.error.code ?? "unknown", message: end.error.message ?? "", ...(end.error.details && { details: end.error.details }) };
      }
      const message = parseJson(payload);
      result.messages.push({ value: message, atMs: elapsed() });
      observer.onMessage?.(message, elapsed());
    }
    if (done) break;
  }
  return { code: "internal", message: buffer.length > 0 ? "the stream ended in the middle of a message" : "the stream ended without an end-of-stream message" };
}

/** A Connect error body, or (from a proxy or an unknown path) a code derived from the HTTP status. */
function errorFromBody(text: string, status: number): CallError {
  try {
    const error = JSON.parse(text) as { code?: unknown; message?: unknown; details?: unknown[] };
    if (typeof error.code === "string") {
      return { code: error.code, message: typeof error.message === "string" ? error.message : "", ...(error.details && { details: error.details }) };
    }
  } catch {
    // not JSON: fall through to the HTTP status
  }
  return { code: codeForHttpStatus(status), message: text.trim() || `HTTP ${status}` };
}

/** The Connect protocol's mapping for HTTP errors that carry no Connect error. */
export function codeForHttpStatus(status: number): string {
  switch (status) {
    case 400:
      return "internal";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "unimplemented";
    case 429:
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return "unknown";
  }
}

function parseJson(text: string): unknown {
  return text === "" ? {} : JSON.parse(text);
}

function envelope(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(5 + payload.length);
  new DataView(frame.buffer).setUint32(1, payload.length);
  frame.set(payload, 5);
  return frame;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
