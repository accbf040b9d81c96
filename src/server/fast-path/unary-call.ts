import type { IncomingHttpHeaders } from "node:http";
import {
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { create, isMessage, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import { NodeHeadersView } from "./node-headers-view.js";

/** Response headers and trailers of one call, created only if somebody sets one. */
export class ResponseMetadata {
  private headerValue: Headers | undefined;
  private trailerValue: Headers | undefined;

  get header(): Headers {
    return (this.headerValue ??= new Headers());
  }

  get trailer(): Headers {
    return (this.trailerValue ??= new Headers());
  }

  /** The headers if any were created, without creating them. */
  peekHeader(): Headers | undefined {
    return this.headerValue;
  }

  /** The trailers if any were created, without creating them. */
  peekTrailer(): Headers | undefined {
    return this.trailerValue;
  }

  /** Adopt the headers and trailers an interceptor answered with instead of ours. */
  adopt(response: UnaryResponse): void {
    this.headerValue = response.header;
    this.trailerValue = response.trailer;
  }
}

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
  response: ResponseMetadata;
}

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** The output message of a call, and its wire bytes when they were produced inside the chain. */
export interface UnaryCallResult {
  message: MessageShape<DescMessage>;
  bytes: Uint8Array | undefined;
}

/**
 * Run one unary call through the interceptor chain into the implementation, the way
 * connect's own handlers do, but building the request and context lazily: the URL, the
 * abort signal, the request Headers and the response Headers are only created when
 * something reads them.
 *
 * The output is serialized inside the chain, so that a message too large to send is an
 * error the interceptors (the access log among them) see.
 */
export async function invokeUnary(
  spec: UnarySpec,
  interceptors: readonly Interceptor[],
  input: UnaryCallInput,
  message: MessageShape<DescMessage>,
  serialize: (output: MessageShape<DescMessage>) => Uint8Array,
): Promise<UnaryCallResult> {
  const method = spec.method as DescMethodUnary;
  const service = method.parent;
  const metadata = input.response;
  let url: string | undefined;
  let signal: AbortSignal | undefined;
  let header: Headers | undefined;
  let values: ContextValues | undefined;

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

  let ownResponse: UnaryResponse | undefined;
  let serialized: Uint8Array | undefined;
  let serializedMessage: MessageShape<DescMessage> | undefined;
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
      get responseHeader() {
        return metadata.header;
      },
      get responseTrailer() {
        return metadata.trailer;
      },
      get values() {
        return req.contextValues;
      },
    };
    const output = await spec.impl(req.message, context);
    serializedMessage = isMessage(output, method.output) ? output : create(method.output, output);
    serialized = serialize(serializedMessage);
    return (ownResponse = {
      stream: false,
      service,
      method,
      message: serializedMessage,
      get header() {
        return metadata.header;
      },
      get trailer() {
        return metadata.trailer;
      },
    });
  };

  if (interceptors.length === 0) return { message: (await implementation(request)).message, bytes: serialized };
  let next = implementation as (req: UnaryRequest) => Promise<UnaryResponse>;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = interceptors[i](next as never) as unknown as typeof next;
  }
  const response = await next(request);
  if (response !== ownResponse) metadata.adopt(response);
  // An interceptor that swapped the message gets it serialized again, outside the chain.
  return { message: response.message, bytes: response.message === serializedMessage ? serialized : undefined };
}
