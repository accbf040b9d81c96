/**
 * Child processes of the benchmark, and what /proc tells about them.
 *
 * Every child is registered here and killed when the runner exits, whatever the reason
 * (normal end, error, Ctrl-C, SIGTERM). Server children also load die-with-parent.ts, so
 * they exit on their own if the runner is killed with SIGKILL, and gc-meter.ts, which reports
 * their garbage-collection time (gcTotals).
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { GcTotals } from "./gc-totals.js";

export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DIE_WITH_PARENT = fileURLToPath(new URL("../servers/die-with-parent.ts", import.meta.url));
export const GC_METER = fileURLToPath(new URL("../servers/gc-meter.ts", import.meta.url));

const children = new Set<ChildProcess>();

/** Clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Spawn a child that is killed with the runner. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/**
 * Run a load tool to the end and return what it printed (stdout and stderr together); it is
 * killed if it overstays its run by 30 s, and a non-zero exit is an error quoting the command.
 */
export function runToolOutput(command: string, args: string[], runSec: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawnTracked(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (out += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), (runSec + 30) * 1000);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${command} exited with ${signal ?? code}: ${command} ${args.join(" ")}\n${out.slice(-2000)}`));
    });
  });
}

/**
 * How the benchmark's Node children run the project's TypeScript: compiled to JS first
 * ("dist", the default, as production runs dist/), or through tsx's loader ("tsx").
 */
export interface NodeRuntime {
  kind: "dist" | "tsx";
  /** node arguments running `script` (a .ts path relative to the project root). */
  args(script: string): string[];
  /** node arguments and working directory running the gateway's entry point. */
  gateway(): { args: string[]; cwd: string };
}

/** Run .ts files through tsx; the gateway from `gatewayRoot` (default: this project). */
export function tsxRuntime(gatewayRoot = PROJECT_ROOT): NodeRuntime {
  return {
    kind: "tsx",
    args: (script) => ["--import", "tsx", "--import", DIE_WITH_PARENT, "--import", GC_METER, script],
    gateway: () => ({ args: ["--import", "tsx", "--import", DIE_WITH_PARENT, "--import", GC_METER, "src/main.ts"], cwd: gatewayRoot }),
  };
}

/** Run the JS that bench/lib/build.ts compiled into `projectOut` (and `gatewayOut` for the gateway). */
export function distRuntime(projectOut: string, gatewayOut: string, gatewayCwd: string): NodeRuntime {
  const js = (dir: string, script: string) => join(dir, script.replace(/\.ts$/, ".js"));
  const preloads = [DIE_WITH_PARENT, GC_METER].flatMap((file) => ["--import", js(projectOut, relative(PROJECT_ROOT, file))]);
  return {
    kind: "dist",
    args: (script) => [...preloads, js(projectOut, script)],
    gateway: () => ({ args: [...preloads, js(gatewayOut, "src/main.ts")], cwd: gatewayCwd }),
  };
}

let runtime: NodeRuntime = tsxRuntime();

export function useRuntime(next: NodeRuntime): void {
  runtime = next;
}

const RAISE_FD_LIMIT = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"';

/**
 * Spawn node on a project script (path relative to the project root, e.g.
 * "bench/servers/grpc-js-server.ts") through `sh`, which first raises the soft open-files
 * limit to the hard one (the memory cases hold 10,000 sockets).
 */
export function spawnNode(script: string, args: string[], options: SpawnOptions & { nodeFlags?: string[] } = {}): ChildProcess {
  const { nodeFlags = [], ...rest } = options;
  return spawnTracked("sh", ["-c", RAISE_FD_LIMIT, process.execPath, ...nodeFlags, ...runtime.args(script), ...args], { cwd: PROJECT_ROOT, ...rest });
}

/**
 * The node flags the gateway ships with: the Dockerfile's CMD and `npm start` run it with these
 * (test/k8s/dockerfile.test.ts checks the three agree), so the benchmark measures it the same way.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = ["--no-incremental-marking", "--no-parallel-scavenge", "--no-allocation-site-pretenuring", "--expose-gc"];

/**
 * The memory allocator the gateway's image preloads in place of glibc's malloc (the Dockerfile's
 * `ENV LD_PRELOAD`, at `imagePath`): mimalloc, from Debian's libmimalloc2.0 (README "How it
 * works", "mimalloc", for why mimalloc and not jemalloc).
 */
export const GATEWAY_ALLOCATOR = { name: "mimalloc", library: "libmimalloc.so.2", debianPackage: "libmimalloc2.0", imagePath: "/usr/local/lib/libmimalloc.so.2" } as const;

/** Where this machine has the gateway's allocator: Debian's multiarch library directories first. */
export function findGatewayAllocator(): string | undefined {
  let multiarch: string[] = [];
  try {
    multiarch = readdirSync("/usr/lib").filter((name) => name.endsWith("-linux-gnu")).map((name) => join("/usr/lib", name));
  } catch {
    // No /usr/lib (not Linux): the other directories do not exist either.
  }
  const dirs = [...multiarch, "/usr/lib64", "/usr/lib", "/usr/local/lib"];
  return dirs.map((dir) => join(dir, GATEWAY_ALLOCATOR.library)).find((path) => existsSync(path));
}

let gatewayPreload: string | undefined;

/** Preload this library (LD_PRELOAD) into every gateway spawnGateway starts from now on; undefined: none. */
export function useGatewayPreload(library: string | undefined): void {
  gatewayPreload = library;
}

/**
 * Check that a started server really runs on a preloaded library (default: the gateway's, if
 * any): the dynamic loader only warns about a path it cannot load, and the run would measure glibc.
 */
export function assertPreloaded(pid: number, library = gatewayPreload): void {
  if (!library) return;
  // The maps list the file the loader opened, symlinks resolved.
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  if (!maps.includes(realpathSync(library))) throw new Error(`process ${pid} did not load ${library} (LD_PRELOAD)`);
}

/** Spawn the gateway's entry point the same way, with the node flags and allocator it ships with. */
export function spawnGateway(options: SpawnOptions & { nodeFlags?: string[] } = {}): ChildProcess {
  const { nodeFlags = [], env = process.env, ...rest } = options;
  const { args, cwd } = runtime.gateway();
  return spawnTracked("sh", ["-c", RAISE_FD_LIMIT, process.execPath, ...GATEWAY_NODE_FLAGS, ...nodeFlags, ...args], {
    cwd,
    ...rest,
    env: gatewayPreload ? { ...env, LD_PRELOAD: gatewayPreload } : env,
  });
}

/** Ask a child to stop (SIGTERM), then SIGKILL it after graceMs. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** SIGKILL every child still running (synchronous: safe in an "exit" handler). */
export function killAllChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
}

let handlersInstalled = false;
/** Kill all children on exit, on Ctrl-C, SIGTERM and uncaught errors. */
export function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllChildren);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping every child process\n`);
      killAllChildren();
      process.exit(130);
    });
  }
}

