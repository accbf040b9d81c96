/**
 * The soak: mixed traffic over every protocol (gRPC, gRPC-web, Connect; HTTP/1.1 and HTTP/2;
 * unary, server, client and bidi streaming) against a gateway in its own process, with faults
 * injected the whole time (abrupt disconnects mid-stream, client cancellations, rapid resets,
 * garbage bytes, lying length prefixes) and calls through an upstream route (pass-through and
 * transcoded, including an upstream that hangs past the client's deadline). Used by bench/soak.ts (`npm run soak`, 2 minutes) and
 * test/reliability/soak.test.ts (20 s in CI).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { create, toBinary } from "@bufbuild/protobuf";
import { GreeterService, GreetStreamRequestSchema } from "../../gen/demo/v1/greeter_pb.js";
import { CalculatorService, SumRequestSchema } from "../../gen/demo/v1/calculator_pb.js";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { UpstreamProcess } from "./upstream-fleet.js";
import { encodeEnvelope } from "./envelope.js";
import { h2Request, grpcStatusOf } from "./hostile-canary.js";
import { startIsolatedGateway, type HostStats } from "./hostile-gateway.js";
import { rawConnect } from "./raw-http.js";

export interface SoakOptions {
  durationMs: number;
  /** Also route test.upstream.v1.EchoService to a grpc-js upstream process and call it (default true). */
  upstream?: boolean;
  /** Concurrent well-behaved callers per kind of call. */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  durationMs: number;
  calls: number;
  /** Errors the call asked for (divide by zero, its own cancellation, a malformed request). */
  expectedErrors: number;
  unexpectedErrors: string[];
  /**
   * Calls the gateway refused (RST_STREAM REFUSED_STREAM) and the caller then made again, once,
   * as RFC 9113 §8.7 allows (the stream was not processed) and gRPC clients do on their own: a
   * stream sent while a GOAWAY was on its way (the gateway closes a connection gracefully before
   * nghttp2's reset limit would cut it). connect-node reports such a stream as an error.
   */
  refusedAndRetried: number;
  faultsInjected: number;
  rssStartBytes: number;
  rssPeakBytes: number;
  rssEndBytes: number;
  heapStartBytes: number;
  heapEndBytes: number;
  /**
   * RSS less the room V8 has committed for the JS heap but not filled (heapTotal − heapUsed),
   * after a full collection and once RSS has stopped falling (IsolatedGateway.quietMemory): what
   * the process holds beyond V8's spare pages. V8 keeps more of those after load when full
   * collections are rare, which says nothing about leaks.
   */
  heldStartBytes: number;
  heldEndBytes: number;
  final: HostStats;
  gatewayAlive: boolean;
}

