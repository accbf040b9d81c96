import type { IncomingHttpHeaders } from "node:http";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createDeadlineSignal } from "@connectrpc/connect/protocol";
import { create, isMessage, type DescMessage, type DescMethod, type DescMethodUnary, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { NodeHeadersView } from "./node-headers-view.js";

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

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

/** What the fast path knows about one call before anything runs. */
export interface UnaryCallFacts {
  spec: UnarySpec;
  protocolName: string;
  headers: IncomingHttpHeaders;
  /** The client's deadline, already parsed; undefined when it set none. */
  timeoutMs: number | undefined;
  /** Builds the absolute request URL, only if somebody asks for it. */
  url: () => string;
  /** Registers a listener for the client going away before the call ended. */
  onClientGone: (listener: () => void) => void;
  shutdownSignal: AbortSignal;
}

/**
 * The state of one unary call shared by the request gate, the interceptors and the
 * implementation, as connect's handler context is, but built lazily: the URL, the abort signal
 * (and its deadline timer), the request Headers, the context values and the response Headers
 * only exist once something asks for them.
 */
export class UnaryCall {
  readonly response = new ResponseMetadata();
  private readonly startedAt = Date.now();
  private urlValue: string | undefined;
  private signalValue: AbortSignal | undefined;
  private headerValue: Headers | undefined;
  private valuesValue: ContextValues | undefined;
  private finished = false;
  private cleanup: (() => void) | undefined;

  constructor(private readonly facts: UnaryCallFacts) {}

  get url(): string {
    return (this.urlValue ??= this.facts.url());
  }

  get header(): Headers {
    return (this.headerValue ??= NodeHeadersView.of(this.facts.headers));
  }

  get values(): ContextValues {
    return (this.valuesValue ??= createContextValues());
  }

  get signal(): AbortSignal {
    if (this.signalValue) return this.signalValue;
    const client = new AbortController();
    this.facts.onClientGone(() => {
      if (!this.finished) client.abort(new ConnectError("the client went away", Code.Canceled));
    });
    const signals = [client.signal, this.facts.shutdownSignal];
    const remaining = this.timeoutMs();
    if (remaining !== undefined) {
      const deadline = createDeadlineSignal(remaining);
      this.cleanup = deadline.cleanup;
      signals.push(deadline.signal);
    }
    return (this.signalValue = AbortSignal.any(signals));
  }

  /** Time left before the client's deadline, or undefined without one. */
  timeoutMs(): number | undefined {
    return this.facts.timeoutMs === undefined ? undefined : this.facts.timeoutMs - (Date.now() - this.startedAt);
  }

  /** The HandlerContext the request gate and the implementation see. */
  context(): HandlerContext {
    return new LazyHandlerContext(this, this.facts.spec.method, this.facts.protocolName);
  }

  /** The call is over: stop the deadline timer, and a late disconnect no longer aborts anything. */
  finish(): void {
    this.finished = true;
    this.cleanup?.();
  }
}

/**
 * A HandlerContext whose expensive members come from the call on first use. A class keeps the
 * accessors on its prototype: an object literal with getters would allocate a closure per
 * accessor on every call.
 */
class LazyHandlerContext implements HandlerContext {
  readonly service: DescService;
  readonly requestMethod = "POST";

  constructor(
    private readonly call: UnaryCall,
    readonly method: DescMethod,
    readonly protocolName: string,
  ) {
    this.service = method.parent;
  }

  get url(): string {
    return this.call.url;
  }

  get signal(): AbortSignal {
    return this.call.signal;
  }

  get requestHeader(): Headers {
    return this.call.header;
  }

  get responseHeader(): Headers {
    return this.call.response.header;
  }

  get responseTrailer(): Headers {
    return this.call.response.trailer;
  }

  get values(): ContextValues {
    return this.call.values;
  }

  readonly timeoutMs = (): number | undefined => this.call.timeoutMs();
}

/** The output message of a call, and its wire bytes when they were produced inside the chain. */
export interface UnaryCallResult {
  message: MessageShape<DescMessage>;
  bytes: Uint8Array | undefined;
}

/**
 * Run one unary call through the interceptor chain into the implementation, the way connect's
 * own handlers do. The output is serialized inside the chain, so that a message too large to
 * send is an error the interceptors (the access log among them) see.
 */
export async function invokeUnary(
  call: UnaryCall,
  spec: UnarySpec,
  interceptors: readonly Interceptor[],
  message: MessageShape<DescMessage>,
  serialize: (output: MessageShape<DescMessage>) => Uint8Array,
): Promise<UnaryCallResult> {
  const method = spec.method as DescMethodUnary;
  const service = method.parent;
  const metadata = call.response;

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
      return call.header;
    },
    get contextValues() {
      return call.values;
    },
  };

  let ownResponse: UnaryResponse | undefined;
  let serialized: Uint8Array | undefined;
  let serializedMessage: MessageShape<DescMessage> | undefined;
  const implementation = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const context = call.context();
    // An interceptor may have replaced the request's header, signal or values: honour them.
    const output = await spec.impl(req.message, req === request ? context : contextFor(req, context));
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

/** The context for a request an interceptor replaced: its header, signal and values win. */
function contextFor(req: UnaryRequest, context: HandlerContext): HandlerContext {
  return {
    method: context.method,
    service: req.service,
    requestMethod: req.requestMethod,
    protocolName: context.protocolName,
    url: req.url,
    signal: req.signal,
    timeoutMs: context.timeoutMs,
    requestHeader: req.header,
    responseHeader: context.responseHeader,
    responseTrailer: context.responseTrailer,
    values: req.contextValues,
  };
}
