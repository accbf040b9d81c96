/**
 * An upstream test server: a plain @grpc/grpc-js server (no connect code on the serving side) of
 * test.upstream.v1.EchoService, grpc.health.v1.Health and grpc.reflection.v1.ServerReflection.
 * Tests run it as a child process so it can be killed (SIGKILL) and restarted on the same port.
 *
 * Usage: tsx test/support/upstream-server.ts --id a --host 127.0.0.1 --port 0 [--tls-cert f --tls-key f]
 * Prints "READY <port>" once bound.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { anyPack, AnySchema, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  EchoService,
  FailDetailSchema,
  file_test_upstream_v1_echo,
  type AppendRequest,
  type ChatRequest,
  type CollectRequest,
  type CountRequest,
  type EchoRequest,
  type FailRequest,
  type InspectRequest,
} from "../../gen/test/upstream/v1/echo_pb.js";
import { file_grpc_health_v1_health, Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, type ServerReflectionRequest } from "../../gen/grpc/reflection/v1/reflection_pb.js";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ""), process.argv[i + 1]);
const id = args.get("id") ?? "upstream";
const host = args.get("host") ?? "127.0.0.1";
const port = Number(args.get("port") ?? 0);
/** Extra latency of every Echo on this server: a slow replica for the least-request tests. */
const baseDelayMs = Number(args.get("delay-ms") ?? 0);

// Die with the test runner, even when it is killed without a chance to clean up.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 500).unref();

interface TagRecord {
  calls: number;
  cancelled: number;
  completed: number;
  lastDeadlineMs: number;
  messagesSent: number;
  lastMetadata: Record<string, string>;
  appends: number;
}
const records = new Map<string, TagRecord>();
function record(tag: string): TagRecord {
  let entry = records.get(tag);
  if (!entry) {
    entry = { calls: 0, cancelled: 0, completed: 0, lastDeadlineMs: -1, messagesSent: 0, lastMetadata: {}, appends: 0 };
    records.set(tag, entry);
  }
  return entry;
}

function metadataOf(call: { metadata: grpc.Metadata }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(call.metadata.getMap())) if (typeof value === "string") out[key] = value;
  return out;
}

function deadlineLeftMs(call: { getDeadline(): grpc.Deadline }): number {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : -1;
}

/** Start a call record for a tagged call. */
function track(tag: string, call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline }): TagRecord | undefined {
  if (!tag) return undefined;
  const entry = record(tag);
  entry.calls++;
  entry.lastDeadlineMs = deadlineLeftMs(call);
  entry.lastMetadata = metadataOf(call);
  return entry;
}

function definition(service: DescService): grpc.ServiceDefinition {
  const methods: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    const ser = (schema: DescMessage) => (value: unknown) => Buffer.from(toBinary(schema, create(schema, value as never)));
    const de = (schema: DescMessage) => (bytes: Buffer) => fromBinary(schema, bytes);
    methods[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: ser(method.input),
      requestDeserialize: de(method.input),
      responseSerialize: ser(method.output),
      responseDeserialize: de(method.output),
    };
  }
  return methods;
}

/** google.rpc.Status, encoded by hand: the test must not borrow connect's encoder. */
function statusDetailsBin(code: number, message: string, reason: string): Buffer {
  const detail = anyPack(FailDetailSchema, create(FailDetailSchema, { reason }));
  const writer = new BinaryWriter();
  writer.tag(1, WireType.Varint).int32(code);
  writer.tag(2, WireType.LengthDelimited).string(message);
  writer.tag(3, WireType.LengthDelimited).bytes(toBinary(AnySchema, detail));
  return Buffer.from(writer.finish());
}

