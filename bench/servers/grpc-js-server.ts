/**
 * Peer (b): a plain @grpc/grpc-js server of the same services.
 *
 * Messages are (de)serialised with @bufbuild/protobuf's toBinary/fromBinary, and the handlers
 * call the very same implementations as the gateway (src/services, src/ops/health-service),
 * so only the RPC stack differs. Unary and server-streaming methods are served; the demo's
 * client- and bidi-streaming calculator methods are not needed by any benchmark case.
 *
 * Usage: tsx bench/servers/grpc-js-server.ts <port>   (prints "READY <port>" once bound)
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createGreeterService } from "../../src/services/greeter-service.js";
import { createHealthService } from "../../src/ops/health-service.js";
import { HealthStatusRegistry, ServingStatus } from "../../src/ops/health-status.js";

type AnyImpl = Record<string, (request: unknown, context: HandlerContext) => unknown>;

const neverAborted = new AbortController().signal;

function serializer(schema: DescMessage) {
  return (message: unknown): Buffer => {
    const bytes = toBinary(schema, create(schema, message as never));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage) {
  return (bytes: Buffer): unknown => fromBinary(schema, bytes);
}

function toServiceError(error: unknown): grpc.ServiceError {
  const connectError = ConnectError.from(error);
  // Connect's codes are gRPC's codes.
  return Object.assign(new Error(connectError.rawMessage), {
    code: connectError.code as number as grpc.status,
    details: connectError.rawMessage,
    metadata: new grpc.Metadata(),
  });
}

/** A grpc-js service definition and handlers for a protobuf-es service and its Connect-style implementation. */
function adapt(service: DescService, impl: AnyImpl): [grpc.ServiceDefinition, grpc.UntypedServiceImplementation] {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") continue;
    const fn = impl[method.localName].bind(impl);
    const context = (signal: AbortSignal) => ({ service, method, signal, requestMethod: "POST", protocolName: "grpc" }) as unknown as HandlerContext;
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    };
    if (method.methodKind === "unary") {
      const unary: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
        try {
          const result = fn(call.request, context(neverAborted));
          if (result instanceof Promise) result.then((r) => callback(null, r), (e: unknown) => callback(toServiceError(e)));
          else callback(null, result);
        } catch (error) {
          callback(toServiceError(error));
        }
      };
      handlers[method.localName] = unary;
    } else {
      const streaming: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
        const abort = new AbortController();
        call.on("cancelled", () => abort.abort(new ConnectError("cancelled", Code.Canceled)));
        void (async () => {
          try {
            for await (const message of fn(call.request, context(abort.signal)) as AsyncIterable<unknown>) {
              if (abort.signal.aborted) return;
              if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
            }
            call.end();
          } catch (error) {
            if (!abort.signal.aborted) call.destroy(toServiceError(error));
          }
        })();
      };
      handlers[method.localName] = streaming;
    }
  }
  return [definition, handlers];
}

const port = Number(process.argv[2] ?? 0);
const health = new HealthStatusRegistry();
for (const name of ["", GreeterService.typeName, Health.typeName]) health.set(name, ServingStatus.SERVING);

const server = new grpc.Server();
server.addService(...adapt(GreeterService, createGreeterService() as unknown as AnyImpl));
server.addService(...adapt(Health, createHealthService(health) as unknown as AnyImpl));
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
  if (error) {
    process.stderr.write(`grpc-js server: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`READY ${boundPort}\n`);
});

process.on("SIGTERM", () => {
  server.forceShutdown();
  process.exit(0);
});
