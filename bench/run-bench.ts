/**
 * `npm run bench`: connect-gateway against a plain @grpc/grpc-js server and bare connect-node,
 * in ONE run, on loopback. Each server is its own child process, measured through
 * /proc/<pid> (CPU ticks, VmHWM/VmRSS); h2load drives HTTP/2 and wrk HTTP/1.1.
 *
 * Two cores are shared by the load generator and the server (and by whatever else runs), so
 * absolute numbers mean little: read the ratio columns, which compare servers measured in
 * the same run, in interleaved rounds. This is never a timed assertion in the test suite.
 *
 *   npm run bench                      full run (~3–4 minutes)
 *   npm run bench -- --quick           smoke run (~40 s)
 *   npm run bench -- --help            every flag
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CASES, type BenchCase, type LoadCase, type MemoryCase } from "./cases.js";
import { LoadSubject, failedRow, prepareCase, type LoadRow } from "./lib/measure-load.js";
import { emptyMemoryRow, measureMemory, requestedItems, type MemoryRow } from "./lib/measure-memory.js";
import { buildDistRuntime } from "./lib/build.js";
import { GATEWAY_ALLOCATOR, OtherCpu, PROJECT_ROOT, findGatewayAllocator, installExitHandlers, killAllChildren, toolVersion, tsxRuntime, useGatewayPreload, useGcMeterDir, useRuntime } from "./lib/proc.js";
import { BEHIND_PEER_RATIO, addRatios, evaluateTargets, formatTarget, gatewayBehindPeers, interceptorCost, loadTable, memoryTable } from "./lib/report.js";
import { fmt } from "./lib/table.js";
import { summarizeProfile, type ProfileSummary } from "./profile-summary.js";
import { DEFAULT_SERVERS, GRPC_JS_ON_GATEWAY_ALLOCATOR_ID, NGHTTPX_PACKAGE, NGHTTPX_PROXY_ID, SERVERS, nghttpxPrograms, type RunningServer, type ServerSpec } from "./servers/registry.js";

// ───────────────────────────── options ─────────────────────────────

const HELP = `Usage: npm run bench -- [flags]

  --quick              smoke run (~40 s): the cases marked quick, one 0.7 s round each
                       (wrk: 1 s), smaller memory cases
  --cases=a,b          only these case ids or groups (${[...new Set(CASES.map((c) => c.group))].join(", ")}); see --list
  --skip=a,b           leave out these case ids or groups
  --servers=a,b        exactly these servers, in every case their protocols allow
                       (${SERVERS.map((s) => s.id).join(", ")};
                       by default each case's own list, from ${DEFAULT_SERVERS.join(", ")})
  --rounds=N           measured rounds per case and server, interleaved across servers;
                       the median round is reported (default 3; quick 1)
  --duration=SEC       seconds per round (default 1.5; quick 0.7; wrk rounds up to whole s)
  --warmup=SEC         warm-up seconds per case and server (default 0.5; quick 0.3)
  --idle-conns=N       idle HTTP/2 connections in mem-idle-conns (default 10000; quick 1000)
  --open-streams=N     open server streams in mem-open-streams (default 1000; quick 200)
  --gateway-root=DIR   run the gateway's src/main.ts from another checkout, e.g. made with
                       \`git worktree add /tmp/gw-before <commit>\` (compiled with its
                       tsconfig.build.json against this project's node_modules)
  --allocator=${GATEWAY_ALLOCATOR.name}|glibc
                       the gateway's memory allocator: ${GATEWAY_ALLOCATOR.name} (default), preloaded as
                       its image does (Dockerfile ENV LD_PRELOAD), or glibc's malloc
  --runtime=dist|tsx   dist (default): compile src, gen and bench with tsc into
                       bench/results/build/ and run plain JS, as production runs dist/;
                       tsx: run the .ts files through tsx (slower, skews against the gateway)
  --cpu-prof           run the load-phase servers under the V8 profiler and summarise where
                       their time goes (profiles in bench/results/profiles/; such a run is slower)
  --upstream-stream-tables
                       give the proxy cases' echo upstream the gateway's HTTP/2 stream tables, so
                       that the proxies' long-lived upstream connections collect garbage like the
                       direct call's fresh ones (bench/README, "The upstream's GC"); off by
                       default: the proxy targets are defined against a plain grpc-js upstream
  --out=FILE           JSON results (default bench/results/latest.json)
  --list               list the cases and exit
  --help               this text

Needs h2load (Debian package nghttp2-client), wrk (Debian package wrk) and ${GATEWAY_ALLOCATOR.name} (Debian
package ${GATEWAY_ALLOCATOR.debianPackage}).`;

interface Options {
  quick: boolean;
  rounds: number;
  durationSec: number;
  warmupSec: number;
  idleConns: number;
  openStreams: number;
  streamsPerConnection: number;
  cases?: string[];
  skip: string[];
  servers?: string[];
  cpuProf: boolean;
  /** Give the echo upstream the gateway's stream tables (--upstream-stream-tables). */
  upstreamStreamTables: boolean;
  gatewayRoot?: string;
  runtime: "dist" | "tsx";
  /** The gateway's memory allocator: the one its image preloads, or glibc's malloc (to measure without). */
  allocator: AllocatorName;
  out: string;
  list: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      cases: { type: "string" },
      skip: { type: "string" },
      servers: { type: "string" },
      rounds: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      "idle-conns": { type: "string" },
      "open-streams": { type: "string" },
      "gateway-root": { type: "string" },
      runtime: { type: "string" },
      allocator: { type: "string" },
      "cpu-prof": { type: "boolean", default: false },
      "upstream-stream-tables": { type: "boolean", default: false },
      out: { type: "string" },
      list: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP + "\n");
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const number = (text: string | undefined, fallback: number, name: string) => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
    return value;
  };
  const list = (text: string | undefined) => text?.split(",").map((s) => s.trim()).filter(Boolean);
  return {
    quick,
    rounds: Math.round(number(values.rounds, quick ? 1 : 3, "rounds")),
    durationSec: number(values.duration, quick ? 0.7 : 1.5, "duration"),
    warmupSec: number(values.warmup, quick ? 0.3 : 0.5, "warmup"),
    idleConns: Math.round(number(values["idle-conns"], quick ? 1000 : 10_000, "idle-conns")),
    openStreams: Math.round(number(values["open-streams"], quick ? 200 : 1000, "open-streams")),
    streamsPerConnection: 100,
    cases: list(values.cases),
    skip: list(values.skip) ?? [],
    servers: list(values.servers),
    cpuProf: values["cpu-prof"] ?? false,
    upstreamStreamTables: values["upstream-stream-tables"] ?? false,
    gatewayRoot: values["gateway-root"] ? resolve(values["gateway-root"]) : undefined,
    runtime: runtimeKind(values.runtime),
    allocator: allocatorKind(values.allocator),
    out: resolve(values.out ?? join(PROJECT_ROOT, "bench/results/latest.json")),
    list: values.list ?? false,
  };
}

