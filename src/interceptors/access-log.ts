import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { trace } from "@opentelemetry/api";
import { pino } from "pino";
import type { Logger } from "../ops/logger.js";
import { identityKey, PEER_HEADER } from "../security/identity.js";
import type { CallObserver } from "./call-observer.js";
import { REQUEST_ID_HEADER, traceIdFrom } from "./request-id.js";

/** snake_case code names as the Connect protocol spells them ("invalid_argument"), computed once. */
export const codeNames = new Map<Code, string>(
  Object.values(Code)
    .filter((value): value is Code => typeof value === "number")
    .map((code) => [code, codeToString(code)]),
);

/**
 * One structured log line per call: request id, trace id, method, protocol, code, duration, peer
 * and caller, in the same JSON shape as the logger's other lines. The line is assembled by hand
 * and written to the logger's destination: its fields are fixed and hold no secrets, and going
 * through pino's generic serializer cost several times more per call.
 */
export function accessLogObserver(logger: Logger, options: { tracing?: boolean } = {}): CallObserver {
  const tracing = options.tracing === true;
  const destination = (logger as unknown as Record<symbol, { write(line: string): unknown }>)[pino.symbols.streamSym];
  const clock = new IsoClock();
  // `,"method":"pkg.Service/Method"` is the same for every call of a method: built once.
  const methodFields = new Map<DescMethod, string>();
  const methodField = (method: DescMethod) => {
    let field = methodFields.get(method);
    if (field === undefined) methodFields.set(method, (field = `,"method":${JSON.stringify(`${method.parent.typeName}/${method.name}`)}`));
    return field;
  };
  return {
    callEnded(call, error) {
      const code = error === undefined ? "ok" : codeNames.get(error.code);
      const durationMs = Math.round((performance.now() - call.startedAt) * 1000) / 1000;
      // The server span's trace (a new one when the client sent none) if tracing is on.
      const traceId = (tracing ? trace.getActiveSpan()?.spanContext().traceId : undefined) ?? traceIdFrom(call.requestHeaderValue("traceparent"));
      const peer = call.requestHeaderValue(PEER_HEADER);
      const principal = call.contextValue(identityKey)?.principal;
      destination.write(
        `{"level":"info","time":"${clock.now()}","requestId":${jsonString(call.requestId)}` +
          (traceId === undefined ? "" : `,"traceId":${jsonString(traceId)}`) +
          methodField(call.method) +
          // Both come from fixed sets (our protocol names, the HTTP methods Node's parser accepts).
          `,"protocol":"${call.protocol}","httpMethod":"${call.requestMethod}"` +
          `,"code":"${code}","durationMs":${durationMs}` +
          (peer === null ? "" : `,"peer":${jsonString(peer)}`) +
          (principal === undefined ? "" : `,"principal":${JSON.stringify(principal)}`) +
          `,"msg":"rpc"}\n`,
      );
    },
  };
}

/** A JSON string literal; ids and addresses are plain printable ASCII, which needs no escaping. */
function jsonString(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/** The error as a ConnectError whose metadata (response headers) carries the request id. */
export function withRequestId(error: unknown, requestId: string): ConnectError {
  const connectError = ConnectError.from(error);
  connectError.metadata.set(REQUEST_ID_HEADER, requestId);
  return connectError;
}

/** ISO-8601 time stamps as pino's isoTime writes them, formatted at most once per millisecond. */
class IsoClock {
  private lastMs = 0;
  private lastText = "";

  now(): string {
    const ms = Date.now();
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastText = new Date(ms).toISOString();
    }
    return this.lastText;
  }
}
