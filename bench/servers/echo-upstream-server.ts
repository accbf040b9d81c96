/**
 * The upstream of the proxy cases: a plain @grpc/grpc-js server of
 * `test.upstream.v1.EchoService/Echo` (proto/test/upstream/v1/echo.proto), a service the gateway
 * does not serve itself, so a gateway route can forward it. The same process answers the
 * direct calls and the gateway's proxied ones.
 *
 * Echo answers with the request's text and payload only (not the metadata, peer or deadline the
 * test upstream reports), so a direct and a proxied reply are the same bytes and the runner's
 * byte-count check holds for both. Messages are (de)serialised with protobuf-es, as in
 * grpc-js-server.ts.
 *
 * With BENCH_UPSTREAM_STREAM_TABLES=1 (the runner's --upstream-stream-tables) its sessions get the
 * gateway's stream tables (upstream-stream-tables.ts); at SIGTERM it says on stderr how many, or
 * that they were off.
 *
 * Usage: node bench/servers/echo-upstream-server.js <port>   (prints "READY <port>" once bound)
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { EchoService, type EchoRequest } from "../../gen/test/upstream/v1/echo_pb.js";
import { UPSTREAM_STREAM_TABLES_ENV, giveStreamTablesToNewHttp2Servers } from "./upstream-stream-tables.js";

// Before the grpc.Server below creates its HTTP/2 server.
const sessionsWithTables = process.env[UPSTREAM_STREAM_TABLES_ENV] === "1" ? giveStreamTablesToNewHttp2Servers() : undefined;

function serializer(schema: DescMessage) {
  return (message: unknown): Buffer => {
    const bytes = toBinary(schema, create(schema, message as never));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

const echo = EchoService.method.echo;
const definition: grpc.ServiceDefinition = {
  echo: {
    path: `/${EchoService.typeName}/${echo.name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: serializer(echo.input),
    requestDeserialize: (bytes: Buffer) => fromBinary(echo.input, bytes),
    responseSerialize: serializer(echo.output),
    responseDeserialize: (bytes: Buffer) => fromBinary(echo.output, bytes),
  },
};
const handlers: grpc.UntypedServiceImplementation = {
  echo: ((call: grpc.ServerUnaryCall<EchoRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    callback(null, { text: call.request.text, payload: call.request.payload });
  }) as grpc.handleUnaryCall<unknown, unknown>,
};

const port = Number(process.argv[2] ?? 0);
const server = new grpc.Server();
server.addService(definition, handlers);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
  if (error) {
    process.stderr.write(`echo upstream: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`READY ${boundPort}\n`);
});

process.on("SIGTERM", () => {
  process.stderr.write(`echo upstream: ${sessionsWithTables ? `stream tables on ${sessionsWithTables()} sessions` : "stream tables off"}\n`);
  server.forceShutdown();
  process.exit(0);
});
