/**
 * One load case against one server: check a call, warm up, then measured rounds.
 *
 * The runner interleaves the rounds of all servers of a case (A B C A B C ...), so a burst of
 * outside load on the shared two cores hits every server alike; a row reports the median
 * round's rate and the spread between rounds.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LoadCase } from "../cases.js";
import { h2loadArgs, quantile, runH2load, type SendingPauses } from "../load/h2load.js";
import { runWrk } from "../load/wrk.js";
import type { RunningServer } from "../servers/registry.js";
import { cpus } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { WRITE_EVERY_MS, type GcTotals } from "./gc-totals.js";
import { cpuMicros, gcTotals, memoryKiB, resetPeakRss, type OtherCpu } from "./proc.js";
import { replayAndVerify, type VerifiedReply, type WireRequest } from "./wire.js";

const KiB_PER_MiB = 1024;

export interface LoadRow {
  case: string;
  title: string;
  group: string;
  server: string;
  unit: "call" | "msg";
  /** Median over rounds of calls/s or messages/s. */
  rate: number | null;
  /** (max − min) / median of the round rates, in %. */
  spreadPct: number | null;
  /** Over all rounds' calls (h2load), or the median round's (wrk). For streams: per whole stream. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Response body throughput (streaming cases). */
  mbPerSec: number | null;
  /** Server CPU (user+sys, all threads) over all rounds ÷ operations over all rounds. */
  cpuUsPerOp: number | null;
  /** Share of the machine's cores that processes outside the benchmark used during the rounds, in %. */
  otherCpuPct: number | null;
  /** Largest VmHWM of the rounds (reset to the current RSS before each). */
  peakRssMb: number | null;
  rssAfterMb: number | null;
  ops: number;
  elapsedSec: number;
  /** Per round; `upstreamFullCollections` only in the proxy cases (the upstream's full collections during the round). */
  rounds: { rate: number; ops: number; cpuUs: number; p50Ms: number | null; p99Ms: number | null; upstreamFullCollections?: number | null }[];
  /**
   * Fixed-rate cases: the machine stalls h2load saw over all rounds (it sent nothing for 4 ms
   * past its rhythm with a stream free), null otherwise. See load/h2load.ts.
   */
  sendingPauses: SendingPauses | null;
  /**
   * The server's garbage collection during the rounds (servers/gc-meter.ts): young and full
   * collections as shares of the rounds' wall time, in %; null when the server reported none.
   */
  gc: RowGc | null;
  /**
   * The proxy cases: the upstream's garbage collection during this row's rounds, as `gc`. A pause
   * of the upstream delays every call in flight, proxied or direct, so where it falls decides
   * a round's p99 as much as the server does; null outside the proxy cases.
   */
  upstreamGc?: RowGc | null;
  vsGrpcJs: number | null;
  vsConnectNode: number | null;
  /** The peer's CPU µs/op ÷ this row's: above 1 is cheaper per call. Steadier than rates on a busy machine. */
  cpuEfficiencyVsGrpcJs: number | null;
  cpuEfficiencyVsConnectNode: number | null;
  problems: string[];
  command: string;
}

/** A server's GC pauses during one round. */
interface RoundGc {
  youngMs: number;
  fullMs: number;
  fullCount: number;
  longestFullMs: number;
}

/** A row's GC pauses as shares of its rounds' wall time (%), with the full collections among them. */
export interface RowGc {
  youngPct: number;
  fullPct: number;
  fullCount: number;
  longestFullMs: number;
}

/** The request of a case, written where the load tools read it. */
export interface CaseFiles {
  request: WireRequest;
  bodyFile: string;
  luaFile: string;
  logFile: (serverId: string) => string;
}

export async function prepareCase(c: LoadCase, dir: string): Promise<CaseFiles> {
  const request = c.request();
  const files: CaseFiles = {
    request,
    bodyFile: join(dir, `${c.id}.body`),
    luaFile: join(dir, `${c.id}.lua`),
    logFile: (serverId) => join(dir, `${c.id}.${serverId}.log`),
  };
  await writeFile(files.bodyFile, request.body);
  return files;
}

