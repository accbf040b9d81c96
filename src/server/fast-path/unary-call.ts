import type { IncomingHttpHeaders } from "node:http";
import {
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { create, isMessage, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import { NodeHeadersView } from "./node-headers-view.js";

/** What the fast path knows about one call before it runs the implementation. */
export interface UnaryCallInput {
  requestMethod: string;
  protocolName: string;
  headers: IncomingHttpHeaders;
  /** Builds the absolute request URL, only if somebody asks for it. */
  url: () => string;
  /** Creates the call's abort signal, only if somebody asks for it. */
  signal: () => AbortSignal;
  /** Response headers and trailers; the implementation may add to them even when it fails. */
  responseHeader: Headers;
  responseTrailer: Headers;
}

/** The outcome of a unary call: the output message plus the headers and trailers to send. */
export interface UnaryCallOutput {
  message: MessageShape<DescMessage>;
  header: Headers;
  trailer: Headers;
}

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/**
 * Run one unary call through the interceptor chain into the implementation, the way
 * connect's own handlers do, but building the request and context lazily: the URL, the
 * abort signal and the request Headers are only created when something reads them.
 */
export function invokeUnary(
  spec: UnarySpec,
  interceptors: readonly Interceptor[],
  input: UnaryCallInput,
  message: MessageShape<DescMessage>,
): Promise<UnaryCallOutput> {
  const method = spec.method as DescMethodUnary;
  const service = method.parent;
  let url: string | undefined;
  let signal: AbortSignal | undefined;
  let header: Headers | undefined;
  let values: ReturnType<typeof createContextValues> | undefined;
  const { responseHeader, responseTrailer } = input;

  const request: UnaryRequest = {
    stream: false,
    message,
    method,
    service,
    requestMethod: input.requestMethod,
    get url() {
      return (url ??= input.url());
    },
    get signal() {
      return (signal ??= input.signal());
    },
    get header() {
      return (header ??= NodeHeadersView.of(input.headers));
    },
    get contextValues() {
      return (values ??= createContextValues());
    },
  };

  const implementation = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const context: HandlerContext = {
      method,
      service: req.service,
      requestMethod: req.requestMethod,
      protocolName: input.protocolName,
      get url() {
        return req.url;
      },
      get signal() {
        return req.signal;
      },
      timeoutMs: () => undefined,
      get requestHeader() {
        return req.header;
      },
      responseHeader,
      responseTrailer,
      get values() {
        return req.contextValues;
      },
    };
    const output = await spec.impl(req.message, context);
    return {
      stream: false,
      service,
      method,
      message: isMessage(output, method.output) ? output : create(method.output, output),
      header: responseHeader,
      trailer: responseTrailer,
    };
  };

  let next = implementation as (req: UnaryRequest) => Promise<UnaryResponse>;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = interceptors[i](next as never) as unknown as typeof next;
  }
  return next(request).then((res) => ({ message: res.message, header: res.header, trailer: res.trailer }));
}