const MiB = 1024 * 1024;

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const concurrency = options.concurrency ?? 2;
  // Debug level, so the gateway's "http/2 session error" lines explain any connection it drops.
  const env: Record<string, string> = { GATEWAY_HEADERS_TIMEOUT_MS: "2000", HOSTILE_LOG_LEVEL: "debug" };
  let upstream: UpstreamProcess | undefined;
  let configDir: string | undefined;
  if (options.upstream ?? true) {
    upstream = await new UpstreamProcess({ id: "soak" }).start();
    configDir = mkdtempSync(join(tmpdir(), "gateway-soak-"));
    const configFile = join(configDir, "gateway.json");
    writeFileSync(
      configFile,
      JSON.stringify({ upstreams: { routes: [{ match: "test.upstream.v1.EchoService", target: upstream.address, descriptors: "reflection" }] } }),
    );
    env.GATEWAY_CONFIG_FILE = configFile;
  }
  const gw = await startIsolatedGateway(env);
  const baseUrl = gw.url;
  const sessions = [new Http2SessionManager(baseUrl), new Http2SessionManager(baseUrl)];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const greeterGrpc = createClient(GreeterService, createGrpcTransport({ baseUrl, sessionManager: sessions[0] }));
  const calcGrpc = createClient(CalculatorService, createGrpcTransport({ baseUrl, sessionManager: sessions[0] }));
  const calcConnectH2 = createClient(CalculatorService, createConnectTransport({ baseUrl, httpVersion: "2", sessionManager: sessions[1] }));
  const greeterConnectH1 = createClient(GreeterService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } }));
  const greeterWebH1 = createClient(GreeterService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } }));
  const greeterWebH2 = createClient(GreeterService, createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager: sessions[1] }));
  const calcConnectH1 = createClient(CalculatorService, createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, nodeOptions: { agent } }));

  const echoGrpc = createClient(EchoService, createGrpcTransport({ baseUrl, sessionManager: sessions[1] }));
  const echoConnectH1 = createClient(EchoService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } }));
  async function* numbers(n: number) {
    for (let i = 1; i <= n; i++) yield { number: BigInt(i) };
  }
  const t = { timeoutMs: 10_000 };
  /** Each returns normally, or throws; `expected` lists the codes that call may legitimately end with. */
  const kinds: { name: string; expected: Code[]; run: () => Promise<void> }[] = [
    { name: "grpc unary", expected: [], run: async () => void (await greeterGrpc.greet({ name: "soak" }, t)) },
    { name: "connect json h1 unary", expected: [], run: async () => void (await greeterConnectH1.greet({ name: "soak" }, t)) },
    { name: "connect get h1", expected: [], run: async () => void (await createClient(GreeterService, createConnectTransport({ baseUrl, httpVersion: "1.1", useHttpGet: true, nodeOptions: { agent } })).greet({ name: "soak" }, t)) },
    { name: "grpc-web h1 server stream", expected: [], run: async () => {
      let n = 0;
      for await (const _ of greeterWebH1.greetStream({ name: "soak", count: 5 }, t)) n++;
      if (n !== 5) throw new Error(`got ${n} of 5`);
    } },
    { name: "grpc-web h2 unary", expected: [], run: async () => void (await greeterWebH2.greet({ name: "soak" }, t)) },
    { name: "grpc client stream with deadline", expected: [], run: async () => {
      const r = await calcGrpc.sum(numbers(5), t);
      if (r.sum !== 15n) throw new Error(`sum ${r.sum}`);
    } },
    { name: "connect h2 bidi", expected: [], run: async () => {
      let last = 0n;
      for await (const r of calcConnectH2.accumulate(numbers(4), t)) last = r.total;
      if (last !== 10n) throw new Error(`total ${last}`);
    } },
    { name: "connect h1 divide by zero", expected: [Code.InvalidArgument], run: async () => void (await calcConnectH1.divide({ dividend: 1, divisor: 0 }, t)) },
    { name: "grpc cancelled mid-stream by the client", expected: [Code.Canceled], run: async () => {
      const abort = new AbortController();
      let n = 0;
      for await (const _ of greeterGrpc.greetStream({ name: "soak", count: 50, intervalMs: 10 }, { ...t, signal: abort.signal })) if (++n === 3) abort.abort();
    } },
  ];
  if (upstream) {
    kinds.push(
      { name: "upstream grpc unary (pass-through)", expected: [], run: async () => void (await echoGrpc.echo({ text: "soak" }, t)) },
      { name: "upstream connect h1 unary (transcoded)", expected: [], run: async () => void (await echoConnectH1.echo({ text: "soak" }, t)) },
      { name: "upstream grpc server stream", expected: [], run: async () => {
        let n = 0;
        for await (const _ of echoGrpc.count({ count: 5 }, t)) n++;
        if (n !== 5) throw new Error(`got ${n} of 5`);
      } },
      { name: "upstream hangs past the client's deadline", expected: [Code.DeadlineExceeded], run: async () => void (await echoConnectH1.echo({ text: "slow", delayMs: 5_000 }, { timeoutMs: 150 })) },
    );
  }

  const faults: { name: string; run: () => Promise<void> }[] = [
    { name: "h2 connection cut with streams open", run: async () => {
      const s = http2.connect(baseUrl);
      s.on("error", () => undefined);
      for (let i = 0; i < 5; i++) {
        const stream = s.request({ ":method": "POST", ":path": "/demo.v1.GreeterService/GreetStream", "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => undefined);
        stream.end(encodeEnvelope(toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name: "f", count: 100, intervalMs: 5 }))));
        const sum = s.request({ ":method": "POST", ":path": "/demo.v1.CalculatorService/Sum", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "20S" });
        sum.on("error", () => undefined);
        sum.write(encodeEnvelope(toBinary(SumRequestSchema, create(SumRequestSchema, { number: 1n }))));
      }
      await new Promise((r) => setTimeout(r, 30));
      s.destroy();
    } },
    { name: "h2 rapid reset burst", run: async () => {
      const s = http2.connect(baseUrl);
      s.on("error", () => undefined);
      await new Promise((r) => s.once("connect", r));
      for (let i = 0; i < 50 && !s.destroyed; i++) {
        try {
          const stream = s.request({ ":method": "POST", ":path": "/demo.v1.GreeterService/Greet", "content-type": "application/grpc", te: "trailers" }, { endStream: false });
          stream.on("error", () => undefined);
          stream.close(http2.constants.NGHTTP2_CANCEL);
        } catch {
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 20));
      s.close();
      setTimeout(() => s.destroy(), 200).unref();
    } },
    { name: "h1 body cut short", run: async () => {
      const c = await rawConnect(gw.port);
      await c.write('POST /demo.v1.GreeterService/Greet HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"name":');
      c.destroy();
    } },
    { name: "garbage bytes", run: async () => {
      const c = await rawConnect(gw.port);
      await c.write(Buffer.from([0x16, 0x03, 0x01, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]));
      await c.closed(3_000);
    } },
    { name: "lying length prefix", run: async () => {
      const s = http2.connect(baseUrl);
      s.on("error", () => undefined);
      const r = await h2Request(s, { ":path": "/demo.v1.GreeterService/Greet", "content-type": "application/grpc", te: "trailers" }, Buffer.from([0, 0, 0, 1, 0, 1]), 5_000);
      s.close();
      if (grpcStatusOf(r) !== Code.InvalidArgument) throw new Error(`lying prefix answered ${grpcStatusOf(r)} ${r.error ?? ""}`);
    } },
  ];

  // Warm up, then take the memory baseline.
  for (const kind of kinds) await kind.run().catch(() => undefined);
  const atStart = await gw.quietMemory();
  const rssStartBytes = atStart.rssBytes;
  let rssPeakBytes = rssStartBytes;
  const sampler = setInterval(() => void gw.stats().then((s) => (rssPeakBytes = Math.max(rssPeakBytes, s.rssBytes)), () => undefined), 250);

  const report = { calls: 0, expectedErrors: 0, unexpectedErrors: [] as string[], refusedAndRetried: 0, faultsInjected: 0 };
  // Node words it "NGHTTP2_REFUSED_STREAM", connect-node "REFUSED_STREAM (0x7)".
  const refused = (error: unknown) => /REFUSED_STREAM/.test(ConnectError.from(error).message);
  const started = Date.now();
  const until = started + options.durationMs;
  const caller = async (kind: (typeof kinds)[number]) => {
    while (Date.now() < until) {
      report.calls++;
      try {
        await kind.run().catch((error: unknown) => {
          if (!refused(error)) throw error;
          report.refusedAndRetried++;
          return kind.run();
        });
        if (kind.expected.length > 0 && !kind.expected.includes(Code.Canceled)) report.unexpectedErrors.push(`${kind.name}: succeeded but should have failed`);
      } catch (error) {
        const e = ConnectError.from(error);
        if (kind.expected.includes(e.code)) report.expectedErrors++;
        else if (report.unexpectedErrors.length < 50) report.unexpectedErrors.push(`${kind.name}: [${Code[e.code]}] ${e.message}`);
      }
    }
  };
  const injector = async () => {
    let i = 0;
    while (Date.now() < until) {
      const fault = faults[i++ % faults.length];
      try {
        await fault.run();
        report.faultsInjected++;
      } catch (error) {
        if (report.unexpectedErrors.length < 50) report.unexpectedErrors.push(`fault ${fault.name}: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const progress = setInterval(() => log(`soak: ${Math.round((Date.now() - started) / 1000)} s, ${report.calls} calls, ${report.unexpectedErrors.length} unexpected errors, ${report.faultsInjected} faults, peak RSS ${Math.round(rssPeakBytes / MiB)} MiB`), 10_000);
  await Promise.all([...kinds.flatMap((kind) => Array.from({ length: concurrency }, () => caller(kind))), injector()]);
  clearInterval(progress);
  clearInterval(sampler);
  for (const s of sessions) s.abort();
  agent.destroy();
  const final = await gw.settle(10_000);
  const memoryAtEnd = await gw.quietMemory();
  const gatewayAlive = gw.alive();
  await gw.stop();
  await upstream?.stop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
  return { durationMs: Date.now() - started, ...report, rssStartBytes, rssPeakBytes, rssEndBytes: memoryAtEnd.rssBytes, heapStartBytes: atStart.heapUsedBytes, heapEndBytes: memoryAtEnd.heapUsedBytes, heldStartBytes: heldBytes(atStart), heldEndBytes: heldBytes(memoryAtEnd), final, gatewayAlive };
}

/** RSS less V8's committed but unused heap pages (see SoakReport.heldStartBytes). */
function heldBytes(stats: HostStats): number {
  return stats.rssBytes - (stats.heapTotalBytes - stats.heapUsedBytes);
}

/**
 * Every problem with a soak report (empty: it passed). "Back near start", after a full GC: the JS
 * heap within `heapSlackBytes` (the leak signal), and the memory held outside V8's spare heap
 * pages (SoakReport.heldStartBytes) within `heldSlackBytes` (malloc keeps some of the peak's
 * pages, so it gets more room; 20 s soaks measured 14–16 MiB of growth).
 */
export function soakProblems(report: SoakReport, heldSlackBytes = 64 * MiB, heapSlackBytes = 32 * MiB): string[] {
  const problems: string[] = [];
  if (!report.gatewayAlive) problems.push("the gateway process died");
  if (report.unexpectedErrors.length > 0) {
    const why = report.final.sessionErrors.length > 0 ? ` (gateway session errors: ${report.final.sessionErrors.map((e) => JSON.stringify(e.err ?? e)).slice(0, 5).join("; ")})` : "";
    problems.push(`unexpected errors: ${report.unexpectedErrors.join("; ")}${why}`);
  }
  if (report.final.crashes.length > 0) problems.push(`crashes: ${report.final.crashes.join("; ")}`);
  if (report.final.errorLogs.length > 0) problems.push(`error logs: ${report.final.errorLogs.map((e) => JSON.stringify(e)).slice(0, 5).join("; ")}`);
  if (report.final.inFlight !== 0) problems.push(`${report.final.inFlight} calls still in flight`);
  if (report.final.connections !== 0) problems.push(`${report.final.connections} connections still open: ${JSON.stringify(report.final.connectionStates)}`);
  if (report.heldEndBytes - report.heldStartBytes > heldSlackBytes) {
    problems.push(
      `memory held beyond V8's spare heap pages grew from ${Math.round(report.heldStartBytes / MiB)} to ${Math.round(report.heldEndBytes / MiB)} MiB (RSS ${Math.round(report.rssStartBytes / MiB)} to ${Math.round(report.rssEndBytes / MiB)} MiB)`,
    );
  }
  if (report.heapEndBytes - report.heapStartBytes > heapSlackBytes) problems.push(`JS heap grew from ${Math.round(report.heapStartBytes / MiB)} to ${Math.round(report.heapEndBytes / MiB)} MiB`);
  if (report.calls < 100) problems.push(`only ${report.calls} calls`);
  // A refusal comes only from a graceful GOAWAY racing a new call: rare, or the gateway moves clients far too often.
  if (report.refusedAndRetried * 1_000 > report.calls) problems.push(`${report.refusedAndRetried} of ${report.calls} calls were refused (and retried)`);
  return problems;
}