const echo: grpc.UntypedServiceImplementation = {
  echo: (async (call: grpc.ServerUnaryCall<EchoRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    const request = call.request;
    const entry = track(request.tag, call);
    const deadlineMs = deadlineLeftMs(call);
    if (request.delayMs + baseDelayMs > 0) await sleep(request.delayMs + baseDelayMs);
    if (entry) entry.completed++;
    callback(null, {
      text: request.text,
      payload: request.payload,
      endpoint: id,
      metadata: metadataOf(call),
      deadlineMs: BigInt(deadlineMs),
      peer: call.getPeer(),
    });
  }) as grpc.handleUnaryCall<unknown, unknown>,

  count: ((call: grpc.ServerWritableStream<CountRequest, unknown>) => {
    const request = call.request;
    const entry = track(request.tag, call);
    let cancelled = false;
    call.on("cancelled", () => {
      cancelled = true;
      if (entry) entry.cancelled++;
    });
    const payload = new Uint8Array(request.payloadSize);
    void (async () => {
      for (let index = 0; index < request.count && !cancelled; index++) {
        if (index > 0 && request.intervalMs > 0) await sleep(request.intervalMs);
        if (cancelled) break;
        const flushed = call.write({ index, endpoint: id, payload });
        if (entry) entry.messagesSent++;
        // Respect backpressure, as a well-behaved server does: the test checks it reaches here.
        if (!flushed) await new Promise<void>((resolve) => { call.once("drain", resolve); call.once("cancelled", resolve); });
      }
      if (cancelled) return;
      if (entry) entry.completed++;
      call.end();
    })();
  }) as grpc.handleServerStreamingCall<unknown, unknown>,

  collect: ((call: grpc.ServerReadableStream<CollectRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    let count = 0;
    let text = "";
    let totalBytes = 0n;
    call.on("data", (request: CollectRequest) => {
      count++;
      text += request.text;
      totalBytes += BigInt(request.payload.length);
    });
    call.on("end", () => callback(null, { count, text, totalBytes, endpoint: id }));
  }) as grpc.handleClientStreamingCall<unknown, unknown>,

  chat: ((call: grpc.ServerDuplexStream<ChatRequest, unknown>) => {
    call.on("data", (request: ChatRequest) => call.write({ text: `echo: ${request.text}`, endpoint: id }));
    call.on("end", () => call.end());
  }) as grpc.handleBidiStreamingCall<unknown, unknown>,

  fail: ((call: grpc.ServerUnaryCall<FailRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    const request = call.request;
    if (Object.keys(request.headers).length > 0) {
      const headers = new grpc.Metadata();
      for (const [key, value] of Object.entries(request.headers)) headers.set(key, value);
      call.sendMetadata(headers);
    }
    const trailers = new grpc.Metadata();
    for (const [key, value] of Object.entries(request.trailers)) trailers.set(key, value);
    if (request.detailReason) trailers.set("grpc-status-details-bin", statusDetailsBin(request.code, request.message, request.detailReason));
    callback({ code: request.code, details: request.message, metadata: trailers } as grpc.ServiceError);
  }) as grpc.handleUnaryCall<unknown, unknown>,

  append: (async (call: grpc.ServerUnaryCall<AppendRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    const entry = record(call.request.tag);
    entry.appends++;
    if (call.request.delayMs > 0) await sleep(call.request.delayMs);
    callback(null, { count: entry.appends, endpoint: id });
  }) as grpc.handleUnaryCall<unknown, unknown>,

  inspect: ((call: grpc.ServerUnaryCall<InspectRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    const entry = record(call.request.tag);
    callback(null, {
      calls: entry.calls,
      cancelled: entry.cancelled,
      completed: entry.completed,
      lastDeadlineMs: BigInt(entry.lastDeadlineMs),
      messagesSent: entry.messagesSent,
      lastMetadata: entry.lastMetadata,
    });
  }) as grpc.handleUnaryCall<unknown, unknown>,
};

const health: grpc.UntypedServiceImplementation = {
  check: ((_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    callback(null, { status: HealthCheckResponse_ServingStatus.SERVING });
  }) as grpc.handleUnaryCall<unknown, unknown>,
};

/** Reflection over the files this server knows, answered from the generated descriptors. */
const files = new Map<string, DescFile>();
function addFile(file: DescFile): void {
  if (files.has(file.proto.name)) return;
  files.set(file.proto.name, file);
  for (const dependency of file.dependencies) addFile(dependency);
}
addFile(file_test_upstream_v1_echo);
addFile(file_grpc_health_v1_health);
const servedServices = [EchoService.typeName, Health.typeName, ServerReflection.typeName];

function withDependencies(file: DescFile, into: DescFile[] = []): DescFile[] {
  if (into.includes(file)) return into;
  into.push(file);
  for (const dependency of file.dependencies) withDependencies(dependency, into);
  return into;
}

const reflection: grpc.UntypedServiceImplementation = {
  serverReflectionInfo: ((call: grpc.ServerDuplexStream<ServerReflectionRequest, unknown>) => {
    call.on("data", (request: ServerReflectionRequest) => {
      const ask = request.messageRequest;
      const answerFiles = (file: DescFile | undefined) =>
        file
          ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file).map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) } }
          : { case: "errorResponse", value: { errorCode: grpc.status.NOT_FOUND, errorMessage: "not found" } };
      let messageResponse: unknown;
      switch (ask.case) {
        case "listServices":
          messageResponse = { case: "listServicesResponse", value: { service: servedServices.map((name) => ({ name })) } };
          break;
        case "fileByFilename":
          messageResponse = answerFiles(files.get(ask.value));
          break;
        case "fileContainingSymbol": {
          const symbol = ask.value;
          const file = [...files.values()].find((f) => f.services.some((s) => s.typeName === symbol || symbol.startsWith(`${s.typeName}.`)) || f.messages.some((m) => m.typeName === symbol));
          messageResponse = answerFiles(file);
          break;
        }
        default:
          messageResponse = { case: "errorResponse", value: { errorCode: grpc.status.UNIMPLEMENTED, errorMessage: "not supported" } };
      }
      call.write({ validHost: request.host, originalRequest: request, messageResponse });
    });
    call.on("end", () => call.end());
  }) as grpc.handleBidiStreamingCall<unknown, unknown>,
};

const server = new grpc.Server({
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
});
server.addService(definition(EchoService), echo);
server.addService(definition(Health), health);
server.addService(definition(ServerReflection), reflection);

const certFile = args.get("tls-cert");
const keyFile = args.get("tls-key");
const credentials =
  certFile && keyFile
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(certFile), private_key: readFileSync(keyFile) }], false)
    : grpc.ServerCredentials.createInsecure();

server.bindAsync(`${host}:${port}`, credentials, (error, boundPort) => {
  if (error) {
    process.stderr.write(`bind failed: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`READY ${boundPort}\n`);
});

process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
