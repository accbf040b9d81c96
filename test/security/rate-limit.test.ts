/**
 * Rate limiting per identity: a token bucket in memory, and in Redis shared by two gateway
 * processes. Over the limit: resource_exhausted with a retry-after hint.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { MemoryRateLimiter } from "../../src/security/rate-limit.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { connectNodeTransports, type TransportMatrix } from "../support/connect-transports.js";
import { curl } from "../support/curl.js";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway-process.js";
import { redisAvailable, startRedis, type RedisProcess } from "../support/redis.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { API_KEY, CALC_API_KEY, createSecurityFixtures, type SecurityFixtures } from "./fixtures.js";

async function outcome(call: () => Promise<unknown>): Promise<{ code: Code | "ok"; retryAfter?: string | null }> {
  try {
    await call();
    return { code: "ok" };
  } catch (e) {
    const error = ConnectError.from(e);
    return { code: error.code, retryAfter: error.metadata.get("retry-after") };
  }
}

describe("token bucket", () => {
  it("allows a burst, then refills at the configured rate", () => {
    let now = 0;
    const limiter = new MemoryRateLimiter(2, 3, () => now);
    expect([limiter.take("a"), limiter.take("a"), limiter.take("a")]).toEqual([0, 0, 0]);
    expect(limiter.take("a")).toBe(500);
    expect(limiter.take("b")).toBe(0);
    now += 500;
    expect(limiter.take("a")).toBe(0);
    expect(limiter.take("a")).toBe(500);
  });
});

describe("in memory, per identity", () => {
  let gw: StartedGateway;
  let matrix: TransportMatrix;
  let fx: SecurityFixtures | undefined;
  beforeAll(async () => {
    fx = await createSecurityFixtures();
    gw = await startGateway({
      security: {
        apiKeys: { file: fx.apiKeysFile },
        rules: [{ match: "grpc.health.v1.*", access: "public" }],
        defaultAccess: "authenticated",
        rateLimit: { enabled: true, requestsPerSecond: 0.5, burst: 3 },
      },
    });
    matrix = connectNodeTransports(gw.url);
  });
  afterAll(async () => {
    matrix?.close();
    await gw?.close();
    fx?.remove();
  });

  it("over the limit: resource_exhausted with retry-after, on every protocol; another key is unaffected", async () => {
    const names = ["connect over HTTP/1.1, json", "grpc over HTTP/2, binary", "grpc-web over HTTP/2, binary", "connect over HTTP/2, binary"];
    const results = [];
    for (const name of names) {
      const client = createClient(GreeterService, matrix.get(name).transport);
      results.push(await outcome(() => client.greet({ name: "Ada" }, { headers: { "x-api-key": API_KEY } })));
    }
    expect(results.slice(0, 3).map((r) => r.code)).toEqual(["ok", "ok", "ok"]);
    expect(results[3]).toEqual({ code: Code.ResourceExhausted, retryAfter: "2" });
    const other = createClient(GreeterService, matrix.get("grpc over HTTP/2, binary").transport);
    expect((await outcome(() => other.greet({ name: "Ada" }, { headers: { "x-api-key": CALC_API_KEY } }))).code).toBe("ok");
  });

  it("curl: HTTP 429 with a retry-after header", async () => {
    const request = { http: "1.1" as const, headers: { "content-type": "application/json", "x-api-key": CALC_API_KEY }, body: '{"name":"Ada"}' };
    let last;
    for (let i = 0; i < 4; i++) last = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, request);
    expect(last!.status).toBe(429);
    expect(last!.headers["retry-after"]).toBe("2");
    expect(JSON.parse(last!.text).code).toBe("resource_exhausted");
  });

  it("anonymous callers of public methods are limited by IP; refusals are counted in /metrics", async () => {
    // HTTP/1.1: the curl helper repeats HTTP/2 requests curl 7.88 fumbles (exit 92), which would spend extra tokens.
    const body = { http: "1.1" as const, headers: { "content-type": "application/json" }, body: "{}" };
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await curl(`${gw.url}/grpc.health.v1.Health/Check`, body)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const metrics = (await curl(`${gw.url}/metrics`, { http: "1.1" })).text;
    const limited = metrics.match(/^gateway_rate_limited_total\{grpc_service="grpc.health.v1.Health",grpc_method="Check"\} (\d+)$/m);
    expect(Number(limited?.[1])).toBe(1);
    expect(metrics).toMatch(/grpc_server_handled_total\{[^}]*grpc_service="grpc.health.v1.Health"[^}]*grpc_code="ResourceExhausted"[^}]*\} [1-9]/);
  });
});

describe.runIf(redisAvailable())("in Redis, shared by two gateway processes", () => {
  let redis: RedisProcess;
  let gateways: GatewayProcess[] = [];
  let fx: SecurityFixtures | undefined;
  beforeAll(async () => {
    redis = await startRedis();
    fx = await createSecurityFixtures();
    // One token per 5 s: a slow machine cannot refill the bucket during the test.
    const configFile = join(fx.dir, "gateway.yaml");
    writeFileSync(configFile, "security:\n  rateLimit: { requestsPerSecond: 0.2 }\n");
    const env = {
      GATEWAY_CONFIG_FILE: configFile,
      GATEWAY_API_KEYS_FILE: fx.apiKeysFile,
      GATEWAY_RATE_LIMIT: "true",
      GATEWAY_RATE_LIMIT_BURST: "4",
      RATE_LIMIT_REDIS_URL: redis.url,
    };
    gateways = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  }, 60_000);
  afterAll(async () => {
    for (const gw of gateways) {
      gw.child.kill("SIGTERM");
      await gw.exited;
    }
    await redis?.stop();
    fx?.remove();
  });

  it("the bucket is shared: calls alternating between replicas run out together", async () => {
    const clients = gateways.map((gw) => createClient(GreeterService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" })));
    const codes = [];
    for (let i = 0; i < 6; i++) {
      codes.push((await outcome(() => clients[i % 2].greet({ name: "Ada" }, { headers: { "x-api-key": API_KEY } }))).code);
    }
    expect(codes).toEqual(["ok", "ok", "ok", "ok", Code.ResourceExhausted, Code.ResourceExhausted]);
    // Another identity has its own bucket in Redis.
    expect((await outcome(() => clients[1].greet({ name: "Ada" }, { headers: { "x-api-key": CALC_API_KEY } }))).code).toBe("ok");
  });

  it("Redis holds one bucket per identity, named by the identity, never by the credential", async () => {
    const client = new Redis(redis.url);
    try {
      const keys = (await client.keys("gateway:ratelimit:*")).sort();
      expect(keys).toEqual(["gateway:ratelimit:key:calc-bot", "gateway:ratelimit:key:ci-bot"]);
      expect(keys.join()).not.toContain(API_KEY);
      expect(await client.pttl(keys[0])).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });

  it("with Redis gone, calls are let through (availability over limiting) and a warning is logged", async () => {
    await redis.stop();
    const client = createClient(GreeterService, createConnectTransport({ baseUrl: gateways[0].url, httpVersion: "1.1" }));
    expect((await outcome(() => client.greet({ name: "Ada" }, { headers: { "x-api-key": CALC_API_KEY } }))).code).toBe("ok");
    await new Promise((r) => setTimeout(r, 700));
    expect(gateways[0].logs.some((l) => String(l.msg).includes("redis unavailable"))).toBe(true);
  });
});
