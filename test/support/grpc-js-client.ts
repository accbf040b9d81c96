import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";

/**
 * @grpc/grpc-js as an independent gRPC client: the service definition is built from the
 * generated descriptors (paths, streaming flags) with @bufbuild/protobuf doing the
 * (de)serialisation, so no second code generator is involved.
 */

type MethodKind = DescMethod["methodKind"];

/** A grpc-js method definition for an arbitrary path (also paths the server does not serve). */
export function grpcMethodDefinition<I extends DescMessage, O extends DescMessage>(
  path: string,
  input: I,
  output: O,
  kind: MethodKind,
): grpc.MethodDefinition<MessageInitShape<I>, MessageShape<O>> {
  return {
    path,
    requestStream: kind === "client_streaming" || kind === "bidi_streaming",
    responseStream: kind === "server_streaming" || kind === "bidi_streaming",
    requestSerialize: (value) => Buffer.from(toBinary(input, create(input, value))),
    requestDeserialize: (bytes) => fromBinary(input, bytes) as MessageInitShape<I>,
    responseSerialize: (value) => Buffer.from(toBinary(output, value)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}

/** The grpc-js service definition of a generated service, keyed by the methods' local names. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = grpcMethodDefinition(
      `/${service.typeName}/${method.name}`,
      method.input,
      method.output,
      method.methodKind,
    ) as grpc.MethodDefinition<unknown, unknown>;
  }
  return definition;
}

/** A client built by grpc-js's makeGenericClientConstructor: methods are looked up by name. */
export type GenericGrpcClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** Create a plaintext (h2c) grpc-js client for `definition` at host:port. */
export function createGrpcJsClient(address: string, definition: grpc.ServiceDefinition, serviceName: string): GenericGrpcClient {
  const Client = grpc.makeGenericClientConstructor(definition, serviceName);
  return new Client(address, grpc.credentials.createInsecure()) as unknown as GenericGrpcClient;
}

export interface GrpcCallOptions {
  /** Sets the call's deadline this many milliseconds from now (sent as grpc-timeout). */
  deadlineMs?: number;
  metadata?: Record<string, string>;
  /**
   * Client-side guard: cancel the call (status CANCELLED) if it is still running after this
   * long, without sending any deadline to the server. Defaults to 10 s, so a hang fails fast.
   */
  guardMs?: number;
}

/** Everything a finished call produced; calls never reject, so tests assert on codes directly. */
export interface GrpcOutcome<T> {
  messages: T[];
  /** The final status (code, details, trailers). */
  status: grpc.StatusObject;
  /** Response headers, when the server sent any before the status. */
  headers?: grpc.Metadata;
  /** The error grpc-js surfaced for a non-OK status. */
  error?: grpc.ServiceError;
  durationMs: number;
}

function callArgs(options: GrpcCallOptions): [grpc.Metadata, grpc.CallOptions] {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
  const callOptions: grpc.CallOptions = {};
  if (options.deadlineMs !== undefined) callOptions.deadline = Date.now() + options.deadlineMs;
  return [metadata, callOptions];
}

type AnyCall = grpc.ClientUnaryCall | grpc.ClientReadableStream<unknown> | grpc.ClientWritableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>;

/** Wire the events every call kind shares and resolve once the status arrived. */
function observe<T>(
  call: AnyCall,
  options: GrpcCallOptions,
  messages: T[],
  startedAt: number,
  responseCallback?: { settled: Promise<grpc.ServiceError | undefined> },
): Promise<GrpcOutcome<T>> {
  const guard = setTimeout(() => call.cancel(), options.guardMs ?? 10_000);
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let error: grpc.ServiceError | undefined;
    const events = call as unknown as NodeJS.EventEmitter;
    events.on("metadata", (m: grpc.Metadata) => (headers = m));
    events.on("error", (e: grpc.ServiceError) => (error = e));
    events.on("status", (status: grpc.StatusObject) => {
      // Let events queued behind the status (late data, 'end') run first.
      clearTimeout(guard);
      setImmediate(async () => {
        const callbackError = responseCallback ? await responseCallback.settled : undefined;
        resolve({ messages, status, headers, error: error ?? callbackError, durationMs: performance.now() - startedAt });
      });
    });
  });
}

export function grpcUnary<I extends DescMessage, O extends DescMessage>(
  client: GenericGrpcClient,
  method: DescMethod & { input: I; output: O },
  request: MessageInitShape<I>,
  options: GrpcCallOptions = {},
): Promise<GrpcOutcome<MessageShape<O>>> {
  const startedAt = performance.now();
  const messages: MessageShape<O>[] = [];
  let settle!: (e: grpc.ServiceError | undefined) => void;
  const settled = new Promise<grpc.ServiceError | undefined>((r) => (settle = r));
  const call = client[method.localName](request, ...callArgs(options), (err: grpc.ServiceError | null, value?: MessageShape<O>) => {
    if (value !== undefined) messages.push(value);
    settle(err ?? undefined);
  }) as grpc.ClientUnaryCall;
  return observe(call, options, messages, startedAt, { settled });
}

export function grpcServerStream<I extends DescMessage, O extends DescMessage>(
  client: GenericGrpcClient,
  method: DescMethod & { input: I; output: O },
  request: MessageInitShape<I>,
  options: GrpcCallOptions = {},
): Promise<GrpcOutcome<MessageShape<O>>> {
  const startedAt = performance.now();
  const messages: MessageShape<O>[] = [];
  const call = client[method.localName](request, ...callArgs(options)) as grpc.ClientReadableStream<MessageShape<O>>;
  call.on("data", (m: MessageShape<O>) => messages.push(m));
  return observe(call, options, messages, startedAt);
}

export function grpcClientStream<I extends DescMessage, O extends DescMessage>(
  client: GenericGrpcClient,
  method: DescMethod & { input: I; output: O },
  requests: readonly MessageInitShape<I>[],
  options: GrpcCallOptions = {},
): Promise<GrpcOutcome<MessageShape<O>>> {
  const startedAt = performance.now();
  const messages: MessageShape<O>[] = [];
  let settle!: (e: grpc.ServiceError | undefined) => void;
  const settled = new Promise<grpc.ServiceError | undefined>((r) => (settle = r));
  const call = client[method.localName](...callArgs(options), (err: grpc.ServiceError | null, value?: MessageShape<O>) => {
    if (value !== undefined) messages.push(value);
    settle(err ?? undefined);
  }) as grpc.ClientWritableStream<MessageInitShape<I>>;
  const outcome = observe(call, options, messages, startedAt, { settled });
  for (const request of requests) call.write(request);
  call.end();
  return outcome;
}

/**
 * A bidirectional call in lock step: each request is written only after the response to the
 * previous one arrived, which only a full-duplex exchange can complete.
 */
export function grpcBidiLockStep<I extends DescMessage, O extends DescMessage>(
  client: GenericGrpcClient,
  method: DescMethod & { input: I; output: O },
  requests: readonly MessageInitShape<I>[],
  options: GrpcCallOptions = {},
): Promise<GrpcOutcome<MessageShape<O>>> {
  const startedAt = performance.now();
  const messages: MessageShape<O>[] = [];
  const call = client[method.localName](...callArgs(options)) as grpc.ClientDuplexStream<MessageInitShape<I>, MessageShape<O>>;
  const outcome = observe(call, options, messages, startedAt);
  let next = 0;
  const writeNext = () => {
    if (next < requests.length) call.write(requests[next++]);
    else call.end();
  };
  call.on("data", (m: MessageShape<O>) => {
    messages.push(m);
    writeNext();
  });
  writeNext();
  return outcome;
}
