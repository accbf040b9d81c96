/**
 * Upstream metrics after real calls through a route with one live and one dead endpoint:
 * attempts per endpoint and code, retries, ejections, circuit-breaker rejections, and the
 * scrape-time endpoint gauges (healthy, ejected, in flight). Pass-through calls count too.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import { curl } from "../support/curl.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { startUpstreams, type UpstreamProcess } from "../support/upstream-fleet.js";

let imageDir: string;
let upstream: UpstreamProcess;
let deadAddress: string;
let gw: StartedGateway;
let client: GenericGrpcClient;

function unusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  imageDir = mkdtempSync(join(tmpdir(), "gateway-image-"));
  const [started, image, port] = await Promise.all([
    startUpstreams([{ id: "a" }]),
    buildUpstreamImage(imageDir),
    unusedPort(),
  ]);
  upstream = started[0];
  deadAddress = `127.0.0.1:${port}`;
  gw = await startGateway({
    upstreams: {
      images: [image],
      routes: [
        {
          match: "test.upstream.v1.EchoService",
          target: [deadAddress, upstream.address],
          retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 },
          outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 60_000 },
          circuitBreaker: { maxConcurrentCalls: 1, maxPendingCalls: 0 },
          healthCheck: { enabled: false },
        },
      ],
    },
  });
  client = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(EchoService), "EchoService");
}, 60_000);

afterAll(async () => {
  client?.close();
  await gw?.close();
  await upstream?.stop();
  rmSync(imageDir, { recursive: true, force: true });
});

const scrape = async () => (await curl(`${gw.url}/metrics`, { http: "1.1" })).text;
const value = (text: string, pattern: RegExp) => Number(text.match(pattern)?.[1] ?? NaN);

describe("upstream metrics", () => {
  it("count attempts per endpoint and code, retries and ejections", async () => {
    for (let i = 0; i < 4; i++) {
      const outcome = await grpcUnary(client, EchoService.method.echo, { text: `call ${i}` });
      expect(outcome.status.code).toBe(0);
    }
    const text = await scrape();
    const route = 'route="test.upstream.v1.EchoService"';
    expect(value(text, new RegExp(`gateway_upstream_attempts_total\\{${route},endpoint="${upstream.address}",grpc_code="OK"\\} (\\d+)`))).toBe(4);
    expect(value(text, new RegExp(`gateway_upstream_attempts_total\\{${route},endpoint="${deadAddress}",grpc_code="Unavailable"\\} (\\d+)`))).toBe(1);
    expect(text).toContain("# TYPE gateway_upstream_attempts_total counter");
    expect(value(text, new RegExp(`gateway_upstream_retries_total\\{${route}\\} (\\d+)`))).toBe(1);
    expect(value(text, new RegExp(`gateway_upstream_ejections_total\\{${route},endpoint="${deadAddress}"\\} (\\d+)`))).toBe(1);
    expect(value(text, new RegExp(`gateway_upstream_endpoint_ejected\\{${route},endpoint="${deadAddress}"\\} (\\d+)`))).toBe(1);
    expect(value(text, new RegExp(`gateway_upstream_endpoint_healthy\\{${route},endpoint="${upstream.address}"\\} (\\d+)`))).toBe(1);
    expect(value(text, new RegExp(`gateway_upstream_endpoint_in_flight\\{${route},endpoint="${upstream.address}"\\} (\\d+)`))).toBe(0);
  });

  it("count circuit-breaker rejections", async () => {
    const [slow, rejected] = await Promise.all([
      grpcUnary(client, EchoService.method.echo, { text: "slow", delayMs: 500 }),
      new Promise((r) => setTimeout(r, 150)).then(() => grpcUnary(client, EchoService.method.echo, { text: "second" })),
    ]);
    expect(slow.status.code).toBe(0);
    expect(rejected.status.code).toBe(Code.Unavailable);
    const text = await scrape();
    expect(value(text, /gateway_upstream_circuit_breaker_rejections_total\{route="test.upstream.v1.EchoService"\} (\d+)/)).toBe(1);
  });
});
