import { SpanKind, context, trace, type Tracer } from "@opentelemetry/api";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { endSpan, extractFromHeaders } from "../ops/tracing.js";
import { rpcProtocolOf } from "./rpc-protocol.js";

/**
 * A server span per call (OpenTelemetry RPC conventions), a child of the client's W3C
 * traceparent; upstream attempts made while it runs become its children.
 */
export function tracingInterceptor(tracer: Tracer): Interceptor {
  return (next) => async (req) => {
    const parent = extractFromHeaders(req.header);
    const protocol = rpcProtocolOf(req.header.get("content-type"));
    const span = tracer.startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": protocol === "connect" ? "connect_rpc" : "grpc",
          "rpc.service": req.service.typeName,
          "rpc.method": req.method.name,
          "gateway.protocol": protocol,
        },
      },
      parent,
    );
    let res;
    try {
      res = await context.with(trace.setSpan(parent, span), () => next(req));
    } catch (error) {
      const e = ConnectError.from(error);
      endSpan(span, e.code, e.rawMessage);
      throw error;
    }
    if (!res.stream) {
      endSpan(span, 0);
      return res;
    }
    return { ...res, message: endWhenDone(res.message, span) };
  };
}

async function* endWhenDone<T>(messages: AsyncIterable<T>, span: Parameters<typeof endSpan>[0]): AsyncGenerator<T> {
  let code: number = Code.Canceled;
  let message: string | undefined = "stream abandoned";
  try {
    yield* messages;
    code = 0;
    message = undefined;
  } catch (error) {
    const e = ConnectError.from(error);
    code = e.code;
    message = e.rawMessage;
    throw error;
  } finally {
    endSpan(span, code, message);
  }
}