function runtimeKind(text: string | undefined): "dist" | "tsx" {
  if (text === undefined || text === "dist" || text === "tsx") return text ?? "dist";
  throw new Error(`--runtime must be dist or tsx, got ${JSON.stringify(text)}`);
}

type AllocatorName = typeof GATEWAY_ALLOCATOR.name | "glibc";

function allocatorKind(text: string | undefined): AllocatorName {
  if (text === undefined || text === GATEWAY_ALLOCATOR.name) return GATEWAY_ALLOCATOR.name;
  if (text === "glibc") return "glibc";
  throw new Error(`--allocator must be ${GATEWAY_ALLOCATOR.name} or glibc, got ${JSON.stringify(text)}`);
}

function selectCases(options: Options): BenchCase[] {
  const known = new Set(CASES.flatMap((c) => [c.id, c.group]));
  for (const name of [...(options.cases ?? []), ...options.skip]) {
    if (!known.has(name)) throw new Error(`unknown case or group ${JSON.stringify(name)} (see --list)`);
  }
  for (const name of options.servers ?? []) {
    if (!SERVERS.some((s) => s.id === name)) throw new Error(`unknown server ${JSON.stringify(name)}`);
  }
  const matches = (c: BenchCase, names: string[]) => names.includes(c.id) || names.includes(c.group);
  return CASES.filter((c) => (options.cases ? matches(c, options.cases) : !options.quick || c.quick)).filter((c) => !matches(c, options.skip));
}

/** Servers this machine cannot run (a reference whose program is missing), left out with a note. */
const unavailableServers = new Set<string>();

/** The servers a case runs against: its own list (or the defaults), or exactly --servers. */
function serversFor(c: BenchCase, options: Pick<Options, "servers">): ServerSpec[] {
  const wanted: readonly string[] = options.servers ?? c.servers ?? DEFAULT_SERVERS;
  return SERVERS.filter((s) => s.protocols.includes(c.protocol) && wanted.includes(s.id) && !unavailableServers.has(s.id));
}

