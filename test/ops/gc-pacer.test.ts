import * as http2 from "node:http2";
import { afterEach, describe, expect, it, vi } from "vitest";
import { gcStepFor, startGcPacer } from "../../src/ops/gc-pacer.js";
import { GATEWAY_NODE_FLAGS } from "../../bench/lib/proc.js";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway-process.js";
import { encodeEnvelope } from "../support/envelope.js";

const MiB = 1024 * 1024;

describe("the pacing rule", () => {
  it("steps by the configured size, or by a third of what survived when that is larger", () => {
    expect(gcStepFor(12 * MiB, 8 * MiB)).toBe(8 * MiB);
    expect(gcStepFor(24 * MiB, 8 * MiB)).toBe(8 * MiB);
    expect(gcStepFor(90 * MiB, 8 * MiB)).toBe(30 * MiB);
  });

  describe("on a simulated old space", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    /** A pacer (8 MiB steps) on an old space that starts at `start` bytes; a collection leaves `survives`. */
    function simulatedHeap(start: number, survives: number) {
      const heap = { used: start, collections: [] as number[] };
      const collect = () => {
        heap.collections.push(heap.used);
        heap.used = survives;
      };
      return { heap, pacer: startGcPacer({ stepBytes: 8 * MiB, checkIntervalMs: 100, readOldSpaceUsed: () => heap.used, collect }) };
    }

    it("collects once the old space has grown a step past the lowest use since the last collection", () => {
      vi.useFakeTimers();
      const { heap, pacer } = simulatedHeap(20 * MiB, 18 * MiB);
      // A full collection V8 runs by itself lowers the baseline to 16 MiB: the step counts from there.
      heap.used = 16 * MiB;
      vi.advanceTimersByTime(100);
      for (let i = 0; i < 7; i++) {
        heap.used += 1 * MiB;
        vi.advanceTimersByTime(100);
      }
      expect(heap.collections).toEqual([]);
      heap.used += 1 * MiB; // 24 MiB: 8 past 16
      vi.advanceTimersByTime(100);
      expect(heap.collections).toEqual([24 * MiB]);
      expect(pacer.forcedCollections).toBe(1);
      // The next step counts from what survived (18 MiB).
      heap.used = 25 * MiB;
      vi.advanceTimersByTime(100);
      expect(pacer.forcedCollections).toBe(1);
      heap.used = 26 * MiB;
      vi.advanceTimersByTime(100);
      expect(heap.collections).toEqual([24 * MiB, 26 * MiB]);
      pacer.stop();
      heap.used = 100 * MiB;
      vi.advanceTimersByTime(1_000);
      expect(pacer.forcedCollections).toBe(2);
    });

    it("lets a large surviving heap grow by a third of itself before the next collection", () => {
      vi.useFakeTimers();
      const { heap, pacer } = simulatedHeap(90 * MiB, 90 * MiB);
      heap.used = 119 * MiB;
      vi.advanceTimersByTime(100);
      expect(pacer.forcedCollections).toBe(0);
      heap.used = 120 * MiB;
      vi.advanceTimersByTime(100);
      expect(pacer.forcedCollections).toBe(1);
      pacer.stop();
    });

    it("does not keep the process alive", () => {
      const { pacer } = simulatedHeap(0, 0);
      const active = process.getActiveResourcesInfo();
      pacer.stop();
      // An unref'd interval is not listed among the resources that keep the loop alive.
      expect(active.filter((name) => name === "Timeout").length).toBe(process.getActiveResourcesInfo().filter((name) => name === "Timeout").length);
    });
  });
});

/** Full (mark-compact) collections so far, from the gateway's own Prometheus metrics. */
async function fullCollections(gateway: GatewayProcess): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('nodejs_gc_duration_seconds_count{kind="major"}'));
  return line ? Number(line.split(" ").pop()) : 0;
}

/**
 * `calls` gRPC calls over one HTTP/2 connection, 100 at a time, each with 60 custom headers: Node's
 * http2 server turns every header value into a string in V8's old space, the load the pacing is for. Not
 * hostile-canary's h2Request: it resets each stream once answered, and 8,000 resets trip the
 * gateway's rapid-reset cut-off.
 */
async function callWithManyHeaders(url: string, calls: number): Promise<void> {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  const extra: Record<string, string> = {};
  for (let i = 0; i < 60; i++) extra[`x-filler-${i}`] = `value-${i}-${"v".repeat(20)}`;
  const body = encodeEnvelope(new Uint8Array([0x0a, 0x02, 0x67, 0x63])); // GreetRequest{name:"gc"}
  let sent = 0;
  let failed = 0;
  const worker = async () => {
    while (sent < calls) {
      sent++;
      await new Promise<void>((resolve) => {
        const req = session.request({ ":method": "POST", ":path": "/demo.v1.GreeterService/Greet", "content-type": "application/grpc", te: "trailers", ...extra });
        req.on("trailers", (trailers) => {
          if (trailers["grpc-status"] !== "0") failed++;
        });
        req.on("error", () => failed++);
        req.on("close", () => resolve());
        req.resume();
        req.end(body);
      });
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
  session.close();
  if (failed > 0) throw new Error(`${failed} of ${calls} calls failed`);
}

describe("the real gateway process", () => {
  const started: GatewayProcess[] = [];
  afterEach(() => {
    for (const gateway of started.splice(0)) gateway.child.kill("SIGKILL");
  });

  it("forces full collections under load when paced, and not when pacing is off", async () => {
    // On Node's http2 server, which makes the header values old-space strings (the own HTTP/2
    // server's are young ones, and leave the pacer little to do): the load the pacing is for.
    const paced = await startGatewayProcess({ GATEWAY_GC_PACING_STEP_MB: "2", GATEWAY_LEAN_HTTP2: "false" });
    const unpaced = await startGatewayProcess({ GATEWAY_GC_PACING_STEP_MB: "0", GATEWAY_LEAN_HTTP2: "false" });
    started.push(paced, unpaced);
    const before = { paced: await fullCollections(paced), unpaced: await fullCollections(unpaced) };
    await Promise.all([callWithManyHeaders(paced.url, 8_000), callWithManyHeaders(unpaced.url, 8_000)]);
    // The pacer looks every 100 ms: give it a few looks after the load.
    await new Promise((r) => setTimeout(r, 400));
    const forced = (await fullCollections(paced)) - before.paced;
    const natural = (await fullCollections(unpaced)) - before.unpaced;
    // 8,000 calls × 60 header values leave about 25 MiB in the old space. The gateway under tsx
    // keeps about 18 MiB alive, so its step is about 6 MiB (a third of that; gcStepFor).
    expect(forced, `paced: ${forced} full collections, unpaced: ${natural}`).toBeGreaterThanOrEqual(3);
    expect(forced).toBeGreaterThanOrEqual(natural + 2);
    expect(paced.logs.filter((entry) => entry.level === "warn" || entry.level === "error")).toEqual([]);
  }, 60_000);

  it("without node's --expose-gc flag, warns once at start and serves as usual", async () => {
    const gateway = await startGatewayProcess({}, { nodeFlags: GATEWAY_NODE_FLAGS.filter((flag) => flag !== "--expose-gc") });
    started.push(gateway);
    const warnings = gateway.logs.filter((entry) => entry.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ stepMb: 8 });
    expect(String(warnings[0].msg)).toContain("--expose-gc");
    await callWithManyHeaders(gateway.url, 200);
  }, 30_000);
});
