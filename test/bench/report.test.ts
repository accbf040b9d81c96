import { describe, expect, it } from "vitest";
import { addRatios, gatewayBehindPeers } from "../../bench/lib/report.js";
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
