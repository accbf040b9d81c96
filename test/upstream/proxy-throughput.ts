/**
 * Throughput of the upstream proxy against calling the upstream directly, same load, same run.
 *
 *   npx tsx test/upstream/proxy-throughput.ts [seconds-per-case]
 *
 * One grpc-js upstream (test/support/upstream-server.ts) and the gateway (src/main.ts, default
 * log level) run as separate processes; h2load drives every case with the same concurrency
 * (64 calls in flight). Cases: unary gRPC straight to the upstream; through the gateway relayed
 * byte for byte (pass-through); through the gateway transcoded (pass-through off); Connect JSON
 * over HTTP/1.1 (curl's protocol) through the gateway, which is always transcoded. Prints
 * requests per second and each case's ratio to the direct case, and the CPU time the gateway
 * and the upstream processes spent per call (steadier than req/s on a shared machine).
 * Loopback only, self-stopping.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema } from "../../gen/test/upstream/v1/echo_pb.js";
import { UpstreamProcess } from "../support/upstream-fleet.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const seconds = Number(process.argv[2] ?? 5);
const dir = mkdtempSync(join(tmpdir(), "gateway-proxy-bench-"));
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
};
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));

const PATH = "/test.upstream.v1.EchoService/Echo";
const message = toBinary(EchoRequestSchema, create(EchoRequestSchema, { text: "hello, upstream" }));
const grpcBody = join(dir, "grpc.bin");
const envelope = Buffer.alloc(5 + message.length);
envelope.writeUInt32BE(message.length, 1);
envelope.set(message, 5);
writeFileSync(grpcBody, envelope);
const jsonBody = join(dir, "json.txt");
writeFileSync(jsonBody, JSON.stringify({ text: "hello, upstream" }));

async function startGatewayProcess(upstream: string, passthrough: boolean): Promise<{ port: number; child: ChildProcess }> {
  const configFile = join(dir, `gateway-${passthrough}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      host: "127.0.0.1",
      port: 0,
      upstreams: { routes: [{ match: "test.upstream.v1.EchoService", target: upstream, descriptors: "reflection", passthrough }] },
    }),
  );
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: root,
    env: { ...process.env, GATEWAY_CONFIG_FILE: configFile },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const listening = /"msg":"listening"/.test(out) && /"port":(\d+)/.exec(out.slice(out.indexOf('"msg":"listening"') - 200));
      if (listening) {
        // Keep draining the access log so the gateway never blocks on a full pipe.
        child.stdout!.off("data", onData).resume();
        resolve(Number(listening[1]));
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`gateway exited with ${code}`)));
  });
  return { port, child };
}

interface LoadCase {
  name: string;
  url: string;
  h1: boolean;
  /** The gateway process serving it (none for the direct case). */
  gateway?: ChildProcess;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(child: ChildProcess | undefined): number {
  if (child?.pid === undefined) return 0;
  const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function h2load(load: LoadCase): Promise<{ rps: number; requests: number }> {
  const args = ["-t", "1", "-D", String(seconds), "--warm-up-time=1"];
  if (load.h1) args.push("--h1", "-c", "64", "-m", "1", "-d", jsonBody, "-H", "content-type: application/json");
  else args.push("-c", "4", "-m", "16", "-d", grpcBody, "-H", "content-type: application/grpc", "-H", "te: trailers");
  args.push(load.url);
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    child.once("exit", () => {
      const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
      const done = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
      if (!rps || !done || Number(done[3]) + Number(done[4]) > 0) reject(new Error(`h2load ${args.join(" ")} failed:\n${out}`));
      else resolve({ rps: Number(rps[1]), requests: Number(done[1]) });
    });
  });
}

async function main(): Promise<void> {
  const upstream = await new UpstreamProcess({ id: "bench" }).start();
  children.push(upstream.child!);
  const passthrough = await startGatewayProcess(upstream.address, true);
  const transcoding = await startGatewayProcess(upstream.address, false);
  const cases: LoadCase[] = [
    { name: "gRPC direct to the upstream", url: `http://${upstream.address}${PATH}`, h1: false },
    { name: "gRPC via gateway, pass-through", url: `http://127.0.0.1:${passthrough.port}${PATH}`, h1: false, gateway: passthrough.child },
    { name: "gRPC via gateway, transcoded", url: `http://127.0.0.1:${transcoding.port}${PATH}`, h1: false, gateway: transcoding.child },
    { name: "Connect JSON (HTTP/1.1) via gateway", url: `http://127.0.0.1:${transcoding.port}${PATH}`, h1: true, gateway: transcoding.child },
  ];
  const results: Array<{ name: string; rps: number; gatewayUs: number; upstreamUs: number }> = [];
  const measure = async (load: LoadCase, name = load.name) => {
    const before = [cpuSeconds(load.gateway), cpuSeconds(upstream.child)];
    const { rps, requests } = await h2load(load);
    const perCall = (child: ChildProcess | undefined, start: number) => ((cpuSeconds(child) - start) / requests) * 1e6;
    results.push({ name, rps, gatewayUs: perCall(load.gateway, before[0]), upstreamUs: perCall(upstream.child, before[1]) });
  };
  for (const load of cases) await measure(load);
  // The direct case once more, last: shows how much the machine drifted during the run.
  await measure(cases[0], "gRPC direct to the upstream (again)");
  const direct = (results[0].rps + results[results.length - 1].rps) / 2;
  console.log(`\n${seconds}s per case, 64 calls in flight, unary Echo; ratio = req/s ÷ mean direct req/s`);
  console.log("CPU µs per call, including warm-up calls (so slightly high)\n");
  console.log(`${"case".padEnd(40)} ${"req/s".padStart(8)}  ratio  gateway µs  upstream µs`);
  for (const { name, rps, gatewayUs, upstreamUs } of results) {
    console.log(
      `${name.padEnd(40)} ${rps.toFixed(0).padStart(8)}  ${(rps / direct).toFixed(2).padStart(5)}  ${gatewayUs.toFixed(0).padStart(10)}  ${upstreamUs.toFixed(0).padStart(11)}`,
    );
  }
  console.log(
    `\npass-through vs transcoded (gRPC): ${(results[1].rps / results[2].rps).toFixed(2)}×`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
