import { describe, expect, it } from "vitest";
import { addRatios, evaluateTargets, formatTarget, gatewayBehindPeers } from "../../bench/lib/report.js";
import type { LoadRow } from "../../bench/lib/measure-load.js";

/** A load row with only what the ratios read. */
function row(caseId: string, server: string, rate: number): LoadRow {
  return { case: caseId, server, rate, cpuUsPerOp: null, problems: [] } as unknown as LoadRow;
}

describe("gatewayBehindPeers", () => {
  it("names the gateway's rows under half a peer's rate, and no other", () => {
    const rows = [
      // The 2026-12-07 stream-64k rows on jemalloc: the gateway at 0.28× grpc-js.
      row("stream-64k", "gateway", 991),
      row("stream-64k", "grpc-js", 3_493),
      row("stream-64k", "connect-node", 5_043),
      // A peer far ahead in a row that is not the gateway's is none of its business.
      row("grpc-unary-1x1", "gateway", 5_000),
      row("grpc-unary-1x1", "gateway+log", 2_400),
      row("grpc-unary-1x1", "grpc-js", 5_100),
      row("grpc-unary-1x1", "connect-node", 1_800),
    ];
    addRatios(rows, []);
    const behind = gatewayBehindPeers(rows);
    expect(behind.map((b) => `${b.case} ${b.server} ${b.peer}`)).toEqual([
      "stream-64k gateway grpc-js",
      "stream-64k gateway connect-node",
      "grpc-unary-1x1 gateway+log grpc-js",
    ]);
    expect(behind[0].ratio).toBeCloseTo(991 / 3_493, 5);
  });

  it("names nothing when the gateway keeps up", () => {
    const rows = [row("stream-64k", "gateway", 7_067), row("stream-64k", "grpc-js", 4_159), row("stream-64k", "connect-node", 3_808)];
    addRatios(rows, []);
    expect(gatewayBehindPeers(rows)).toEqual([]);
  });
});

/** A proxy-case row: one value per round (p99 ms, or rate), and the upstream's full collections in each round. */
function proxyRow(caseId: string, server: string, perRound: (number | null)[], upstreamFull: number[]): LoadRow {
  const p99Case = caseId === "proxy-unary-2k-even";
  const upstreamGc = { youngPct: 1, fullPct: 0.4, fullCount: upstreamFull.reduce((n, c) => n + c, 0), longestFullMs: 30 };
  return {
    case: caseId,
    server,
    rate: p99Case ? 2_000 : perRound[0],
    p99Ms: p99Case ? perRound[0] : 1,
    cpuUsPerOp: null,
    problems: [],
    sendingPauses: null,
    // The direct call's server is the upstream: both readings are the same.
    gc: server === "echo-upstream" ? upstreamGc : null,
    upstreamGc,
    rounds: perRound.map((value, i) => ({
      rate: p99Case ? 2_000 : value,
      ops: 6_000,
      cpuUs: 0,
      p50Ms: 0.5,
      p99Ms: p99Case ? value : 1,
      upstreamFullCollections: upstreamFull[i],
    })),
  } as unknown as LoadRow;
}

describe("the proxy targets", () => {
  it("print each pair with the upstream's full collections on either side, and the upstream's GC on every side", () => {
    const rows = [
      proxyRow("proxy-unary-2k-even", "gateway-proxy", [8.5, 3.1, 4.0], [1, 0, 1]),
      proxyRow("proxy-unary-2k-even", "nghttpx-proxy", [2.5, 2.0, 6.0], [0, 1, 1]),
      proxyRow("proxy-unary-2k-even", "echo-upstream", [2.0, 2.2, 4.5], [0, 0, 1]),
    ];
    const target = evaluateTargets(rows).find((t) => t.case === "proxy-unary-2k-even" && !t.reportOnly)!;
    expect(target.roundPairs!.upstreamFullCollections).toEqual([
      [1, 0],
      [0, 0],
      [1, 1],
    ]);
    expect(target.upstreamGc).toEqual({ server: rows[0].upstreamGc, peer: rows[2].upstreamGc });
    const text = formatTarget(target);
    expect(text).toContain("per pair, p99 added in ms (the upstream's full collections in gateway-proxy's round / in the direct call's): +6.50 (1/0), +0.90 (0/0), -0.50 (1/1)");
    expect(text).toContain("per pair, p99 added in ms (the upstream's full collections in nghttpx-proxy's round / in the direct call's): +0.50 (0/0), -0.20 (1/0), +1.50 (1/1)");
    expect(text).toContain(
      "the upstream's garbage collection during each side's rounds: gateway-proxy's 1 % young + 0 % full (2 full, longest 30 ms); nghttpx-proxy's 1 % young + 0 % full (2 full, longest 30 ms); the direct call's 1 % young + 0 % full (1 full, longest 30 ms)",
    );
  });

  it("keep a pair's upstream counts with its value when a round has no p99", () => {
    const rows = [proxyRow("proxy-unary-2k-even", "gateway-proxy", [8.5, null, 4.0], [1, 2, 0]), proxyRow("proxy-unary-2k-even", "echo-upstream", [2.0, 2.2, 4.5], [0, 3, 1])];
    const pairs = evaluateTargets(rows).find((t) => t.case === "proxy-unary-2k-even" && !t.reportOnly)!.roundPairs!;
    expect(pairs.values.map((v) => v.toFixed(2))).toEqual(["6.50", "-0.50"]);
    expect(pairs.upstreamFullCollections).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });

  it("name the rate ratio on the throughput target", () => {
    const rows = [proxyRow("proxy-unary-1x100", "gateway-proxy", [12_000, 13_000], [2, 1]), proxyRow("proxy-unary-1x100", "echo-upstream", [20_000, 20_000], [0, 1])];
    const text = formatTarget(evaluateTargets(rows).find((t) => t.case === "proxy-unary-1x100")!);
    expect(text).toContain("per pair, rate ratio (the upstream's full collections in gateway-proxy's round / in the direct call's): 0.60× (2/0), 0.65× (1/1)");
  });

  it("print no upstream line for a case without an upstream", () => {
    const plain = (server: string, p99Ms: number) =>
      ({ case: "grpc-unary-2k-even", server, rate: 2_000, p99Ms, cpuUsPerOp: null, problems: [], sendingPauses: null, gc: null, rounds: [0, 1].map(() => ({ rate: 2_000, ops: 6_000, cpuUs: 0, p50Ms: 0.4, p99Ms })) }) as unknown as LoadRow;
    const target = evaluateTargets([plain("gateway", 3.2), plain("grpc-js", 4.1)]).find((t) => t.case === "grpc-unary-2k-even")!;
    expect(target.upstreamGc).toBeNull();
    expect(target.roundPairs!.upstreamFullCollections).toBeUndefined();
    expect(formatTarget(target)).not.toContain("upstream");
  });
});
