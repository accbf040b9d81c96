/** The upstream building blocks on their own: config schema, header policy, deadlines, balancers, budget, breaker. */
import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseConfig, ConfigError } from "../../src/config/load-config.js";
import { LeastRequestBalancer, RoundRobinBalancer } from "../../src/upstream/balancer.js";
import { CircuitBreaker } from "../../src/upstream/circuit-breaker.js";
import { formatGrpcTimeout, parseGrpcTimeout, upstreamTimeoutMs } from "../../src/upstream/deadline.js";
import { matchSpecificity } from "../../src/upstream/descriptors.js";
import { HeaderPolicy, returnsToClient } from "../../src/upstream/header-policy.js";
import { backoffMs, RetryBudget } from "../../src/upstream/retry-budget.js";
import { parseTarget } from "../../src/upstream/target.js";
import type { Endpoint } from "../../src/upstream/endpoint.js";
import { EndpointSessions } from "../../src/upstream/endpoint-sessions.js";
import type * as http2 from "node:http2";

describe("upstreams config", () => {
  it("fills every default from match and target alone", () => {
    const config = parseConfig({ upstreams: { images: ["image.binpb"], routes: [{ match: "shop.v1.*", target: "dns:///shop.ns.svc.cluster.local:50051" }] } });
    const route = config.upstreams.routes[0];
    expect(route).toMatchObject({
      protocol: "grpc",
      descriptors: "image",
      loadBalancing: "round_robin",
      passthrough: true,
      timeoutMs: 0,
      retry: { maxAttempts: 3, budgetRatio: 0.2, minRetriesPerSecond: 10 },
      healthCheck: { enabled: true, intervalMs: 5_000, service: "" },
      outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 10_000 },
      circuitBreaker: { maxConcurrentCalls: 1_000, maxPendingCalls: 100 },
      connection: { maxConnectionAgeMs: 300_000 },
      dns: { refreshIntervalMs: 30_000, servers: [] },
    });
    expect(route.forwardHeaders).toContain("traceparent");
    expect(parseConfig({}).upstreams).toEqual({ images: [], startupTimeoutMs: 10_000, routes: [] });
  });

  it("reports every problem at once", () => {
    let error: ConfigError | undefined;
    try {
      parseConfig({
        upstreams: {
          routes: [
            { match: "not a name", target: "nowhere" },
            { match: "a.B", target: ["10.0.0.1:1", "10.0.0.2"], loadBalancing: "random", forwardHeaders: ["Upper"] },
            { match: "a.B", target: "dns:///svc:80", descriptors: "reflection", tls: { certFile: "c.pem" } },
          ],
        },
      });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = error!.problems.join("\n");
    for (const where of [
      "upstreams.routes.0.match",
      "upstreams.routes.0.target",
      "upstreams.routes.1.target",
      "upstreams.routes.1.loadBalancing",
      "upstreams.routes.1.forwardHeaders.0",
      "upstreams.routes.2.match",
      "upstreams.routes.2.tls",
    ]) {
      expect(text).toContain(where);
    }
    expect(text).toContain("duplicate route for a.B");
    expect(text).toContain("descriptors: image needs at least one file in upstreams.images");
  });
});

describe("targets and matches", () => {
  it("parses dns:///, host:port, lists and IPv6", () => {
    expect(parseTarget("dns:///orders.shop.svc.cluster.local:50051")).toMatchObject({ kind: "dns", host: "orders.shop.svc.cluster.local", port: 50051 });
    expect(parseTarget("dns://8.8.8.8/orders:50051")).toMatchObject({ kind: "dns", host: "orders", port: 50051 });
    expect(parseTarget("dns:///10.1.2.3:7")).toMatchObject({ kind: "static", addresses: [{ host: "10.1.2.3", port: 7 }] });
    expect(parseTarget(["[::1]:50051", "a:1"])).toMatchObject({ kind: "static", addresses: [{ host: "::1", port: 50051 }, { host: "a", port: 1 }] });
  });

  it("prefers the exact service name over the longest package prefix", () => {
    expect(matchSpecificity("shop.v1.Orders", "shop.v1.Orders")).toBeGreaterThan(matchSpecificity("shop.v1.*", "shop.v1.Orders"));
    expect(matchSpecificity("shop.v1.*", "shop.v1.Orders")).toBeGreaterThan(matchSpecificity("shop.*", "shop.v1.Orders"));
    expect(matchSpecificity("shop.*", "shopping.v1.Cart")).toBe(-1);
    expect(matchSpecificity("shop.v1.Orders", "shop.v1.OrdersAdmin")).toBe(-1);
  });
});