/** Seconds per round of a load case: --duration, or the case's own minimum if longer. */
function roundSec(c: LoadCase, options: Pick<Options, "durationSec">): number {
  return Math.max(options.durationSec, c.minRoundSec ?? 0);
}

function gitCommit(dir: string): string | undefined {
  try {
    const out = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    return dirty ? `${out} + uncommitted changes in src/` : out;
  } catch {
    return undefined;
  }
}

// ───────────────────────────── main ─────────────────────────────

const notes: string[] = [];
const note = (text: string) => {
  notes.push(text);
  process.stderr.write(`bench: note: ${text}\n`);
};
const progress = (text: string) => process.stderr.write(`${text}\n`);

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const selected = selectCases(options);
  if (options.list) {
    for (const c of CASES) {
      const servers = serversFor(c, { servers: undefined }).map((s) => s.id);
      process.stdout.write(`${c.id.padEnd(18)} ${c.group.padEnd(9)} ${c.quick ? "quick" : "     "}  ${c.title}  [${servers.join(", ")}]\n`);
    }
    return 0;
  }
  const loadCases = selected.filter((c): c is LoadCase => c.kind === "load");
  const memoryCases = selected.filter((c): c is MemoryCase => c.kind === "memory");

  // The Debian tools are checked, not installed.
  const tools: Record<string, string | undefined> = {};
  const missing: string[] = [];
  const needs = new Set(loadCases.map((c) => c.driver.tool));
  if (needs.has("h2load")) {
    tools.h2load = toolVersion("h2load", ["--version"]);
    if (!tools.h2load) missing.push("h2load: install the Debian package nghttp2-client (apt-get install -y nghttp2-client)");
  }
  if (needs.has("wrk")) {
    tools.wrk = toolVersion("wrk", ["--version"]);
    if (!tools.wrk) missing.push("wrk: install the Debian package wrk (apt-get install -y wrk)");
  }
  // A preload inherited from the shell would reach every server, the "glibc" ones too.
  if (process.env.LD_PRELOAD) {
    note(`LD_PRELOAD=${process.env.LD_PRELOAD} was set in the environment: the servers ran without it`);
    delete process.env.LD_PRELOAD;
  }
  // The gateway runs on the allocator its image preloads; without the library that would not be
  // the gateway as shipped, so the run stops (--allocator=glibc runs without it).
  const allocatorLibrary = findGatewayAllocator();
  if (!allocatorLibrary) {
    const hint = `install the Debian package ${GATEWAY_ALLOCATOR.debianPackage} (apt-get install -y ${GATEWAY_ALLOCATOR.debianPackage})`;
    if (options.allocator !== "glibc") {
      process.stderr.write(`bench: ${GATEWAY_ALLOCATOR.library}, the allocator the gateway's image preloads, is missing: ${hint}, or measure the gateway on glibc's malloc with --allocator=glibc\n`);
      return 2;
    }
    if (loadCases.some((c) => serversFor(c, options).some((s) => s.id === GRPC_JS_ON_GATEWAY_ALLOCATOR_ID))) {
      unavailableServers.add(GRPC_JS_ON_GATEWAY_ALLOCATOR_ID);
      note(`${GATEWAY_ALLOCATOR.library} not found: ${GRPC_JS_ON_GATEWAY_ALLOCATOR_ID} left out (${hint})`);
    }
  }
  useGatewayPreload(options.allocator !== "glibc" ? allocatorLibrary : undefined);
  if (options.allocator === "glibc") note(`--allocator=glibc: the gateway ran on glibc's malloc, not on the ${GATEWAY_ALLOCATOR.name} its image preloads`);
  if (missing.length > 0) {
    process.stderr.write(`bench: missing load tools:\n  - ${missing.join("\n  - ")}\n(or leave their cases out with --skip / --cases; see --list)\n`);
    return 2;
  }
  // The proxy cases' native reference is a comparison, not a load tool: without it they run anyway.
  if (loadCases.some((c) => serversFor(c, options).some((s) => s.id === NGHTTPX_PROXY_ID))) {
    const programs = nghttpxPrograms();
    tools.nghttpx = programs && toolVersion(programs.nghttpx, ["--version"]);
    if (!tools.nghttpx) {
      unavailableServers.add(NGHTTPX_PROXY_ID);
      note(`nghttpx (or util-linux's setpriv) not found: the proxy cases ran without their native reference (apt-get install -y ${NGHTTPX_PACKAGE})`);
    }
  }
  let gatewayCommit = gitCommit(PROJECT_ROOT);
  if (options.gatewayRoot) {
    for (const needed of ["src/main.ts", ...(options.runtime === "tsx" ? ["node_modules/tsx"] : [])]) {
      if (!existsSync(join(options.gatewayRoot, needed))) {
        process.stderr.write(`bench: --gateway-root ${options.gatewayRoot} has no ${needed}\n`);
        return 2;
      }
    }
    gatewayCommit = gitCommit(options.gatewayRoot);
    note(`gateway run from ${options.gatewayRoot}${gatewayCommit ? ` (commit ${gatewayCommit})` : ""}`);
  }

  installExitHandlers();
  const startedAt = Date.now();
  const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(1)} s`;
  if (options.runtime === "dist") {
    useRuntime(await buildDistRuntime(options.gatewayRoot, note));
    progress(`bench: compiled to bench/results/build/ in ${elapsed()}`);
  } else {
    useRuntime(tsxRuntime(options.gatewayRoot));
    note("--runtime=tsx: servers ran through tsx's loader, which slows the gateway's own TypeScript far more than the peers' library code");
  }
  const loadSec = loadCases.reduce((n, c) => n + serversFor(c, options).length * (options.warmupSec + options.rounds * (Math.ceil(roundSec(c, options)) + 1)), 0);
  const watchdogMs = 5 * 60_000 + loadSec * 1000 * 2;
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${Math.round(watchdogMs / 1000)} s, giving up\n`);
    killAllChildren();
    process.exit(1);
  }, watchdogMs).unref();

  const tmp = mkdtempSync(join(tmpdir(), "connect-gateway-bench-"));
  process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
  useGcMeterDir(join(tmp, "gc"));
  const profileDir = join(PROJECT_ROOT, "bench/results/profiles");
  if (options.cpuProf) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
    note("--cpu-prof: servers ran under the V8 profiler, so this run's numbers are lower than usual");
  }
  const loadAtStart = loadavg()[0];
  if (loadAtStart > 0.5) note(`1-minute load average was ${loadAtStart.toFixed(2)} at the start: other work shared the 2 cores`);
  progress(
    `bench: ${loadCases.length} load case(s) × ${options.rounds} round(s) of ${options.durationSec} s after ${options.warmupSec} s warm-up, ` +
      `${memoryCases.length} memory case(s)${options.quick ? " (quick)" : ""}`,
  );

  // ── Load phase: every needed server runs at once (idle ones cost nothing); each case loads
  // them in turn, round after round.
  const loadRows: LoadRow[] = [];
  const neededServers = SERVERS.filter((s) => loadCases.some((c) => serversFor(c, options).includes(s)));
  const running = new Map<string, RunningServer>();
  const startErrors = new Map<string, string>();
  await Promise.all(
    neededServers.map(async (spec) => {
      // One folder per server: Node writes a profile per thread (main, and tsx's module-loader worker).
      const nodeFlags = options.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${join(profileDir, spec.id)}`] : [];
      try {
        const server = await spec.start({ nodeFlags, upstreamStreamTables: options.upstreamStreamTables });
        running.set(spec.id, server);
        progress(`bench: started ${spec.id} (pid ${server.pid}) after ${elapsed()}`);
      } catch (error) {
        startErrors.set(spec.id, (error as Error).message);
        progress(`bench: ${spec.id} did not start: ${(error as Error).message}`);
      }
    }),
  );
  if (options.upstreamStreamTables && [...running.values()].some((server) => server.upstreamPid !== undefined)) {
    note(
      "--upstream-stream-tables: the proxy cases' echo upstream gave every session the gateway's stream tables (it exits if one cannot take them), " +
        "so that a proxy's long-lived connection collects like the direct call's fresh ones; the proxy targets are defined against a plain grpc-js upstream (bench/README, \"The upstream's GC\")",
    );
  }
  const warmed = new Set<string>();
  const otherCpu = new OtherCpu(() => [...running.values()].map((s) => s.pid));
  const loadPhase = otherCpu.start();
  for (const [index, c] of loadCases.entries()) {
    const files = await prepareCase(c, tmp);
    const subjects: LoadSubject[] = [];
    const rows = new Map<string, LoadRow>();
    for (const spec of serversFor(c, options)) {
      const server = running.get(spec.id);
      if (server) subjects.push(new LoadSubject(c, server, files, otherCpu));
      else rows.set(spec.id, failedRow(c, spec.id, `server did not start: ${startErrors.get(spec.id)?.split("\n")[0]}`));
    }
    for (const s of subjects) {
      await s.check("before");
      // A server's first case also warms up its JIT and lazily loaded modules: give it longer.
      const first = !warmed.has(s.server.spec.id);
      warmed.add(s.server.spec.id);
      await s.warmUp(options.warmupSec + (first ? (options.quick ? 0.5 : 1.5) : 0));
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const s of subjects) await s.round(roundSec(c, options));
    }
    for (const s of subjects) {
      if (s.usable) await s.check("after");
      rows.set(s.server.spec.id, s.row());
    }
    for (const spec of serversFor(c, options)) {
      const row = rows.get(spec.id)!;
      loadRows.push(row);
      const unit = c.unit === "msg" ? "msg/s" : "calls/s";
      progress(
        `[${index + 1}/${loadCases.length} ${elapsed().padStart(7)}] ${c.id} × ${spec.id}: ` +
          (row.rate === null ? "no result" : `${fmt(row.rate, 0)} ${unit}${options.rounds > 1 ? ` (±${fmt(row.spreadPct, 0)}%)` : ""}, p99 ${fmt(row.p99Ms, 2)} ms, ${fmt(row.cpuUsPerOp, 1)} µs CPU/${c.unit}`) +
          (row.sendingPauses && row.sendingPauses.count > 0 ? `, h2load paused by the machine ${row.sendingPauses.count}× (up to ${fmt(row.sendingPauses.longestMs, 1)} ms)` : "") +
          (row.problems.length > 0 ? `  PROBLEM: ${row.problems.join("; ")}` : ""),
      );
    }
  }
  const loadPhaseOthers = loadPhase();
  const othersPct = loadPhaseOthers.wallUs > 0 ? (100 * loadPhaseOthers.otherUs) / (cpus().length * loadPhaseOthers.wallUs) : 0;
  if (loadCases.length > 0) {
    const text = `processes outside the benchmark used ${othersPct.toFixed(0)}% of the ${cpus().length} cores during the load phase`;
    if (othersPct >= 5) note(`${text}: absolute numbers are depressed and noisier, ratios less so (see the "other CPU %" column)`);
    else progress(`bench: ${text}`);
  }
  // With --cpu-prof the profile is written at a clean exit: give it time.
  await Promise.all([...running.values()].map((server) => server.stop(options.cpuProf ? 20_000 : 3000)));

  // ── Memory phase: fresh servers for each case, started side by side, measured one at a time.
  const memoryRows: MemoryRow[] = [];
  for (const c of memoryCases) {
    const specs = serversFor(c, options);
    const started = await Promise.allSettled(specs.map((spec) => spec.start()));
    for (const [i, spec] of specs.entries()) {
      const outcome = started[i];
      const row =
        outcome.status === "fulfilled"
          ? await measureMemory(c, outcome.value, {
              idleConns: options.idleConns,
              openStreams: options.openStreams,
              streamsPerConnection: options.streamsPerConnection,
              settleMs: options.quick ? { baseline: 300, held: 500 } : { baseline: 1000, held: 1500 },
              note,
            })
          : emptyMemoryRow(c, spec.id, requestedItems(c, options), `server did not start: ${String((outcome.reason as Error).message).split("\n")[0]}`);
      memoryRows.push(row);
      if (outcome.status === "fulfilled") await outcome.value.stop();
      progress(
        `[mem ${elapsed().padStart(7)}] ${c.id} × ${spec.id}: ${row.opened}/${row.requested} held, RSS ${fmt(row.baselineRssMb, 1)} → ${fmt(row.rssMb, 1)} MB, ${fmt(row.kibPerItem, 1)} KiB each` +
          (row.problems.length > 0 ? `  PROBLEM: ${row.problems.join("; ")}` : ""),
      );
    }
  }

  // ── Report.
  addRatios(loadRows, memoryRows);
  const targets = evaluateTargets(loadRows);
  const behindPeers = gatewayBehindPeers(loadRows);
  const interceptors = interceptorCost(loadRows);
  const elapsedSec = (Date.now() - startedAt) / 1000;
  const out: string[] = [];
  out.push(
    `connect-gateway benchmark — ${new Date().toISOString()}, gateway ${gatewayCommit ?? "?"}, node ${process.version}, ${cpus().length} cores, ` +
      `${options.runtime === "dist" ? "compiled JS" : "tsx"}, ${options.rounds} × ${options.durationSec} s per measurement${options.quick ? " (quick)" : ""}, ${elapsedSec.toFixed(0)} s in all`,
    `rate: median round, calls/s (unary) or messages/s (stream; p50/p99 then per whole stream); ±%: spread of the rounds;`,
    `CPU: server process user+sys per op; GC: share of the rounds' time in young and full garbage collections;`,
    `peak RSS: VmHWM during the rounds; ×peer: rate ÷ the peer's rate in the same case;`,
    `other CPU %: share of the cores used by processes outside the benchmark during the rounds (noise)`,
    "",
  );
  if (loadRows.length > 0) out.push(loadTable(loadRows));
  if (memoryRows.length > 0) {
    out.push("", "memory (fresh server each; KiB/item = (RSS held − RSS before) ÷ items; ×peer: KiB/item ÷ the peer's, lower is leaner)", "");
    out.push(memoryTable(memoryRows));
  }
  if (interceptors.length > 0) {
    out.push("", "default interceptors logging (gateway+log − gateway):");
    for (const i of interceptors) out.push(`  ${i.case.padEnd(18)} ${i.cpuUsPerCall >= 0 ? "+" : ""}${fmt(i.cpuUsPerCall, 1)} µs CPU/call, rate ×${fmt(i.rateRatio, 2)}`);
  }
  if (targets.length > 0) {
    out.push("", "targets (reported, never asserted):");
    for (const t of targets) out.push(formatTarget(t));
  }
  if (behindPeers.length > 0) {
    out.push("", `behind a peer (gateway rows under ${BEHIND_PEER_RATIO}× a peer's rate; the targets do not cover every case, so look before trusting the run):`);
    for (const b of behindPeers) out.push(`  ${b.case} × ${b.server}: ${fmt(b.ratio, 2)}× ${b.peer}'s rate`);
  }
  const failures = [...loadRows, ...memoryRows].filter((r) => r.problems.length > 0);
  if (failures.length > 0) {
    out.push("", "problems:");
    for (const r of failures) out.push(`  ${r.case} × ${r.server}: ${r.problems.join("; ")}`);
  }
  if (notes.length > 0) out.push("", "notes:", ...notes.map((n) => `  - ${n}`));

  let profiles: Record<string, ProfileSummary["data"]> | undefined;
  if (options.cpuProf) {
    profiles = {};
    out.push("", `CPU profiles, main thread, whole life of each server (${relative(PROJECT_ROOT, profileDir)}/<server>/):`);
    for (const id of running.keys()) {
      try {
        // Default names are CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
        const dir = join(profileDir, id);
        const main = readdirSync(dir).find((name) => /\.\d+\.0\.\d+\.cpuprofile$/.test(name));
        if (!main) throw new Error(`no main-thread profile in ${dir}`);
        const summary = summarizeProfile(join(dir, main));
        profiles[id] = summary.data;
        out.push("", `${id}:`, summary.text);
      } catch (error) {
        out.push(`  ${id}: no profile (${(error as Error).message})`);
      }
    }
  }
  process.stdout.write("\n" + out.join("\n") + "\n");

  const json = {
    meta: {
      date: new Date().toISOString(),
      gatewayCommit,
      gatewayRoot: options.gatewayRoot,
      node: process.version,
      cores: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadAverageAtStart: loadAtStart,
      otherCpuPctDuringLoad: loadCases.length > 0 ? othersPct : undefined,
      tools,
      gatewayAllocator: options.allocator !== "glibc" ? { name: GATEWAY_ALLOCATOR.name, ldPreload: allocatorLibrary } : { name: "glibc malloc" },
      options: { ...options, out: relative(PROJECT_ROOT, options.out) },
      elapsedSec,
      servers: SERVERS.filter((s) => selected.some((c) => serversFor(c, options).includes(s))).map((s) => ({ id: s.id, description: s.description })),
      cases: selected.map((c) => ({ id: c.id, title: c.title, kind: c.kind })),
      notes,
    },
    load: loadRows,
    memory: memoryRows,
    interceptorCost: interceptors,
    behindPeers,
    targets,
    profiles,
  };
  mkdirSync(resolve(options.out, ".."), { recursive: true });
  writeFileSync(options.out, JSON.stringify(json, null, 2) + "\n");
  process.stdout.write(`\nJSON: ${relative(process.cwd(), options.out) || options.out}\n`);
  // A failed check is an error of the run (exit 1); a missed target is not.
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    killAllChildren();
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