interface Round {
  otherUs: number;
  wallUs: number;
  rate: number;
  ops: number;
  elapsedSec: number;
  cpuUs: number;
  hwmKiB: number | null;
  rssKiB: number;
  latenciesUs?: Float64Array;
  sendingPauses?: SendingPauses;
  /** What the server's GC did during the round (the difference of its totals), if it reports. */
  gc: RoundGc | null;
  /** The same for the upstream of a proxy case (RunningServer.upstreamPid); undefined elsewhere. */
  upstreamGc?: RoundGc | null;
  p50Ms: number | null;
  p99Ms: number | null;
  mbPerSec: number | null;
  problems: string[];
  command: string;
}

/** A server taking part in one case: its checked reply, its rounds and its problems. */
export class LoadSubject {
  private probe: VerifiedReply | undefined;
  private readonly rounds: Round[] = [];
  readonly problems: string[] = [];

  constructor(
    readonly c: LoadCase,
    readonly server: RunningServer,
    private readonly files: CaseFiles,
    private readonly otherCpu: OtherCpu,
  ) {}

  /** False once anything failed: later rounds are skipped. */
  get usable(): boolean {
    return this.problems.length === 0;
  }

  /** Replay the exact request once and check the reply fully (status, grpc-status, messages). */
  async check(when: "before" | "after"): Promise<void> {
    const endpoint = this.server.endpoint(this.c.protocol)!;
    try {
      const reply = await replayAndVerify(endpoint.url, endpoint.httpVersion, this.files.request);
      this.probe ??= reply;
    } catch (error) {
      this.problems.push(`check ${when} load failed: ${(error as Error).message}`);
    }
  }

  async warmUp(seconds: number): Promise<void> {
    if (!this.usable) return;
    try {
      await this.drive(seconds, false);
    } catch (error) {
      this.problems.push(`warm-up: ${(error as Error).message.split("\n")[0]}`);
    }
  }

  async round(seconds: number): Promise<void> {
    if (!this.usable) return;
    const pid = this.server.pid;
    try {
      const hwmReset = resetPeakRss(pid);
      const others = this.otherCpu.start();
      const cpuBefore = cpuMicros(pid);
      const gcBefore = gcTotals(pid);
      const upstreamPid = this.server.upstreamPid;
      const upstreamGcBefore = upstreamPid === undefined || upstreamPid === pid ? null : gcTotals(upstreamPid);
      const result = await this.drive(seconds, true);
      const cpuUs = cpuMicros(pid) - cpuBefore;
      const { otherUs, wallUs } = others();
      // The meter writes its totals every WRITE_EVERY_MS: wait for the round's last collections.
      await sleep(WRITE_EVERY_MS * 1.5);
      const gc = gcDuring(gcBefore, gcTotals(pid));
      // The direct call's server is the upstream: the same reading, so its two lines agree by construction.
      const upstreamGc = upstreamPid === undefined ? undefined : upstreamPid === pid ? gc : gcDuring(upstreamGcBefore, gcTotals(upstreamPid));
      const memory = memoryKiB(pid);
      this.rounds.push({ ...result, cpuUs, otherUs, wallUs, gc, upstreamGc, hwmKiB: hwmReset ? memory.hwm : null, rssKiB: memory.rss });
      this.problems.push(...result.problems.map((p) => `round ${this.rounds.length}: ${p}`));
    } catch (error) {
      this.problems.push(`round ${this.rounds.length + 1}: ${(error as Error).message.split("\n")[0]}`);
    }
  }