describe("header policy", () => {
  it("forwards listed names and prefixes; never hop-by-hop or protocol headers; credentials only when named", () => {
    const policy = new HeaderPolicy(["x-request-id", "x-tenant-*", "authorization"]);
    const forwarded = policy.forwardFrom(
      new Headers({
        "x-request-id": "1",
        "x-tenant-id": "t",
        authorization: "Bearer a",
        cookie: "c",
        connection: "keep-alive",
        te: "trailers",
        "grpc-timeout": "1S",
        "content-type": "application/grpc",
        "x-other": "o",
      }),
    );
    expect(Object.fromEntries(forwarded!.entries())).toEqual({ "x-request-id": "1", "x-tenant-id": "t", authorization: "Bearer a" });
    const everything = new HeaderPolicy(["*"]);
    expect(everything.allows("x-anything")).toBe(true);
    expect(everything.allows("authorization")).toBe(false);
    expect(everything.allows("cookie")).toBe(false);
    expect(everything.allows("transfer-encoding")).toBe(false);
    expect(everything.allows(":authority")).toBe(false);
  });

  it("returns upstream metadata but not what the gateway writes itself", () => {
    expect(returnsToClient("x-trace")).toBe(true);
    expect(returnsToClient("grpc-status")).toBe(false);
    expect(returnsToClient("content-type")).toBe(false);
    expect(returnsToClient("connection")).toBe(false);
  });
});

describe("deadlines", () => {
  it("parses and formats grpc-timeout", () => {
    expect(parseGrpcTimeout("200m")).toBe(200);
    expect(parseGrpcTimeout("2S")).toBe(2000);
    expect(parseGrpcTimeout("1H")).toBe(3_600_000);
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
    expect(() => parseGrpcTimeout("1x")).toThrow(ConnectError);
    expect(formatGrpcTimeout(199.2)).toBe("200m");
    expect(formatGrpcTimeout(0.1)).toBe("1m");
    expect(formatGrpcTimeout(200_000_000)).toBe("200000S");
  });

  it("takes the shorter of the client's deadline and the route's maximum", () => {
    expect(upstreamTimeoutMs(200, 1000)).toBe(200);
    expect(upstreamTimeoutMs(5000, 1000)).toBe(1000);
    expect(upstreamTimeoutMs(undefined, 1000)).toBe(1000);
    expect(upstreamTimeoutMs(undefined, 0)).toBeUndefined();
    expect(() => upstreamTimeoutMs(0, 0)).toThrow(expect.objectContaining({ code: Code.DeadlineExceeded }));
  });
});

describe("balancers", () => {
  const endpoints = (loads: number[]) => loads.map((inFlight, i) => ({ address: `e${i}`, inFlight }) as unknown as Endpoint);

  it("round-robin visits each endpoint in turn", () => {
    const list = endpoints([0, 0, 0]);
    const balancer = new RoundRobinBalancer();
    expect(Array.from({ length: 6 }, () => balancer.pick(list)!.address)).toEqual(["e0", "e1", "e2", "e0", "e1", "e2"]);
    expect(balancer.pick([])).toBeUndefined();
  });

  it("least-request takes the less loaded of two random endpoints", () => {
    const list = endpoints([5, 0, 5]);
    const picks = new Map<string, number>();
    const balancer = new LeastRequestBalancer();
    for (let i = 0; i < 3000; i++) {
      const address = balancer.pick(list)!.address;
      picks.set(address, (picks.get(address) ?? 0) + 1);
    }
    // e1 wins every pair it is in: two pairs of three.
    expect(picks.get("e1")! / 3000).toBeGreaterThan(0.6);
  });
});

