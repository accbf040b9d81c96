/**
 * The upstream attempts counter's plain numbers (AttemptCounts) and how the registry prints them:
 * the same series, names and labels prom-client's labelled counter printed before.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AttemptCounts, GatewayMetrics } from "../../src/ops/metrics.js";

describe("AttemptCounts", () => {
  it("lists each (route, endpoint, code) once, routes and endpoints in the order first seen, codes in numeric order, and no zero counts", () => {
    const counts = new AttemptCounts();
    counts.add("r1", "10.0.0.1:80", Code.Unavailable);
    counts.add("r1", "10.0.0.2:80", 0);
    counts.add("r1", "10.0.0.1:80", 0);
    counts.add("r1", "10.0.0.1:80", 0);
    counts.add("r2", "10.0.0.3:80", Code.Unknown);
    expect(counts.values()).toEqual([
      { labels: { route: "r1", endpoint: "10.0.0.1:80", grpc_code: "OK" }, value: 2 },
      { labels: { route: "r1", endpoint: "10.0.0.1:80", grpc_code: "Unavailable" }, value: 1 },
      { labels: { route: "r1", endpoint: "10.0.0.2:80", grpc_code: "OK" }, value: 1 },
      { labels: { route: "r2", endpoint: "10.0.0.3:80", grpc_code: "Unknown" }, value: 1 },
    ]);
  });

  it("counts anything that is not a gRPC code as Unknown", () => {
    const counts = new AttemptCounts();
    for (const code of [17, 99, -1, 1.5, Number.NaN]) counts.add("r", "e:1", code);
    expect(counts.values()).toEqual([{ labels: { route: "r", endpoint: "e:1", grpc_code: "Unknown" }, value: 5 }]);
  });
});

describe("gateway_upstream_attempts_total on /metrics", () => {
  const metricLines = (text: string) => text.split("\n").filter((line) => line.includes("gateway_upstream_attempts_total"));

  it("prints only its HELP and TYPE lines before any attempt, and one sample per series after", async () => {
    const metrics = new GatewayMetrics({ enabled: true, runtime: false, buckets: [1] });
    expect(metricLines(await metrics.registry.metrics())).toEqual([
      "# HELP gateway_upstream_attempts_total Attempts sent to an upstream endpoint, by outcome code.",
      "# TYPE gateway_upstream_attempts_total counter",
    ]);
    metrics.upstream.attempt("shop.v1.OrderService", "10.0.0.1:8080", 0);
    metrics.upstream.attempt("shop.v1.OrderService", "10.0.0.1:8080", Code.DeadlineExceeded);
    expect(metricLines(await metrics.registry.metrics()).slice(2)).toEqual([
      'gateway_upstream_attempts_total{route="shop.v1.OrderService",endpoint="10.0.0.1:8080",grpc_code="OK"} 1',
      'gateway_upstream_attempts_total{route="shop.v1.OrderService",endpoint="10.0.0.1:8080",grpc_code="DeadlineExceeded"} 1',
    ]);
  });
});
