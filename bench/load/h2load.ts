/**
 * h2load (Debian package nghttp2-client) as the HTTP/2 load driver: gRPC, gRPC-web and
 * Connect over h2c, unary and server-streaming.
 *
 * h2load prints min/max/mean/sd of request time but no percentiles, so p50/p99 come from its
 * --log-file (one line per request: start time µs, HTTP status, duration µs).
 */
import { readFile, rm } from "node:fs/promises";
import { runToolOutput } from "../lib/proc.js";

export interface H2loadOptions {
  /** Full URL: http://127.0.0.1:port/package.Service/Method */
  url: string;
  headers: Record<string, string>;
  /** File holding the request body (sent with POST). */
  bodyFile: string;
  /** -c: connections. */
  clients: number;
  /** -m: concurrent streams per connection. */
  streams: number;
  durationSec: number;
  /** --rps: requests per second per connection (open loop at a fixed rate); none: as fast as answers come. */
  rps?: number;
  /**
   * Open the connections this many ms apart (-r 1 --rate-period), so their rate timers take
   * turns; needs `rps`. h2load then takes a request count instead of a duration (-n, not -D).
   */
  staggerMs?: number;
  /** --log-file, for latency percentiles; none means no percentiles. */
  logFile?: string;
}

export interface H2loadResult {
  elapsedSec: number;
  reqPerSec: number;
  requests: { total: number; started: number; done: number; succeeded: number; failed: number; errored: number; timeout: number };
  statusCodes: { "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  traffic: { totalBytes: number; headerBytes: number; dataBytes: number };
  /** Per-request durations in µs (from the log file), sorted ascending. */
  latenciesUs?: Float64Array;
  /** At a fixed rate (`rps`): the pauses in h2load's sending (from the log file). */
  sendingPauses?: SendingPauses;
  output: string;
}

/**
 * At a fixed rate, the times h2load sent nothing for at least PAUSE_MS beyond its rhythm (its
 * timer's period, or the spacing of staggered connections) while it had a stream free: h2load
 * itself did not run. With the cores mostly idle that is the machine stalling (the VM's host),
 * which delays whatever calls are in flight too, so it tells how comparable two servers' rounds
 * were. A server stalling while it holds every stream is not counted.
 */
export interface SendingPauses {
  count: number;
  longestMs: number;
}
const PAUSE_MS = 4;
/** h2load's rate timer fires at most this often (its source: std::max(0.01, 1. / rps)). */
const H2LOAD_TIMER_MIN_MS = 10;

export function h2loadArgs(options: H2loadOptions): string[] {
  const args = [
    "-t", "1",
    "-c", String(options.clients),
    "-m", String(options.streams),
    "-d", options.bodyFile,
  ];
  if (options.staggerMs !== undefined) {
    if (options.rps === undefined) throw new Error("h2load: staggerMs needs rps");
    // h2load refuses -D with -r: the same duration as a request count at the fixed rate.
    const requests = Math.max(options.clients, Math.round(options.clients * options.rps * options.durationSec));
    args.push("-r", "1", `--rate-period=${Math.max(1, Math.round(options.staggerMs))}ms`, "-n", String(requests));
  } else {
    args.push("-D", `${Math.max(1, Math.round(options.durationSec * 1000))}ms`);
  }
  for (const [name, value] of Object.entries(options.headers)) args.push("-H", `${name}: ${value}`);
  if (options.rps !== undefined) args.push(`--rps=${options.rps}`);
  if (options.logFile) args.push(`--log-file=${options.logFile}`);
  args.push(options.url);
  return args;
}

export async function runH2load(options: H2loadOptions): Promise<H2loadResult> {
  const args = h2loadArgs(options);
  // h2load appends to its log file: a file left by an earlier round would count that round again.
  if (options.logFile) await rm(options.logFile, { force: true });
  const output = await runToolOutput("h2load", args, options.durationSec);
  const result = parseH2load(output);
  if (options.logFile) {
    const log = await readLog(options.logFile);
    result.latenciesUs = log.latenciesUs;
    if (options.rps !== undefined) {
      const rhythmMs = options.staggerMs ?? Math.max(H2LOAD_TIMER_MIN_MS, 1000 / options.rps);
      result.sendingPauses = sendingPauses(log, rhythmMs + PAUSE_MS, options.clients * options.streams);
    }
  }
  return result;
}

const num = (text: string | undefined) => (text === undefined ? NaN : Number(text));

export function parseH2load(output: string): H2loadResult {
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(output);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output);
  const traffic = /traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers.*?, \S+ \((\d+)\) data/.exec(output);
  if (!finished || !requests || !codes || !traffic) throw new Error(`cannot parse h2load output:\n${output.slice(-2000)}`);
  const elapsed = num(finished[1]) / (finished[2] === "ms" ? 1000 : 1);
  return {
    elapsedSec: elapsed,
    reqPerSec: num(finished[3]),
    requests: {
      total: num(requests[1]),
      started: num(requests[2]),
      done: num(requests[3]),
      succeeded: num(requests[4]),
      failed: num(requests[5]),
      errored: num(requests[6]),
      timeout: num(requests[7]),
    },
    statusCodes: { "2xx": num(codes[1]), "3xx": num(codes[2]), "4xx": num(codes[3]), "5xx": num(codes[4]) },
    traffic: { totalBytes: num(traffic[1]), headerBytes: num(traffic[2]), dataBytes: num(traffic[3]) },
    output,
  };
}

interface H2loadLog {
  /** Durations, ascending. */
  latenciesUs: Float64Array;
  /** Requests by start time: start µs since the epoch and duration µs, interleaved. */
  byStart: Float64Array;
}

/** h2load's log: a line per request, "start µs since the epoch <TAB> status <TAB> duration µs", in the order they ended. */
async function readLog(logFile: string): Promise<H2loadLog> {
  const text = await readFile(logFile, "utf8");
  const requests: [number, number][] = [];
  for (const line of text.split("\n")) {
    const fields = line.split("\t");
    if (fields.length >= 3) requests.push([Number(fields[0]), Number(fields[2])]);
  }
  requests.sort((a, b) => a[0] - b[0]);
  return {
    latenciesUs: Float64Array.from(requests, (r) => r[1]).sort(),
    byStart: Float64Array.from(requests.flat()),
  };
}

/** Gaps of at least `gapMs` between consecutive request starts during which fewer than `streams` requests were in flight. */
function sendingPauses(log: H2loadLog, gapMs: number, streams: number): SendingPauses {
  const byStart = log.byStart;
  const count = byStart.length / 2;
  const longestCallUs = log.latenciesUs.length > 0 ? log.latenciesUs[log.latenciesUs.length - 1] : 0;
  let pauses = 0;
  let longestUs = 0;
  for (let i = 1; i < count; i++) {
    const from = byStart[2 * (i - 1)];
    const gap = byStart[2 * i] - from;
    if (gap < gapMs * 1000) continue;
    let inFlight = 0;
    for (let j = i - 1; j >= 0 && byStart[2 * j] >= from - longestCallUs; j--) {
      if (byStart[2 * j] + byStart[2 * j + 1] > from) inFlight++;
    }
    if (inFlight >= streams) continue;
    pauses++;
    longestUs = Math.max(longestUs, gap);
  }
  return { count: pauses, longestMs: longestUs / 1000 };
}

/** The q-quantile (0..1) of ascending values, nearest-rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}