describe("retry budget and backoff", () => {
  it("allows ratio × calls plus the minimum per second, over a 10 s window", () => {
    let now = 1_000_000;
    const budget = new RetryBudget(0.2, 1, () => now);
    for (let i = 0; i < 100; i++) budget.recordCall();
    let allowed = 0;
    while (budget.tryRetry()) allowed++;
    expect(allowed).toBe(30); // 100 × 0.2 + 1 × 10
    now += 11_000;
    let later = 0;
    while (budget.tryRetry()) later++;
    expect(later).toBe(10);
  });

  it("backs off exponentially with full jitter", () => {
    const policy = { initialBackoffMs: 10, maxBackoffMs: 100, backoffMultiplier: 2 };
    expect(backoffMs(policy, 1, () => 1)).toBe(10);
    expect(backoffMs(policy, 3, () => 1)).toBe(40);
    expect(backoffMs(policy, 10, () => 1)).toBe(100);
    expect(backoffMs(policy, 3, () => 0)).toBe(0);
  });
});

describe("circuit breaker", () => {
  it("admits maxConcurrent, queues maxPending, refuses the rest at once", async () => {
    const breaker = new CircuitBreaker("r", 2, 1);
    const first = breaker.acquire(undefined) as () => void;
    const second = breaker.acquire(undefined) as () => void;
    const queued = breaker.acquire(undefined);
    expect(queued).toBeInstanceOf(Promise);
    expect(() => breaker.acquire(undefined)).toThrow(/circuit breaker open/);
    first();
    first(); // releasing twice gives back one slot only
    const third = await queued;
    expect(breaker.activeCalls).toBe(2);
    second();
    third();
    expect(breaker.activeCalls).toBe(0);
  });

  it("a waiting call that is cancelled leaves the queue", async () => {
    const breaker = new CircuitBreaker("r", 1, 1);
    breaker.acquire(undefined);
    const controller = new AbortController();
    const waiting = breaker.acquire(controller.signal) as Promise<unknown>;
    controller.abort(new ConnectError("bye", Code.Canceled));
    await expect(waiting).rejects.toMatchObject({ code: Code.Canceled });
    expect(breaker.acquire(undefined)).toBeInstanceOf(Promise);
  });
});

describe("endpoint connection", () => {
  const options = { baseUrl: "http://127.0.0.1:1", connectTimeoutMs: 1000, maxConnectionAgeMs: 0 };
  /** Counts what reaches connect-node's session manager (its keep-alive timer is reset on each). */
  function countNotices(sessions: EndpointSessions): { count: number } {
    const seen = { count: 0 };
    (sessions as unknown as { manager: { notifyResponseByteRead(): void } }).manager.notifyResponseByteRead = () => void seen.count++;
    return seen;
  }
  const stream = {} as http2.ClientHttp2Stream;

  it("passes response-byte notices to the session manager at most once per quarter keep-alive interval", async () => {
    const sessions = new EndpointSessions({ ...options, keepAliveMs: 200 });
    const seen = countNotices(sessions);
    for (let i = 0; i < 100; i++) sessions.notifyResponseByteRead(stream);
    expect(seen.count).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 70));
    sessions.notifyResponseByteRead(stream);
    sessions.notifyResponseByteRead(stream);
    expect(seen.count).toBe(2);
    sessions.abort();
  });

  it("passes none without keep-alive", () => {
    const sessions = new EndpointSessions({ ...options, keepAliveMs: 0 });
    const seen = countNotices(sessions);
    for (let i = 0; i < 10; i++) sessions.notifyResponseByteRead(stream);
    expect(seen.count).toBe(0);
    sessions.abort();
  });
});

describe("circuit breaker with a call's own cancellation (not an AbortSignal)", () => {
  it("a waiting call whose cancellation fires leaves the queue", async () => {
    const breaker = new CircuitBreaker("r", 1, 1);
    breaker.acquire(undefined);
    const listeners: Array<() => void> = [];
    const signal = {
      aborted: false,
      reason: undefined as unknown,
      addEventListener: (_type: "abort", listener: () => void) => void listeners.push(listener),
      removeEventListener: (_type: "abort", listener: () => void) => void listeners.splice(listeners.indexOf(listener), 1),
    };
    const waiting = breaker.acquire(signal) as Promise<unknown>;
    signal.aborted = true;
    signal.reason = new ConnectError("bye", Code.Canceled);
    for (const listener of [...listeners]) listener();
    await expect(waiting).rejects.toMatchObject({ code: Code.Canceled });
    expect(breaker.acquire(undefined)).toBeInstanceOf(Promise);
  });
});
