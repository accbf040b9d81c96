/**
 * Peer (c): bare connect-node, the stock path: connectNodeAdapter with the same service
 * implementations, default options and no interceptors, on Node's own servers.
 *
 * A cleartext Node http2 server speaks only HTTP/2, so the stock setup needs two ports:
 * http2.createServer for gRPC, gRPC-web and Connect over h2c, http.createServer for Connect
 * over HTTP/1.1. Both share one handler in one process.
 *
 * Usage: tsx bench/servers/connect-node-server.ts <h2Port> <h1Port>   (prints "READY <h2Port> <h1Port>")
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { registerDemoServices } from "../../src/services/demo-services.js";
import { createHealthService } from "../../src/ops/health-service.js";
import { HealthStatusRegistry, ServingStatus } from "../../src/ops/health-status.js";

const h2Port = Number(process.argv[2] ?? 0);
const h1Port = Number(process.argv[3] ?? 0);

const health = new HealthStatusRegistry();
for (const name of ["", GreeterService.typeName, Health.typeName]) health.set(name, ServingStatus.SERVING);

const handler = connectNodeAdapter({
  routes(router: ConnectRouter) {
    registerDemoServices(router);
    router.service(Health, createHealthService(health));
  },
});

const h2 = http2.createServer(handler);
const h1 = http.createServer(handler);

const listen = (server: http.Server | http2.Http2Server, port: number) =>
  new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });

Promise.all([listen(h2, h2Port), listen(h1, h1Port)]).then(
  ([p2, p1]) => process.stdout.write(`READY ${p2} ${p1}\n`),
  (error: Error) => {
    process.stderr.write(`connect-node server: ${error.message}\n`);
    process.exit(1);
  },
);

process.on("SIGTERM", () => process.exit(0));
