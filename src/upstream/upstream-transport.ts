import type { ContextValues, StreamResponse, Transport, UnaryResponse } from "@connectrpc/connect";
import type { DescMessage, DescMethod, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { Cluster } from "./cluster.js";
import { grpcUnaryCall } from "./grpc-unary-client.js";
import { upstreamError } from "./upstream-errors.js";
import { withTraceHeaders } from "../ops/tracing.js";

/**
 * A request stream the transport may send more than once: each iteration starts afresh. The
 * forwarding service wraps the single request of a server-streaming call in one, so such a call
 * can be retried on another endpoint; a client's request stream cannot be.
 */
export class ReplayableInput<T> implements AsyncIterable<T> {
  constructor(private readonly messages: readonly T[]) {}

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    yield* this.messages;
  }
}

/** Whether a method may run twice without harm: declared in the proto or listed in the route's config. */
export function isIdempotent(method: DescMethod, configured: ReadonlySet<string>): boolean {
  return (
    method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
    method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
    configured.has(`${method.parent.typeName}/${method.name}`)
  );
}

/**
 * A connect `Transport` over a whole cluster: each call goes to an endpoint chosen by the
 * cluster (balancing, ejection, breaker, retries) and is made there by connect-node's client for
 * the route's protocol, over the endpoint's one shared HTTP/2 connection. Anything that takes a
 * Transport (createClient, the forwarding service) can call a route this way.
 */
export class ClusterTransport implements Transport {
  private readonly idempotentMethods: ReadonlySet<string>;

  /** Unary gRPC calls use the lean client; everything else connect-node's. */
  private readonly rawGrpc: boolean;

  constructor(
    private readonly cluster: Cluster,
    private readonly readMaxBytes: number,
  ) {
    this.idempotentMethods = new Set(cluster.route.retry.idempotentMethods);
    this.rawGrpc = cluster.route.protocol === "grpc";
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
  ): Promise<UnaryResponse<I, O>> {
    const leased = await this.cluster.invoke(
      {
        method: `${method.parent.typeName}/${method.name}`,
        signal,
        timeoutMs,
        idempotent: isIdempotent(method, this.idempotentMethods),
        replayable: true,
      },
      async (endpoint, remainingMs): Promise<UnaryResponse<I, O>> => {
        // Inside the attempt, so the traceparent sent upstream is the attempt's client span.
        const attemptHeader = withTraceHeaders(header);
        if (!this.rawGrpc) return endpoint.transport.unary(method, signal, remainingMs, attemptHeader, input);
        const result = await grpcUnaryCall(endpoint.sessions, {
          method,
          input,
          header: attemptHeader,
          signal,
          timeoutMs: remainingMs,
          readMaxBytes: this.readMaxBytes,
        });
        return { stream: false, service: method.parent, method, ...result };
      },
    );
    leased.finish();
    return leased.value;
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    _contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const leased = await this.cluster.invoke(
      {
        method: `${method.parent.typeName}/${method.name}`,
        signal,
        timeoutMs,
        idempotent: isIdempotent(method, this.idempotentMethods),
        replayable: input instanceof ReplayableInput,
      },
      (endpoint, remainingMs) => endpoint.transport.stream(method, signal, remainingMs, withTraceHeaders(header), input),
    );
    const response = leased.value;
    // The endpoint stays busy (least-request) and the breaker slot held until the stream ends,
    // or until the call is cancelled, should nobody finish reading the stream.
    signal?.addEventListener("abort", () => leased.finish(signal.reason), { once: true });
    // A connection lost mid-stream must reach the client as `unavailable`, like one lost before it.
    const mapError = (reason: unknown) => upstreamError(reason, leased.endpoint.address, signal);
    return { ...response, message: finishWhenDone(response.message, leased.finish, mapError) };
  }
}

async function* finishWhenDone<T>(
  messages: AsyncIterable<T>,
  finish: (error?: unknown) => void,
  mapError: (reason: unknown) => unknown,
): AsyncGenerator<T> {
  let error: unknown;
  try {
    yield* messages;
  } catch (reason) {
    error = mapError(reason);
    throw error;
  } finally {
    finish(error);
  }
}