/** user+system CPU time of a whole process (all its threads), in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Field 2 (comm) may hold spaces: split after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]); // field 14 overall
  const stime = Number(fields[12]); // field 15 overall
  return ((utime + stime) * 1e6) / CLK_TCK;
}

/** Where servers started from now on write their GC totals (gc-meter.ts reads BENCH_GC_DIR). */
export function useGcMeterDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  process.env.BENCH_GC_DIR = dir;
}

/** A server's GC totals so far (gc-meter.ts), or null when it has written none (yet). */
export function gcTotals(pid: number): GcTotals | null {
  const dir = process.env.BENCH_GC_DIR;
  if (!dir) return null;
  try {
    return JSON.parse(readFileSync(join(dir, `${pid}.json`), "utf8")) as GcTotals;
  } catch {
    return null;
  }
}

export interface MemoryKiB {
  rss: number;
  hwm: number;
}

/** Current (VmRSS) and peak (VmHWM) resident set size in KiB. */
export function memoryKiB(pid: number): MemoryKiB {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const read = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rss: read("VmRSS"), hwm: read("VmHWM") };
}

/** Reset the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0: write 5 to clear_refs). */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The soft "Max open files" limit of a process. */
export function openFilesLimit(pid: number): number {
  const limits = readFileSync(`/proc/${pid}/limits`, "utf8");
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  return match?.[1] === "unlimited" ? Infinity : Number(match?.[1] ?? NaN);
}

/** Whether an executable is on PATH, and its version line. */
export function toolVersion(command: string, args: string[]): string | undefined {
  try {
    const out = execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 5000 });
    return out.split("\n").find((line) => line.trim() !== "")?.trim();
  } catch (error) {
    // wrk --version exits 1 but prints its version.
    const out = (error as { stdout?: string }).stdout;
    if (typeof out === "string" && out.trim() !== "") return out.split("\n")[0].trim();
    return undefined;
  }
}

/** Collect the last lines of a child's stderr, for error messages. */
export function tailOf(child: ChildProcess, maxLines = 20): () => string {
  const lines: string[] = [];
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    lines.push(...chunk.split("\n").filter((l) => l !== ""));
    if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
  });
  return () => lines.join("\n");
}

/** Busy CPU time of the whole machine (all cores) since boot, in µs, from /proc/stat. */
export function machineBusyMicros(): number {
  const first = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const [user, nice, system, , , irq, softirq, steal] = first.trim().split(/\s+/).slice(1).map(Number);
  return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1e6) / CLK_TCK;
}

/** CPU time of this process and of its children that have exited (and were waited for), in µs. */
export function selfAndReapedChildrenMicros(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1e6) / CLK_TCK;
}

/**
 * How much CPU processes outside the benchmark used over an interval: machine busy time minus
 * the runner's, its finished children's (load tools) and its live servers'.
 */
export class OtherCpu {
  constructor(private readonly livePids: () => number[]) {}

  private ours(): number {
    let total = selfAndReapedChildrenMicros();
    for (const pid of this.livePids()) {
      try {
        total += cpuMicros(pid);
      } catch {
        /* exited meanwhile */
      }
    }
    return total;
  }

  /** Start an interval; the returned function ends it and gives the others' CPU in µs and the wall time in µs. */
  start(): () => { otherUs: number; wallUs: number } {
    const busy = machineBusyMicros();
    const ours = this.ours();
    const t0 = performance.now();
    return () => ({
      otherUs: Math.max(0, machineBusyMicros() - busy - (this.ours() - ours)),
      wallUs: (performance.now() - t0) * 1000,
    });
  }
}
