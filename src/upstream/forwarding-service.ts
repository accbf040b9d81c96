import { Code, ConnectError, type HandlerContext, type ServiceImpl, type Transport } from "@connectrpc/connect";
import type { DescMessage, DescMethodStreaming, DescMethodUnary, DescService, MessageShape } from "@bufbuild/protobuf";
import { upstreamTimeoutMs } from "./deadline.js";
import { relayResponseMetadata, type HeaderPolicy } from "./header-policy.js";
import { ReplayableInput } from "./upstream-transport.js";

export interface ForwardingOptions {
  transport: Transport;
  headers: HeaderPolicy;
  /** The route's longest upstream call; 0 means no limit. */
  maxTimeoutMs: number;
}

type AnyMessage = MessageShape<DescMessage>;
type AnyImpl = (input: never, context: HandlerContext) => unknown;

/**
 * An implementation of `service` that forwards every call upstream through `transport`. It is
 * registered on the router like a local service, so every inbound protocol (Connect JSON or
 * binary, gRPC-web, gRPC), the interceptors, the fast path and error serialisation apply to
 * routed services unchanged. Streams are passed along as async iterables, pulled one message at
 * a time on both sides, so a slow reader slows the writer instead of filling the gateway's memory.
 */
export function createForwardingService(service: DescService, options: ForwardingOptions): ServiceImpl<DescService> {
  const implementation: Record<string, AnyImpl> = {};
  for (const method of service.methods) {
    switch (method.methodKind) {
      case "unary":
        implementation[method.localName] = forwardUnary(method as DescMethodUnary, options) as AnyImpl;
        break;
      case "server_streaming":
        implementation[method.localName] = forwardServerStream(method as DescMethodStreaming, options) as AnyImpl;
        break;
      case "client_streaming":
        implementation[method.localName] = forwardClientStream(method as DescMethodStreaming, options) as AnyImpl;
        break;
      case "bidi_streaming":
        implementation[method.localName] = forwardBidiStream(method as DescMethodStreaming, options) as AnyImpl;
        break;
    }
  }
  return implementation as ServiceImpl<DescService>;
}

function forwardUnary(method: DescMethodUnary, options: ForwardingOptions) {
  return async (request: AnyMessage, context: HandlerContext) => {
    try {
      const response = await options.transport.unary(
        method,
        context.signal,
        upstreamTimeoutMs(context.timeoutMs(), options.maxTimeoutMs),
        options.headers.forwardFrom(context.requestHeader),
        request,
      );
      relayResponseMetadata(response.header, context.responseHeader);
      relayResponseMetadata(response.trailer, context.responseTrailer);
      return response.message;
    } catch (error) {
      throw relayableError(error);
    }
  };
}

function forwardServerStream(method: DescMethodStreaming, options: ForwardingOptions) {
  return (request: AnyMessage, context: HandlerContext) =>
    forwardStream(method, options, new ReplayableInput([request]), context);
}

function forwardBidiStream(method: DescMethodStreaming, options: ForwardingOptions) {
  return (requests: AsyncIterable<AnyMessage>, context: HandlerContext) => forwardStream(method, options, requests, context);
}

function forwardClientStream(method: DescMethodStreaming, options: ForwardingOptions) {
  return async (requests: AsyncIterable<AnyMessage>, context: HandlerContext) => {
    let result: AnyMessage | undefined;
    for await (const message of forwardStream(method, options, requests, context)) {
      if (result !== undefined) throw new ConnectError("protocol error: upstream sent more than one response message", Code.Unimplemented);
      result = message;
    }
    if (result === undefined) throw new ConnectError("protocol error: upstream sent no response message", Code.Unimplemented);
    return result;
  };
}

async function* forwardStream(
  method: DescMethodStreaming,
  options: ForwardingOptions,
  requests: AsyncIterable<AnyMessage>,
  context: HandlerContext,
): AsyncGenerator<AnyMessage> {
  try {
    const response = await options.transport.stream(
      method,
      context.signal,
      upstreamTimeoutMs(context.timeoutMs(), options.maxTimeoutMs),
      options.headers.forwardFrom(context.requestHeader),
      requests,
    );
    relayResponseMetadata(response.header, context.responseHeader);
    yield* response.message;
    relayResponseMetadata(response.trailer, context.responseTrailer);
  } catch (error) {
    throw relayableError(error);
  }
}

/**
 * The upstream's error as this gateway's own: same code, message and details, with the upstream's
 * response headers and trailers as metadata. connect serialises a status parsed off the wire
 * without its metadata, so the error is rebuilt; the original stays as the cause.
 */
function relayableError(reason: unknown): ConnectError {
  const error = ConnectError.from(reason);
  if (!error.isWireError) return error;
  const metadata = new Headers();
  relayResponseMetadata(error.metadata, metadata);
  const relayed = new ConnectError(error.rawMessage, error.code, metadata, undefined, error);
  relayed.details = error.details;
  return relayed;
}
