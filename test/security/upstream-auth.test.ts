/**
 * The gRPC pass-through must not bypass authentication: with a request gate configured, gRPC
 * calls to a pass-through route take the router's forwarding path, where the gate runs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { inspect, startUpstreams, type UpstreamProcess } from "../support/upstream-fleet.js";
import { API_KEY, createSecurityFixtures, type SecurityFixtures } from "./fixtures.js";

let imageDir: string;
let upstream: UpstreamProcess;
let gw: StartedGateway;
let client: GenericGrpcClient;
let fx: SecurityFixtures | undefined;

beforeAll(async () => {
  imageDir = mkdtempSync(join(tmpdir(), "gateway-image-"));
  const [started, image, created] = await Promise.all([
    startUpstreams([{ id: "a" }]),
    buildUpstreamImage(imageDir),
    createSecurityFixtures(),
  ]);
  upstream = started[0];
  fx = created;
  gw = await startGateway({
    security: { apiKeys: { file: created.apiKeysFile }, defaultAccess: "authenticated" },
    upstreams: {
      images: [image],
      // passthrough is the default for gRPC routes; named here because it is what is under test.
      routes: [{ match: "test.upstream.v1.EchoService", target: upstream.address, passthrough: true, forwardHeaders: ["*"] }],
    },
  });
  client = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(EchoService), "EchoService");
}, 60_000);

afterAll(async () => {
  client?.close();
  await gw?.close();
  await upstream?.stop();
  rmSync(imageDir, { recursive: true, force: true });
  fx?.remove();
});

describe("gRPC to a pass-through route with authentication configured", () => {
  it("without a key: unauthenticated, and the upstream never sees the call", async () => {
    const outcome = await grpcUnary(client, EchoService.method.echo, { text: "hi", tag: "no-key" });
    expect(outcome.status.code).toBe(Code.Unauthenticated);
    expect(outcome.status.details).toBe("unauthenticated");
    expect((await inspect(upstream.address, "no-key")).calls).toBe(0);
  });

  it("with a key: forwarded, and the credential is not passed upstream", async () => {
    const outcome = await grpcUnary(client, EchoService.method.echo, { text: "hi", tag: "with-key" }, { metadata: { "x-api-key": API_KEY } });
    expect(outcome.status.code).toBe(0);
    expect(outcome.messages[0]).toMatchObject({ text: "hi", endpoint: "a" });
    const seen = await inspect(upstream.address, "with-key");
    expect(seen.calls).toBe(1);
    // "*" forwards everything but credentials and per-hop headers (the gateway's peer record).
    expect(seen.lastMetadata["x-api-key"]).toBeUndefined();
    expect(seen.lastMetadata["x-gateway-peer"]).toBeUndefined();
    expect(Object.keys(seen.lastMetadata).length).toBeGreaterThan(0);
  });
});
