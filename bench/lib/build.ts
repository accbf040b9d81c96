/**
 * Compile the servers to plain JS before a run (the default runtime): production runs the
 * gateway from tsc's output, and tsx's loader costs the gateway's hot path a great deal more
 * than the peers', whose hot code is already JS in node_modules.
 *
 * Output goes to bench/results/build/ (gitignored), inside the project so that compiled files
 * resolve packages from its node_modules. tsc runs incrementally: unchanged sources take
 * about a second. Type errors do not stop the run (tsc still emits); they are noted.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT, distRuntime, type NodeRuntime } from "./proc.js";

const BUILD_DIR = join(PROJECT_ROOT, "bench/results/build");
const TSC = join(PROJECT_ROOT, "node_modules/typescript/bin/tsc");

function tsc(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSC, ...args], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (output += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (output += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
}

function summarize(output: string): string {
  const errors = output.split("\n").filter((line) => /error TS\d+/.test(line));
  return `${errors.length} type error(s), e.g. ${errors[0]?.trim() ?? output.trim().split("\n")[0]}`;
}

/** Compile this project (src, gen, bench) and, if given, another checkout's gateway; return the runtime. */
export async function buildDistRuntime(gatewayRoot: string | undefined, note: (text: string) => void): Promise<NodeRuntime> {
  const projectOut = join(BUILD_DIR, "project");
  const project = await tsc(["-p", join(PROJECT_ROOT, "bench/tsconfig.build.json")]);
  if (project.code !== 0) note(`tsc (this project) reported problems but emitted JS: ${summarize(project.output)}`);
  for (const needed of ["src/main.js", "bench/servers/grpc-js-server.js", "bench/servers/die-with-parent.js", "bench/servers/gc-meter.js"]) {
    if (!existsSync(join(projectOut, needed))) throw new Error(`the build produced no ${needed}:\n${project.output.slice(-3000)}`);
  }
  let gatewayOut = projectOut;
  if (gatewayRoot) {
    gatewayOut = join(BUILD_DIR, "gateway-root");
    const config = join(gatewayRoot, "tsconfig.build.json");
    if (!existsSync(config)) throw new Error(`--gateway-root: no ${config} to compile the gateway with (or use --runtime=tsx)`);
    const other = await tsc([
      "-p", config,
      "--outDir", gatewayOut,
      "--sourceMap", "false",
      "--incremental", "--tsBuildInfoFile", join(BUILD_DIR, "gateway-root.tsbuildinfo"),
    ]);
    if (other.code !== 0) note(`tsc (--gateway-root) reported problems but emitted JS: ${summarize(other.output)}`);
    if (!existsSync(join(gatewayOut, "src/main.js"))) throw new Error(`the --gateway-root build produced no src/main.js:\n${other.output.slice(-3000)}`);
  }
  return distRuntime(projectOut, gatewayOut, gatewayRoot ?? PROJECT_ROOT);
}
