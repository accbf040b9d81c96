/**
 * The other upstream protocols a route may name: gRPC over TLS (a grpc-js server with a
 * certificate the test makes) and the Connect protocol (a connect-node server, the one kind of
 * upstream grpc-js cannot play).
 */
import * as http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { curl } from "../support/curl.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import { createGrpcJsClient, grpcServerStream, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "../support/grpc-js-client.js";
import { runProcess } from "../support/run-process.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { UpstreamProcess } from "../support/upstream-fleet.js";

let dir: string;
let image: string;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gateway-upstream-tls-"));
  image = await buildUpstreamImage(dir);
});

afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
  rmSync(dir, { recursive: true, force: true });
});

function grpcJs(gw: StartedGateway): GenericGrpcClient {
  const client = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(EchoService), "EchoService");
  cleanup.push(() => client.close());
  return client;
}

describe("gRPC over TLS upstream", () => {
  let gw: StartedGateway;
  let upstreamAddress: string;
  beforeAll(async () => {
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const openssl = await runProcess(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=upstream.test", "-addext", "subjectAltName=DNS:upstream.test"],
      { timeoutMs: 30_000 },
    );
    expect(openssl.exitCode, openssl.stderr).toBe(0);
    const upstream = await new UpstreamProcess({ id: "tls", tls: { certFile: cert, keyFile: key } }).start();
    cleanup.push(() => upstream.stop());
    upstreamAddress = upstream.address;
    gw = await startGateway({
      upstreams: {
        images: [image],
        routes: [{ match: "test.upstream.v1.EchoService", target: upstream.address, tls: { caFile: cert, serverName: "upstream.test" } }],
      },
    });
    cleanup.push(() => gw.close());
  }, 60_000);

  it("serves curl (Connect JSON) and gRPC (pass-through onto the TLS connection)", async () => {
    const res = await curl(`${gw.url}/test.upstream.v1.EchoService/Echo`, {
      http: "1.1",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "secure" }),
    });
    expect(JSON.parse(res.text)).toMatchObject({ text: "secure", endpoint: "tls" });
    const viaGrpc = await grpcUnary(grpcJs(gw), EchoService.method.echo, { text: "secure" });
    expect(viaGrpc.status.code).toBe(grpc.status.OK);
    expect(viaGrpc.messages[0]).toMatchObject({ text: "secure", endpoint: "tls" });
  });

  it("refuses an upstream whose certificate does not match (unavailable, naming the route)", async () => {
    const wrongName = await startGateway({
      upstreams: {
        images: [image],
        routes: [
          {
            match: "test.upstream.v1.EchoService",
            target: upstreamAddress,
            tls: { caFile: join(dir, "cert.pem"), serverName: "someone-else.test" },
            healthCheck: { enabled: false },
          },
        ],
      },
    });
    cleanup.push(() => wrongName.close());
    const outcome = await grpcUnary(grpcJs(wrongName), EchoService.method.echo, {});
    expect(outcome.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(outcome.status.details).toContain("route test.upstream.v1.EchoService");
  });
});

describe("Connect protocol upstream", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    const server = http2.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(EchoService, {
            echo: (request, context) => ({ text: request.text, endpoint: "connect", deadlineMs: BigInt(context.timeoutMs() ?? -1) }),
            async *count(request) {
              for (let index = 0; index < request.count; index++) yield { index, endpoint: "connect" };
            },
            fail: (request) => {
              throw new ConnectError(request.message, request.code as Code, { "x-t": "tv" });
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as AddressInfo).port;
    gw = await startGateway({
      upstreams: {
        images: [image],
        routes: [{ match: "test.upstream.v1.EchoService", target: `127.0.0.1:${port}`, protocol: "connect", healthCheck: { enabled: false } }],
      },
    });
    cleanup.push(() => gw.close());
  });

  it("gRPC and Connect JSON clients reach a Connect upstream; deadlines and errors cross", async () => {
    const unary = await grpcUnary(grpcJs(gw), EchoService.method.echo, { text: "hi" }, { deadlineMs: 300 });
    expect(unary.status.code).toBe(grpc.status.OK);
    expect(unary.messages[0]).toMatchObject({ text: "hi", endpoint: "connect" });
    expect(Number(unary.messages[0].deadlineMs)).toBeLessThanOrEqual(300);
    expect(Number(unary.messages[0].deadlineMs)).toBeGreaterThan(0);

    const stream = await grpcServerStream(grpcJs(gw), EchoService.method.count, { count: 3 });
    expect(stream.messages.map((m) => m.index)).toEqual([0, 1, 2]);

    const failed = await grpcUnary(grpcJs(gw), EchoService.method.fail, { code: Code.PermissionDenied, message: "no" });
    expect(failed.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(failed.status.details).toBe("no");
    expect(failed.status.metadata.get("x-t")).toEqual(["tv"]);

    const res = await curl(`${gw.url}/test.upstream.v1.EchoService/Echo`, {
      http: "1.1",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "json" }),
    });
    expect(JSON.parse(res.text)).toMatchObject({ text: "json", endpoint: "connect" });
  });
});
