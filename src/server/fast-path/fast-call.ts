import type { IncomingHttpHeaders } from "node:http";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextKey,
  type ContextValues,
  type HandlerContext,
  type MethodImplSpec,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createDeadlineSignal } from "@connectrpc/connect/protocol";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ObservedCall } from "../../interceptors/call-observer.js";
import { requestIdFrom, REQUEST_ID_HEADER } from "../../interceptors/request-id.js";
import { nodeHeaderValue, NodeHeadersView } from "./node-headers-view.js";
import type { WireFormat } from "./wire-formats.js";

/** A unary method as connect's router registered it. */
export type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;
/** A server-streaming method as connect's router registered it. */
export type ServerStreamingSpec = Extract<MethodImplSpec, { kind: "server_streaming" }>;
/** The methods the fast path serves. */
export type FastSpec = UnarySpec | ServerStreamingSpec;

/** A complete unary answer, ready for either HTTP API to write. */
export interface UnaryReply {
  status: number;
  headers: Record<string, string | string[]>;
  body: Uint8Array | undefined;
  /** HTTP trailers (gRPC over HTTP/2 only). */
  trailers: Readonly<Record<string, string | string[]>> | undefined;
}

/**
 * One call on the fast path (unary or server-streaming). It is, at once, the HandlerContext the request gate and the
 * implementation see, the ObservedCall the observers see, and the holder of the request body
 * while it arrives: a single object per call. What is expensive (the URL, the abort signal and
 * its deadline timer, request and response Headers, context values) is built only on first use.
 * Subclasses connect it to the HTTP API that carried the call.
 */
export abstract class FastCall implements HandlerContext, ObservedCall {
  readonly startedAt = performance.now();
  readonly service: DescService;
  readonly method: DescMethod;
  readonly protocol: WireFormat["protocol"];
  readonly requestMethod = "POST";
  /** Request body chunks read so far. */
  readonly chunks: Buffer[] = [];
  received = 0;
  private urlValue: string | undefined;
  private signalValue: AbortSignal | undefined;
  private requestHeaderView: Headers | undefined;
  private valuesValue: ContextValues | undefined;
  private responseHeaderValue: Headers | undefined;
  private responseTrailerValue: Headers | undefined;
  private requestIdValue: string | undefined;
  /** Headers observers asked for, as name, value, name, value… */
  private pendingHeaders: string[] | undefined;
  private error: ConnectError | undefined;
  private finished = false;
  private cleanup: (() => void) | undefined;

  constructor(
    readonly spec: FastSpec,
    readonly format: WireFormat,
    /** Node's parsed request headers. */
    readonly headers: IncomingHttpHeaders,
    private readonly clientTimeoutMs: number | undefined,
    private readonly shutdownSignal: AbortSignal,
  ) {
    this.method = spec.method;
    this.service = spec.method.parent;
    this.protocol = format.protocol;
  }

  /** Send the finished answer in one go. */
  abstract write(reply: UnaryReply): void;
  /** Start a streamed answer: status and headers (gRPC over HTTP/2: trailers will follow). */
  abstract startResponse(status: number, headers: Record<string, string | string[]>, withTrailers: boolean): void;
  /** Write part of a streamed answer; false when the client is not keeping up (wait for drain). */
  abstract writeBody(chunk: Uint8Array): boolean;
  /** Calls back once the client has caught up, or the call is gone. */
  abstract whenDrained(listener: () => void): void;
  /** Finish a streamed answer, with HTTP trailers when it was started with them. */
  abstract endResponse(trailers: Readonly<Record<string, string | string[]>> | undefined): void;
  /** True once the client went away or the answer was cut. */
  abstract isGone(): boolean;
  /** Hand the request over to connect-node, with the bytes read so far. */
  abstract replay(requestEnded: boolean): void;
  /** Something unexpected broke: log it and cut the call. */
  abstract fail(error: unknown): void;
  /** The absolute request URL. */
  protected abstract buildUrl(): string;
  /** Calls back when the client goes away before the call ended. */
  protected abstract onClientGone(listener: () => void): void;

  get protocolName(): string {
    return this.format.protocol;
  }

  get url(): string {
    return (this.urlValue ??= this.buildUrl());
  }

  get requestHeader(): Headers {
    return (this.requestHeaderView ??= NodeHeadersView.of(this.headers));
  }

  get responseHeader(): Headers {
    return (this.responseHeaderValue ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailerValue ??= new Headers());
  }

  get values(): ContextValues {
    return (this.valuesValue ??= createContextValues());
  }

  contextValue<T>(key: ContextKey<T>): T {
    // Reading must not create the values: most calls never set any.
    return this.valuesValue === undefined ? key.defaultValue : this.valuesValue.get(key);
  }

  get signal(): AbortSignal {
    if (this.signalValue) return this.signalValue;
    const client = new AbortController();
    const abort = () => {
      if (!this.finished) client.abort(new ConnectError("the client went away", Code.Canceled));
    };
    // A client already gone will not close again: no event would ever tell us.
    if (this.isGone()) abort();
    else this.onClientGone(abort);
    const signals = [client.signal, this.shutdownSignal];
    const remaining = this.timeoutMs();
    if (remaining !== undefined) {
      const deadline = createDeadlineSignal(remaining);
      this.cleanup = deadline.cleanup;
      signals.push(deadline.signal);
    }
    return (this.signalValue = AbortSignal.any(signals));
  }

  get requestId(): string {
    return (this.requestIdValue ??= requestIdFrom(this.requestHeaderValue(REQUEST_ID_HEADER)));
  }

  /** Whole milliseconds left before the client's deadline (as connect's own context counts them), or undefined without one. */
  timeoutMs(): number | undefined {
    return this.clientTimeoutMs === undefined ? undefined : Math.floor(this.clientTimeoutMs - (performance.now() - this.startedAt));
  }

  requestHeaderValue(name: string): string | null {
    // Read Node's own header object: no Headers copy. Observers only read what the client sent
    // (by lower-case name), so an interceptor writing to the header view does not matter here.
    return nodeHeaderValue(this.headers, name);
  }

  setResponseHeader(name: string, value: string): void {
    if (this.error) this.error.metadata.set(name, value);
    else (this.pendingHeaders ??= []).push(name, value);
  }

  /** The response headers created so far, without creating them. */
  peekResponseHeader(): Headers | undefined {
    return this.responseHeaderValue;
  }

  /** The response trailers created so far, without creating them. */
  peekResponseTrailer(): Headers | undefined {
    return this.responseTrailerValue;
  }

  /** Headers the observers set, as name, value, name, value…; undefined if none. */
  observerHeaders(): readonly string[] | undefined {
    return this.pendingHeaders;
  }

  /** Adopt the headers and trailers an interceptor answered with instead of ours. */
  adoptMetadata(response: UnaryResponse): void {
    this.responseHeaderValue = response.header;
    this.responseTrailerValue = response.trailer;
  }

  /** The call failed: headers observers set (and will set) go into the error's metadata. */
  failWith(error: ConnectError): void {
    this.error = error;
    const pending = this.pendingHeaders;
    if (pending === undefined) return;
    for (let i = 0; i < pending.length; i += 2) error.metadata.set(pending[i], pending[i + 1]);
    this.pendingHeaders = undefined;
  }

  /** The call is over: stop the deadline timer, and a late disconnect no longer aborts anything. */
  finish(): void {
    this.finished = true;
    this.cleanup?.();
  }

  /** The request body as one buffer. */
  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.received);
  }
}

