import type { HandlerContext, Interceptor, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { create, isMessage, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import type { FastCall, UnarySpec } from "./fast-call.js";

/** The output message of a call, and its wire bytes when they were produced inside the chain. */
export interface UnaryCallResult {
  message: MessageShape<DescMessage>;
  bytes: Uint8Array | undefined;
}

/**
 * Run one unary call through an interceptor chain into the implementation, the way connect's
 * own handlers do. The output is serialized inside the chain, so that a message too large to
 * send is an error the interceptors see.
 */
export async function invokeUnary(
  call: FastCall,
  interceptors: readonly Interceptor[],
  message: MessageShape<DescMessage>,
  serialize: (output: MessageShape<DescMessage>) => Uint8Array,
): Promise<UnaryCallResult> {
  const spec = call.spec as UnarySpec;
  const method = spec.method as DescMethodUnary;
  const service = method.parent;

  const request: UnaryRequest = {
    stream: false,
    message,
    method,
    service,
    requestMethod: "POST",
    get url() {
      return call.url;
    },
    get signal() {
      return call.signal;
    },
    get header() {
      return call.requestHeader;
    },
    get contextValues() {
      return call.values;
    },
  };

  let ownResponse: UnaryResponse | undefined;
  let serialized: Uint8Array | undefined;
  let serializedMessage: MessageShape<DescMessage> | undefined;
  const implementation = async (req: UnaryRequest): Promise<UnaryResponse> => {
    // An interceptor may have replaced the request's header, signal or values: honour them.
    const output = await spec.impl(req.message, req === request ? call : contextFor(req, call));
    serializedMessage = isMessage(output, method.output) ? output : create(method.output, output);
    serialized = serialize(serializedMessage);
    return (ownResponse = {
      stream: false,
      service,
      method,
      message: serializedMessage,
      get header() {
        return call.responseHeader;
      },
      get trailer() {
        return call.responseTrailer;
      },
    });
  };

  let next = implementation as (req: UnaryRequest) => Promise<UnaryResponse>;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = interceptors[i](next as never) as unknown as typeof next;
  }
  const response = await next(request);
  if (response !== ownResponse) call.adoptMetadata(response);
  // An interceptor that swapped the message gets it serialized again, outside the chain.
  return { message: response.message, bytes: response.message === serializedMessage ? serialized : undefined };
}

/** The context for a request an interceptor replaced: its header, signal and values win. */
function contextFor(req: UnaryRequest, context: HandlerContext): HandlerContext {
  return {
    method: context.method,
    service: req.service,
    requestMethod: req.requestMethod,
    protocolName: context.protocolName,
    url: req.url,
    signal: req.signal,
    timeoutMs: () => context.timeoutMs(),
    requestHeader: req.header,
    responseHeader: context.responseHeader,
    responseTrailer: context.responseTrailer,
    values: req.contextValues,
  };
}