  row(): LoadRow {
    const c = this.c;
    const rounds = this.rounds;
    const rates = rounds.map((r) => r.rate).sort((a, b) => a - b);
    const median = (values: number[]) => (values.length === 0 ? NaN : quantile([...values].sort((a, b) => a - b), 0.5));
    const ops = rounds.reduce((n, r) => n + r.ops, 0);
    const cpu = rounds.reduce((n, r) => n + r.cpuUs, 0);
    let p50: number | null = null;
    let p99: number | null = null;
    if (rounds.length > 0 && rounds.every((r) => r.latenciesUs)) {
      const all = new Float64Array(rounds.reduce((n, r) => n + r.latenciesUs!.length, 0));
      let offset = 0;
      for (const r of rounds) {
        all.set(r.latenciesUs!, offset);
        offset += r.latenciesUs!.length;
      }
      all.sort();
      if (all.length > 0) {
        p50 = quantile(all, 0.5) / 1000;
        p99 = quantile(all, 0.99) / 1000;
      }
    } else if (rounds.length > 0) {
      p50 = median(rounds.map((r) => r.p50Ms ?? NaN));
      p99 = median(rounds.map((r) => r.p99Ms ?? NaN));
    }
    const hwms = rounds.map((r) => r.hwmKiB).filter((v): v is number => v !== null);
    const rate = rounds.length > 0 ? median(rates) : null;
    const usable = this.problems.length === 0 && rounds.length > 0;
    return {
      case: c.id,
      title: c.title,
      group: c.group,
      server: this.server.spec.id,
      unit: c.unit,
      rate: usable ? rate : null,
      spreadPct: usable && rate ? ((rates[rates.length - 1] - rates[0]) / rate) * 100 : null,
      p50Ms: usable ? p50 : null,
      p99Ms: usable ? p99 : null,
      mbPerSec: usable && c.unit === "msg" ? median(rounds.map((r) => r.mbPerSec ?? NaN)) : null,
      cpuUsPerOp: usable && ops > 0 ? cpu / ops : null,
      otherCpuPct:
        rounds.length > 0 ? (100 * rounds.reduce((n, r) => n + r.otherUs, 0)) / (cpus().length * rounds.reduce((n, r) => n + r.wallUs, 0)) : null,
      peakRssMb: usable && hwms.length > 0 ? Math.max(...hwms) / KiB_PER_MiB : null,
      rssAfterMb: rounds.length > 0 ? rounds[rounds.length - 1].rssKiB / KiB_PER_MiB : null,
      ops: Math.round(ops),
      elapsedSec: rounds.reduce((n, r) => n + r.elapsedSec, 0),
      rounds: rounds.map((r) => ({
        rate: r.rate,
        ops: Math.round(r.ops),
        cpuUs: r.cpuUs,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        ...(r.upstreamGc !== undefined && { upstreamFullCollections: r.upstreamGc?.fullCount ?? null }),
      })),
      sendingPauses:
        rounds.length > 0 && rounds.every((r) => r.sendingPauses)
          ? { count: rounds.reduce((n, r) => n + r.sendingPauses!.count, 0), longestMs: Math.max(...rounds.map((r) => r.sendingPauses!.longestMs)) }
          : null,
      gc: rowGc(rounds, (r) => r.gc),
      ...(this.server.upstreamPid !== undefined && { upstreamGc: rowGc(rounds, (r) => r.upstreamGc ?? null) }),
      vsGrpcJs: null,
      vsConnectNode: null,
      cpuEfficiencyVsGrpcJs: null,
      cpuEfficiencyVsConnectNode: null,
      problems: [...this.problems],
      command: rounds[0]?.command ?? "",
    };
  }

