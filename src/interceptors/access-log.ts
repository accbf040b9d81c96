import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { trace } from "@opentelemetry/api";
import type { Logger } from "../ops/logger.js";
import { identityKey, PEER_HEADER } from "../security/identity.js";
import { REQUEST_ID_HEADER, requestIdFrom, traceIdFrom } from "./request-id.js";
import { rpcProtocolOf } from "./rpc-protocol.js";
import { observeStream } from "./stream-outcome.js";

/** snake_case code names as the Connect protocol spells them ("invalid_argument"), computed once. */
export const codeNames = new Map<Code, string>(
  Object.values(Code)
    .filter((value): value is Code => typeof value === "number")
    .map((code) => [code, codeToString(code)]),
);

/**
 * One structured log line per call: request id, trace id, method, protocol, code, duration, peer
 * and caller. The request id (the client's x-request-id, or a new one) goes back in the response.
 */
export function accessLogInterceptor(logger: Logger, options: { tracing?: boolean } = {}): Interceptor {
  const tracing = options.tracing === true;
  return (next) => async (req) => {
    const startedAt = performance.now();
    const requestId = requestIdFrom(req.header);
    const write = (error: unknown) => {
      const code = error === undefined ? "ok" : codeNames.get(ConnectError.from(error).code);
      const durationMs = Math.round((performance.now() - startedAt) * 1000) / 1000;
      logger.info(
        {
          requestId,
          // The server span's trace (a new one when the client sent none) if tracing is on.
          traceId: (tracing ? trace.getActiveSpan()?.spanContext().traceId : undefined) ?? traceIdFrom(req.header),
          method: `${req.service.typeName}/${req.method.name}`,
          protocol: rpcProtocolOf(req.header.get("content-type")),
          httpMethod: req.requestMethod,
          code,
          durationMs,
          peer: req.header.get(PEER_HEADER) ?? undefined,
          principal: req.contextValues.get(identityKey)?.principal,
        },
        "rpc",
      );
    };
    let res;
    try {
      res = await next(req);
    } catch (error) {
      write(error);
      throw withRequestId(error, requestId);
    }
    res.header.set(REQUEST_ID_HEADER, requestId);
    if (!res.stream) {
      write(undefined);
      return res;
    }
    return { ...res, message: observeStream(res.message, write) };
  };
}

/** Returns the request id (the client's, or a new one) without logging: used when the access log is off. */
export function requestIdInterceptor(): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdFrom(req.header);
    let res;
    try {
      res = await next(req);
    } catch (error) {
      throw withRequestId(error, requestId);
    }
    res.header.set(REQUEST_ID_HEADER, requestId);
    return res;
  };
}

/** The error as a ConnectError whose metadata (response headers) carries the request id. */
export function withRequestId(error: unknown, requestId: string): ConnectError {
  const connectError = ConnectError.from(error);
  connectError.metadata.set(REQUEST_ID_HEADER, requestId);
  return connectError;
}
