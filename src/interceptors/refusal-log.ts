import type { Code } from "@connectrpc/connect";
import type { Logger } from "../ops/logger.js";
import { PEER_HEADER } from "../security/identity.js";
import { codeNames } from "./access-log.js";
import { REQUEST_ID_HEADER, requestIdFrom, traceIdFrom } from "./request-id.js";
import { rpcProtocolOf } from "./rpc-protocol.js";

/** A call refused before the interceptors ran: they write no access-log line for it, so this does. */
export interface RefusedCall {
  /** "pkg.Service/Method", or the request path when no such procedure is served. */
  method: string;
  /** The HTTP method that carried the call. */
  httpMethod: string;
  /** A request header by lower-case name, or null. */
  header(name: string): string | null;
  /** The code the client reads from the answer. */
  code: Code;
  /** Why it was refused, for the operator (never a credential). */
  reason: string;
  /** The answer's HTTP status, when it is not 200. */
  httpStatus?: number;
  principal?: string;
  /** The request id the answer carries; by default the client's (if sane) or a new one. */
  requestId?: string;
}

/** Client-chosen strings in the log are cut to this length. */
const MAX_LOGGED_TEXT = 200;

/**
 * Log a refused call in the access log's shape (msg "rpc", the same fields) with `refused` saying
 * why; returns the request id logged, so the answer can carry it. Only at level info or below.
 */
export function logRefusedCall(logger: Logger, call: RefusedCall): string {
  const requestId = call.requestId ?? requestIdFrom(call.header(REQUEST_ID_HEADER));
  if (!logger.isLevelEnabled("info")) return requestId;
  logger.info(
    {
      requestId,
      traceId: traceIdFrom(call.header("traceparent")),
      method: call.method.slice(0, MAX_LOGGED_TEXT),
      protocol: rpcProtocolOf(call.header("content-type")),
      httpMethod: call.httpMethod.slice(0, MAX_LOGGED_TEXT),
      code: codeNames.get(call.code),
      httpStatus: call.httpStatus,
      durationMs: 0,
      peer: call.header(PEER_HEADER) ?? undefined,
      principal: call.principal,
      refused: call.reason.slice(0, MAX_LOGGED_TEXT),
    },
    "rpc",
  );
  return requestId;
}
