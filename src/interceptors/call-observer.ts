import { Code, ConnectError, type ContextKey, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { requestIdFrom } from "./request-id.js";
import { rpcProtocolOf, type RpcProtocol } from "./rpc-protocol.js";
import { observeStream } from "./stream-outcome.js";

/** What a call observer can see of one call, on either path (fast path or connect-node). */
export interface ObservedCall {
  readonly method: DescMethod;
  readonly protocol: RpcProtocol;
  /** The HTTP method that carried the call ("POST", or "GET" for Connect's side-effect-free unary calls). */
  readonly requestMethod: string;
  /** The client's x-request-id if it is sane, otherwise a new id; the same value every time it is read. */
  readonly requestId: string;
  /** performance.now() when the call started. */
  readonly startedAt: number;
  /** A context value (as the request gate set it), or the key's default. */
  contextValue<T>(key: ContextKey<T>): T;
  /** One request header by lower-case name (comma-joined if repeated), or null. */
  requestHeaderValue(name: string): string | null;
  /** A header for the response: in the response headers on success, in the error's metadata on failure. */
  setResponseHeader(name: string, value: string): void;
}

/**
 * A cross-cutting concern that only watches calls (logs, metrics, the request id): it cannot
 * change messages or outcomes, so the fast path can run it without connect's per-call
 * request/response objects and promise chain. On connect-node's path the same observer runs
 * inside an ordinary interceptor (observersInterceptor), so one implementation serves both paths.
 */
export interface CallObserver {
  /** The call was accepted and is about to run; response headers may be set here. */
  callStarted?(call: ObservedCall): void;
  /** A request message arrived (once for unary calls). */
  messageReceived?(call: ObservedCall): void;
  /** A response message was sent (once for a successful unary call). */
  messageSent?(call: ObservedCall): void;
  /** The call is over: error is undefined on success. */
  callEnded?(call: ObservedCall, error: ConnectError | undefined): void;
}

/** The error a failed call reports, as the client will see it: anything but a ConnectError is an internal error. */
export function asCallError(cause: unknown): ConnectError {
  // The message of an unexpected error must not reach the client (or the log's code field as "unknown").
  return cause instanceof ConnectError ? cause : new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
}

const OBSERVERS = Symbol("call observers");

/** An interceptor that runs observers; the fast path finds them on it and runs them without the chain. */
export type ObserverInterceptor = Interceptor & { readonly [OBSERVERS]: readonly CallObserver[] };

/** The observers an interceptor made by observersInterceptor runs, undefined for any other interceptor. */
export function observersOf(interceptor: Interceptor): readonly CallObserver[] | undefined {
  return (interceptor as Partial<ObserverInterceptor>)[OBSERVERS];
}

/** Run observers as one Connect interceptor, for every call shape. */
export function observersInterceptor(observers: readonly CallObserver[]): ObserverInterceptor {
  const interceptor: Interceptor = (next) => async (req) => {
    const call = new InterceptedCall(req);
    notifyStarted(observers, call);
    if (req.stream) {
      req = { ...req, message: countReceived(req.message, observers, call) };
    } else {
      notifyReceived(observers, call);
    }
    let res;
    try {
      res = await next(req);
    } catch (cause) {
      const error = asCallError(cause);
      call.fail(error);
      notifyEnded(observers, call, error);
      throw error;
    }
    call.applyHeaders(res.header);
    if (!res.stream) {
      notifySent(observers, call);
      notifyEnded(observers, call, undefined);
      return res;
    }
    return {
      ...res,
      message: observeStream(
        res.message,
        (cause) => notifyEnded(observers, call, cause === undefined ? undefined : asCallError(cause)),
        () => notifySent(observers, call),
      ),
    };
  };
  return Object.assign(interceptor, { [OBSERVERS]: observers });
}

/** Tell every observer a call started. */
export function notifyStarted(observers: readonly CallObserver[], call: ObservedCall): void {
  for (const observer of observers) observer.callStarted?.(call);
}

/** Tell every observer a request message arrived. */
export function notifyReceived(observers: readonly CallObserver[], call: ObservedCall): void {
  for (const observer of observers) observer.messageReceived?.(call);
}

/** Tell every observer a response message went out. */
export function notifySent(observers: readonly CallObserver[], call: ObservedCall): void {
  for (const observer of observers) observer.messageSent?.(call);
}

/** Tell every observer a call ended. */
export function notifyEnded(observers: readonly CallObserver[], call: ObservedCall, error: ConnectError | undefined): void {
  for (const observer of observers) observer.callEnded?.(call, error);
}

async function* countReceived<T>(messages: AsyncIterable<T>, observers: readonly CallObserver[], call: ObservedCall): AsyncGenerator<T> {
  for await (const message of messages) {
    notifyReceived(observers, call);
    yield message;
  }
}

/** An ObservedCall over connect's request object, for calls served by connect-node. */
class InterceptedCall implements ObservedCall {
  readonly startedAt = performance.now();
  readonly method: DescMethod;
  readonly protocol: RpcProtocol;
  readonly requestMethod: string;
  private requestIdValue: string | undefined;
  private pendingHeaders: string[] | undefined;
  private error: ConnectError | undefined;

  constructor(private readonly req: UnaryRequest | StreamRequest) {
    this.method = req.method;
    this.requestMethod = req.requestMethod;
    this.protocol = rpcProtocolOf(req.header.get("content-type"));
  }

  get requestId(): string {
    return (this.requestIdValue ??= requestIdFrom(this.req.header.get("x-request-id")));
  }

  contextValue<T>(key: ContextKey<T>): T {
    return this.req.contextValues.get(key);
  }

  requestHeaderValue(name: string): string | null {
    return this.req.header.get(name);
  }

  setResponseHeader(name: string, value: string): void {
    if (this.error) this.error.metadata.set(name, value);
    else (this.pendingHeaders ??= []).push(name, value);
  }

  /** The call failed: headers set so far (and from now on) go into the error's metadata. */
  fail(error: ConnectError): void {
    this.error = error;
    this.applyHeaders(error.metadata);
  }

  /** Copy the headers set so far into the response's (or error's) headers. */
  applyHeaders(target: Headers): void {
    const pending = this.pendingHeaders;
    if (pending === undefined) return;
    for (let i = 0; i < pending.length; i += 2) target.set(pending[i], pending[i + 1]);
    this.pendingHeaders = undefined;
  }
}