  private async drive(durationSec: number, measured: boolean): Promise<Omit<Round, "cpuUs" | "hwmKiB" | "rssKiB" | "otherUs" | "wallUs" | "gc">> {
    const c = this.c;
    const endpoint = this.server.endpoint(c.protocol)!;
    const request = this.files.request;
    const probe = this.probe!;
    if (c.driver.tool === "wrk") {
      const r = await runWrk({
        url: endpoint.url + request.path,
        headers: request.headers,
        body: request.body,
        connections: c.driver.connections,
        durationSec,
        scriptFile: this.files.luaFile,
      });
      const problems: string[] = [];
      if (r.non2xx > 0) problems.push(`${r.non2xx} non-2xx answers`);
      const socketErrors = Object.entries(r.socketErrors).filter(([, n]) => n > 0);
      if (socketErrors.length > 0) problems.push(`socket errors: ${socketErrors.map(([k, n]) => `${k} ${n}`).join(", ")}`);
      return {
        rate: r.reqPerSec,
        ops: r.requests,
        elapsedSec: r.elapsedSec,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        mbPerSec: null,
        problems,
        command: `wrk -t1 -c${c.driver.connections} -d${Math.max(1, Math.round(durationSec))}s --latency -s <post.lua> ${endpoint.url}${request.path}`,
      };
    }
    const options = {
      url: endpoint.url + request.path,
      headers: request.headers,
      bodyFile: this.files.bodyFile,
      clients: c.driver.clients,
      streams: c.driver.streams,
      rps: c.driver.rps,
      staggerMs: c.driver.staggerMs,
      durationSec,
      logFile: measured ? this.files.logFile(this.server.spec.id) : undefined,
    };
    const r = await runH2load(options);
    const problems: string[] = [];
    const non2xx = r.statusCodes["3xx"] + r.statusCodes["4xx"] + r.statusCodes["5xx"];
    if (non2xx > 0) problems.push(`${non2xx} non-2xx answers`);
    if (r.requests.errored + r.requests.timeout > 0) problems.push(`h2load: ${r.requests.errored} errored, ${r.requests.timeout} timed out`);
    let rate: number;
    let ops: number;
    let mbPerSec: number | null = null;
    if (c.unit === "msg") {
      // Rate from the bytes received, so a stream still running at the end counts for what it got.
      const bytesPerMessage = probe.bodyBytes / probe.messages;
      ops = r.traffic.dataBytes / bytesPerMessage;
      rate = ops / r.elapsedSec;
      mbPerSec = r.traffic.dataBytes / r.elapsedSec / 1e6;
    } else {
      ops = r.requests.done;
      rate = r.requests.done / r.elapsedSec;
      // A gRPC or gRPC-web failure is HTTP 200 too, but trailers-only: no body bytes.
      if (request.protocol !== "connect-json" && r.traffic.dataBytes < 0.95 * r.requests.done * probe.bodyBytes) {
        problems.push(`only ${r.traffic.dataBytes} response bytes for ${r.requests.done} calls of ~${probe.bodyBytes}: some calls failed`);
      }
    }
    const latencies = r.latenciesUs;
    return {
      rate,
      ops,
      elapsedSec: r.elapsedSec,
      latenciesUs: latencies,
      sendingPauses: r.sendingPauses,
      p50Ms: latencies && latencies.length > 0 ? quantile(latencies, 0.5) / 1000 : null,
      p99Ms: latencies && latencies.length > 0 ? quantile(latencies, 0.99) / 1000 : null,
      mbPerSec,
      problems,
      command: `h2load ${h2loadArgs({ ...options, bodyFile: "<body>", logFile: undefined })
        .map((a) => (/\s/.test(a) ? `'${a}'` : a))
        .join(" ")}`,
    };
  }
}

/** The GC work between two readings of a server's totals (null if either is missing). */
function gcDuring(before: GcTotals | null, after: GcTotals | null): RoundGc | null {
  if (before === null || after === null) return null;
  const fullPauses = after.fullPausesMs.slice(before.fullPausesMs.length);
  return {
    youngMs: after.youngMs - before.youngMs,
    fullMs: after.fullMs - before.fullMs,
    fullCount: fullPauses.length,
    longestFullMs: fullPauses.length === 0 ? 0 : Math.max(...fullPauses),
  };
}

/** One process's GC over the rounds (`of` picks the server's or the upstream's) as shares of their wall time; null unless every round has a reading. */
function rowGc(rounds: readonly Round[], of: (round: Round) => RoundGc | null): RowGc | null {
  const readings = rounds.map(of);
  if (rounds.length === 0 || readings.some((gc) => gc === null)) return null;
  const wallMs = rounds.reduce((n, r) => n + r.wallUs, 0) / 1000;
  const sum = (pick: (gc: RoundGc) => number) => readings.reduce((n, gc) => n + pick(gc!), 0);
  return {
    youngPct: (100 * sum((gc) => gc.youngMs)) / wallMs,
    fullPct: (100 * sum((gc) => gc.fullMs)) / wallMs,
    fullCount: sum((gc) => gc.fullCount),
    longestFullMs: Math.max(...readings.map((gc) => gc!.longestFullMs)),
  };
}

/** A row for a server that could not take part (did not start). */
export function failedRow(c: LoadCase, serverId: string, problem: string): LoadRow {
  return {
    case: c.id,
    title: c.title,
    group: c.group,
    server: serverId,
    unit: c.unit,
    rate: null,
    spreadPct: null,
    p50Ms: null,
    p99Ms: null,
    mbPerSec: null,
    cpuUsPerOp: null,
    otherCpuPct: null,
    peakRssMb: null,
    rssAfterMb: null,
    ops: 0,
    elapsedSec: 0,
    rounds: [],
    sendingPauses: null,
    gc: null,
    vsGrpcJs: null,
    vsConnectNode: null,
    cpuEfficiencyVsGrpcJs: null,
    cpuEfficiencyVsConnectNode: null,
    problems: [problem],
    command: "",
  };
}
