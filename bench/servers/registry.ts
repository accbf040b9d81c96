/**
 * The servers under test, each started as its own child process so that /proc/<pid> measures
 * only it. To add a server, add a ServerSpec here: the cases pick servers by the protocols they
 * serve (or name them).
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { EchoService, file_test_upstream_v1_echo } from "../../gen/test/upstream/v1/echo_pb.js";
import { UPSTREAM_STREAM_TABLES_ENV } from "./upstream-stream-tables.js";
import { GATEWAY_ALLOCATOR, assertPreloaded, findGatewayAllocator, spawnGateway, spawnNode, spawnTracked, stopChild, tailOf } from "../lib/proc.js";

/** A way to reach a server: the load tools and the probes need the HTTP version with the URL. */
export type Protocol = "grpc" | "grpc-web" | "connect-h2" | "connect-h1";

export interface Endpoint {
  url: string;
  httpVersion: "1.1" | "2";
}

export interface RunningServer {
  spec: ServerSpec;
  pid: number;
  /**
   * The proxy cases: the pid of the upstream the calls end at (the echo upstream, for its own
   * direct row too), whose garbage collection the runner reads per round beside the server's.
   */
  upstreamPid?: number;
  endpoint(protocol: Protocol): Endpoint | undefined;
  /** Last lines of the server's stderr (for error messages). */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** The proxy cases' echo upstream gets the gateway's stream tables (the runner's --upstream-stream-tables). */
  upstreamStreamTables?: boolean;
}

export interface ServerSpec {
  id: string;
  description: string;
  protocols: readonly Protocol[];
  start(options?: StartOptions): Promise<RunningServer>;
}

/** A free loopback port (the gateway listens on its configured port, so one is picked for it). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Wait for a "READY ..." line on a child's stdout and return its words. */
function readyLine(child: ChildProcess, stderr: () => string, timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`not ready within ${timeoutMs} ms\n${stderr()}`)), timeoutMs);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      buffered += chunk;
      const match = /^READY (.*)$/m.exec(buffered);
      if (match) {
        clearTimeout(timer);
        resolve(match[1].trim().split(/\s+/));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`exited (${signal ?? code}) before it was ready\n${stderr()}`));
    });
  });
}

/** A real client call that resolves when the server answered it correctly. */
type Probe = (transport: Transport, signal: AbortSignal) => Promise<void>;

const greetProbe: Probe = async (transport, signal) => {
  const reply = await createClient(GreeterService, transport).greet({ name: "probe" }, { signal });
  if (reply.greeting !== "Hello, probe!") throw new Error(`unexpected greeting ${JSON.stringify(reply.greeting)}`);
};

const echoProbe: Probe = async (transport, signal) => {
  const reply = await createClient(EchoService, transport).echo({ text: "probe" }, { signal });
  if (reply.text !== "probe") throw new Error(`unexpected echo ${JSON.stringify(reply.text)}`);
};

/** One real client call (connect-node's own gRPC or Connect client), retried until it works. */
async function untilAnswering(transport: Transport, child: ChildProcess, stderr: () => string, timeoutMs: number, probe: Probe = greetProbe): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.signalCode ?? child.exitCode}) during start-up\n${stderr()}`);
    }
    try {
      // No timeoutMs: a deadline header is part of what is being probed elsewhere, not here.
      await probe(transport, AbortSignal.timeout(2000));
      return;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`no answer within ${timeoutMs} ms: ${String(lastError)}\n${stderr()}`);
}

function running(spec: ServerSpec, child: ChildProcess, stderr: () => string, endpoints: Partial<Record<Protocol, Endpoint>>): RunningServer {
  return {
    spec,
    pid: child.pid!,
    endpoint: (protocol) => endpoints[protocol],
    stderrTail: stderr,
    stop: (graceMs = 3000) => stopChild(child, graceMs),
  };
}

const START_TIMEOUT_MS = 30_000;

/**
 * Spawn a benchmark server script that prints "READY <ports…>", then hand its words to `ready`,
 * which probes it and returns what the caller keeps; the child is stopped if either step fails.
 */
async function startScript<T>(
  script: string,
  args: string[],
  options: { nodeFlags?: string[]; env?: NodeJS.ProcessEnv },
  ready: (words: string[], child: ChildProcess, stderr: () => string) => Promise<T>,
): Promise<T> {
  const child = spawnNode(script, args, { nodeFlags: options.nodeFlags, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  const stderr = tailOf(child);
  try {
    return await ready(await readyLine(child, stderr, START_TIMEOUT_MS), child, stderr);
  } catch (error) {
    await stopChild(child, 500);
    throw error;
  }
}

/** The real connect-gateway: src/main.ts (compiled, or through tsx), every protocol on one port. */
function gatewaySpec(id: string, env: Record<string, string>, description: string, nodeFlags: readonly string[] = []): ServerSpec {
  const spec: ServerSpec = {
    id,
    description,
    protocols: ["grpc", "grpc-web", "connect-h2", "connect-h1"],
    async start(options = {}) {
      const { child, stderr, url } = await startGateway(env, withNodeFlags(options, nodeFlags), greetProbe);
      const h2: Endpoint = { url, httpVersion: "2" };
      return running(spec, child, stderr, { grpc: h2, "grpc-web": h2, "connect-h2": h2, "connect-h1": { url, httpVersion: "1.1" } });
    },
  };
  return spec;
}

/** The start options with `nodeFlags` added to those the run passes (--node-flags). */
function withNodeFlags(options: StartOptions, nodeFlags: readonly string[]): StartOptions {
  return nodeFlags.length === 0 ? options : { ...options, nodeFlags: [...(options.nodeFlags ?? []), ...nodeFlags] };
}

async function startGateway(env: Record<string, string>, options: StartOptions, probe: Probe): Promise<{ child: ChildProcess; stderr: () => string; url: string }> {
  const port = await freePort();
  const child = spawnGateway({
    nodeFlags: options.nodeFlags,
    env: { ...process.env, GATEWAY_HOST: "127.0.0.1", GATEWAY_PORT: String(port), ...env },
    // stdout (the JSON log) goes to /dev/null.
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stderr = tailOf(child);
  const url = `http://127.0.0.1:${port}`;
  try {
    await untilAnswering(createGrpcTransport({ baseUrl: url }), child, stderr, START_TIMEOUT_MS, probe);
    assertPreloaded(child.pid!);
  } catch (error) {
    await stopChild(child, 500);
    throw error;
  }
  return { child, stderr, url };
}

// ── The proxy path: client → gateway → @grpc/grpc-js upstream, next to the direct call to the
// same upstream process. The direct and the proxied specs share ONE upstream child, started by
// whichever starts first and stopped when the last of them stops.

const ECHO_UPSTREAM_ID = "echo-upstream";
let echoUpstream: { users: number; streamTables: boolean; ready: Promise<{ child: ChildProcess; stderr: () => string; port: number }> } | undefined;

/** The shared echo upstream, started on first use; `release` stops it after its last user. */
async function acquireEchoUpstream(options: StartOptions): Promise<{ child: ChildProcess; stderr: () => string; port: number; release(graceMs: number): Promise<void> }> {
  if (echoUpstream === undefined) {
    // Its profile goes to its own folder whichever spec starts it, so a --cpu-prof run has one
    // main-thread profile per folder.
    const nodeFlags = options.nodeFlags?.map((flag) =>
      flag.startsWith("--cpu-prof-dir=") ? `--cpu-prof-dir=${join(dirname(flag.slice("--cpu-prof-dir=".length)), ECHO_UPSTREAM_ID)}` : flag,
    );
    const ready = (async () => {
      // Set or cleared here, never inherited: a variable left in the shell must not turn it on unannounced.
      const env = { ...process.env, [UPSTREAM_STREAM_TABLES_ENV]: options.upstreamStreamTables ? "1" : undefined };
      return startScript("bench/servers/echo-upstream-server.ts", ["0"], { nodeFlags, env }, async ([port], child, stderr) => {
        await untilAnswering(createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }), child, stderr, START_TIMEOUT_MS, echoProbe);
        return { child, stderr, port: Number(port) };
      });
    })();
    echoUpstream = { users: 0, streamTables: options.upstreamStreamTables ?? false, ready };
    ready.catch(() => (echoUpstream = undefined));
  }
  const shared = echoUpstream;
  if (shared.streamTables !== (options.upstreamStreamTables ?? false)) {
    throw new Error(`the shared echo upstream already runs ${shared.streamTables ? "with" : "without"} the gateway's stream tables`);
  }
  const upstream = await shared.ready;
  shared.users++;
  let released = false;
  return {
    ...upstream,
    async release(graceMs) {
      if (released) return;
      released = true;
      if (--shared.users > 0) return;
      if (echoUpstream === shared) echoUpstream = undefined;
      await stopChild(upstream.child, graceMs);
    },
  };
}

/** The echo upstream itself: the direct call the proxied rows are compared with. */
const echoUpstreamSpec: ServerSpec = {
  id: ECHO_UPSTREAM_ID,
  description: "the proxy cases' upstream called directly: plain @grpc/grpc-js, test.upstream.v1.EchoService/Echo (servers/echo-upstream-server.ts)",
  protocols: ["grpc"],
  async start(options = {}) {
    const upstream = await acquireEchoUpstream(options);
    const url = `http://127.0.0.1:${upstream.port}`;
    return {
      spec: echoUpstreamSpec,
      pid: upstream.child.pid!,
      upstreamPid: upstream.child.pid!,
      endpoint: (protocol) => (protocol === "grpc" ? { url, httpVersion: "2" } : undefined),
      stderrTail: upstream.stderr,
      stop: (graceMs = 3000) => upstream.release(graceMs),
    };
  },
};

let scratchDir: string | undefined;
/** A folder for the proxy gateways' config files and descriptor image, removed at exit. */
function scratch(): string {
  if (scratchDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "connect-gateway-bench-proxy-"));
    scratchDir = dir;
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return scratchDir;
}

/** A Buf image (binary FileDescriptorSet) of echo.proto and its imports, for the route's descriptors. */
function echoImage(): string {
  const files: DescFile[] = [];
  const add = (file: DescFile) => {
    if (files.includes(file)) return;
    for (const dependency of file.dependencies) add(dependency);
    files.push(file);
  };
  add(file_test_upstream_v1_echo);
  const path = join(scratch(), "echo.binpb");
  writeFileSync(path, toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files.map((f) => f.proto) })));
  return path;
}

/** A proxy (gRPC over h2c at `url`) in front of the shared echo upstream; stopping it releases the upstream. */
function runningProxy(
  spec: ServerSpec,
  child: ChildProcess,
  stderr: () => string,
  url: string,
  upstream: { child: ChildProcess; release(graceMs: number): Promise<void> },
): RunningServer {
  const proxy = running(spec, child, stderr, { grpc: { url, httpVersion: "2" } });
  return {
    ...proxy,
    upstreamPid: upstream.child.pid!,
    async stop(graceMs = 3000) {
      await proxy.stop(graceMs);
      await upstream.release(graceMs);
    },
  };
}

/** The gateway with one route, test.upstream.v1.EchoService → the shared echo upstream; its pid is the gateway's alone. */
function gatewayProxySpec(
  id: string,
  routeOptions: { passthrough: boolean; passthroughClient?: "gateway" | "node" },
  description: string,
  env: Record<string, string> = {},
  nodeFlags: readonly string[] = [],
): ServerSpec {
  const spec: ServerSpec = {
    id,
    description,
    protocols: ["grpc"],
    async start(options = {}) {
      const upstream = await acquireEchoUpstream(options);
      try {
        const configFile = join(scratch(), `${id}.json`);
        const { passthrough, passthroughClient } = routeOptions;
        const route = { match: EchoService.typeName, target: `127.0.0.1:${upstream.port}`, passthrough, ...(passthroughClient && { connection: { passthroughClient } }) };
        writeFileSync(configFile, JSON.stringify({ upstreams: { images: [echoImage()], routes: [route] } }));
        const { child, stderr, url } = await startGateway({ GATEWAY_LOG_LEVEL: "silent", GATEWAY_CONFIG_FILE: configFile, ...env }, withNodeFlags(options, nodeFlags), echoProbe);
        return runningProxy(spec, child, stderr, url, upstream);
      } catch (error) {
        await upstream.release(500);
        throw error;
      }
    },
  };
  return spec;
}

/**
 * The floor of the proxy cases: a minimal forwarder on node:http2 alone (one shared upstream
 * session, bodies read whole, headers and trailers relayed as they came) → the shared echo
 * upstream. Its pid is the forwarder's alone, as the gateway-proxy rows measure the gateway's.
 */
const nodeHttp2ProxySpec: ServerSpec = {
  id: "node-http2-proxy",
  description: "floor: a minimal gRPC forwarder on node:http2 alone → echo-upstream, one shared upstream session (servers/node-http2-proxy-server.ts)",
  protocols: ["grpc"],
  start: (options = {}) =>
    startForwarder(nodeHttp2ProxySpec, options, (upstreamPort) => {
      const child = spawnNode("bench/servers/node-http2-proxy-server.ts", ["0", String(upstreamPort)], { nodeFlags: options.nodeFlags, stdio: ["ignore", "pipe", "pipe"] });
      const stderr = tailOf(child);
      const url = readyLine(child, stderr, START_TIMEOUT_MS).then(([port]) => `http://127.0.0.1:${port}`);
      return { child, stderr, url };
    }),
};

/** A forwarder as `launch` started it: where it will listen once ready. */
interface LaunchedForwarder {
  child: ChildProcess;
  stderr: () => string;
  url: Promise<string> | string;
}

/**
 * Start a forwarder in front of the shared echo upstream: `launch` spawns it, given the
 * upstream's port; it is then probed with a real call, and stopped (and the upstream released)
 * if it does not answer.
 */
async function startForwarder(spec: ServerSpec, options: StartOptions, launch: (upstreamPort: number) => LaunchedForwarder): Promise<RunningServer> {
  const upstream = await acquireEchoUpstream(options);
  try {
    const { child, stderr, url: ready } = launch(upstream.port);
    try {
      const url = await ready;
      await untilAnswering(createGrpcTransport({ baseUrl: url }), child, stderr, START_TIMEOUT_MS, echoProbe);
      return runningProxy(spec, child, stderr, url, upstream);
    } catch (error) {
      await stopChild(child, 500);
      throw error;
    }
  } catch (error) {
    await upstream.release(500);
    throw error;
  }
}

/** The native reference's id; the runner leaves it out, with a note, where nghttpx is missing. */
export const NGHTTPX_PROXY_ID = "nghttpx-proxy";
/** The Debian package that has nghttpx, for the runner's note. */
export const NGHTTPX_PACKAGE = "nghttp2-proxy";

/** A program's path: on PATH, or in /usr/sbin (where Debian puts nghttpx, off a normal user's PATH). */
function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":").filter((dir) => dir !== ""), "/usr/sbin", "/sbin"];
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

/** What the native reference needs: nghttpx, and util-linux's setpriv to tie it to the runner. */
export function nghttpxPrograms(): { nghttpx: string; setpriv: string } | undefined {
  const nghttpx = findProgram("nghttpx");
  const setpriv = findProgram("setpriv");
  return nghttpx && setpriv ? { nghttpx, setpriv } : undefined;
}

/**
 * The native reference of the proxy cases: nghttpx, nghttp2's reverse proxy in C++ (another
 * build of the nghttp2 library that Node's http2 module wraps), in front of the shared echo
 * upstream. One process and one thread like the gateway's JavaScript, gRPC relayed to the
 * upstream over h2c, no Via header, no access log (off unless a log file is named). What it
 * reaches suggests what a proxy not written in JavaScript gets on this host.
 */
const nghttpxProxySpec: ServerSpec = {
  id: NGHTTPX_PROXY_ID,
  description: `native reference: nghttpx (nghttp2's C++ reverse proxy, Debian package ${NGHTTPX_PACKAGE}), one process and one thread → echo-upstream over h2c`,
  protocols: ["grpc"],
  async start(options = {}) {
    const programs = nghttpxPrograms();
    if (programs === undefined) throw new Error(`nghttpx or setpriv not found: apt-get install -y ${NGHTTPX_PACKAGE} util-linux`);
    // nghttpx takes its port on the command line: one found free a moment before, which another
    // server starting beside it may take first (it happened in one run of 2026-12-07). Then try another.
    for (let attempt = 1; ; attempt++) {
      try {
        return await startNghttpx(programs, options);
      } catch (error) {
        if (attempt === 3 || !String(error).includes("Address already in use")) throw error;
      }
    }
  },
};

/** nghttpx on a free port, forwarding to the shared echo upstream. */
async function startNghttpx(programs: { nghttpx: string; setpriv: string }, options: StartOptions): Promise<RunningServer> {
  const port = await freePort();
  return startForwarder(nghttpxProxySpec, options, (upstreamPort) => {
    // setpriv: nghttpx cannot load die-with-parent.ts, so the kernel kills it if the runner dies.
    const child = spawnTracked(
      programs.setpriv,
      [
        "--pdeathsig", "KILL", programs.nghttpx,
        // Not /etc/nghttpx/nghttpx.conf, whatever the machine has there.
        "--conf=/dev/null",
        "--single-process", "--single-thread",
        `--frontend=127.0.0.1,${port};no-tls`,
        `--backend=127.0.0.1,${upstreamPort};;proto=h2`,
        "--no-via", "--no-ocsp",
        "--errorlog-file=/dev/stderr", "--log-level=WARN",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    // A failed spawn is reported as 'error' (unheard, it would end the runner); the readiness
    // probe then fails, quoting it.
    let spawnError = "";
    child.once("error", (error) => (spawnError = `${error.message}\n`));
    const tail = tailOf(child);
    return { child, stderr: () => spawnError + tail(), url: `http://127.0.0.1:${port}` };
  });
}

/** A plain @grpc/grpc-js server of the same implementations; `preload`: a library to LD_PRELOAD into it. */
function grpcJsServerSpec(id: string, description: string, preload?: () => string | undefined): ServerSpec {
  const spec: ServerSpec = {
    id,
    description,
    protocols: ["grpc"],
    async start(options = {}) {
      const library = preload?.();
      if (preload && !library) throw new Error(`${id}: ${GATEWAY_ALLOCATOR.library} not found (Debian package ${GATEWAY_ALLOCATOR.debianPackage})`);
      const env = library ? { ...process.env, LD_PRELOAD: library } : process.env;
      return startScript("bench/servers/grpc-js-server.ts", ["0"], { nodeFlags: options.nodeFlags, env }, async ([port], child, stderr) => {
        const url = `http://127.0.0.1:${port}`;
        await untilAnswering(createGrpcTransport({ baseUrl: url }), child, stderr, START_TIMEOUT_MS);
        if (library) assertPreloaded(child.pid!, library);
        return running(spec, child, stderr, { grpc: { url, httpVersion: "2" } });
      });
    },
  };
  return spec;
}

/** The gRPC peer of the targets, with Node's defaults (glibc's malloc). */
const grpcJsSpec = grpcJsServerSpec("grpc-js", "plain @grpc/grpc-js server, same implementations, protobuf-es (de)serialisation");

/** The id of the gRPC peer run on the gateway's allocator: a reference, not the targets' peer. */
export const GRPC_JS_ON_GATEWAY_ALLOCATOR_ID = `grpc-js+${GATEWAY_ALLOCATOR.name}`;

const connectNodeSpec: ServerSpec = {
  id: "connect-node",
  description: "bare connect-node (stock): connectNodeAdapter on http2.createServer + http.createServer",
  protocols: ["grpc", "grpc-web", "connect-h2", "connect-h1"],
  async start(options = {}) {
    return startScript("bench/servers/connect-node-server.ts", ["0", "0"], options, async ([h2Port, h1Port], child, stderr) => {
      const h2: Endpoint = { url: `http://127.0.0.1:${h2Port}`, httpVersion: "2" };
      const h1: Endpoint = { url: `http://127.0.0.1:${h1Port}`, httpVersion: "1.1" };
      await untilAnswering(createGrpcTransport({ baseUrl: h2.url }), child, stderr, START_TIMEOUT_MS);
      await untilAnswering(createConnectTransport({ baseUrl: h1.url, httpVersion: "1.1" }), child, stderr, START_TIMEOUT_MS);
      return running(connectNodeSpec, child, stderr, { grpc: h2, "grpc-web": h2, "connect-h2": h2, "connect-h1": h1 });
    });
  },
};

/** The floor of the Connect JSON HTTP/1.1 case: Greet as Connect JSON on node:http alone. */
const nodeHttp1JsonSpec: ServerSpec = {
  id: "node-http1-json",
  description: "floor: Greet as Connect unary JSON on node:http alone, same greeter implementation (servers/node-http1-json-server.ts)",
  protocols: ["connect-h1"],
  async start(options = {}) {
    return startScript("bench/servers/node-http1-json-server.ts", ["0"], options, async ([port], child, stderr) => {
      const h1: Endpoint = { url: `http://127.0.0.1:${port}`, httpVersion: "1.1" };
      // JSON: it serves nothing else (connect-node's client defaults to binary).
      await untilAnswering(createConnectTransport({ baseUrl: h1.url, httpVersion: "1.1", useBinaryFormat: false }), child, stderr, START_TIMEOUT_MS);
      return running(nodeHttp1JsonSpec, child, stderr, { "connect-h1": h1 });
    });
  },
};

/** The id of the gRPC unary floor: Greet on node:http2 alone. */
export const NODE_HTTP2_GRPC_ID = "node-http2-grpc";

/** The floor of the gRPC unary Greet cases: Greet over gRPC on node:http2 alone, with Node's defaults like the other floors. */
const nodeHttp2GrpcSpec: ServerSpec = {
  id: NODE_HTTP2_GRPC_ID,
  description: "floor: Greet over gRPC on node:http2 alone, same greeter implementation (servers/node-http2-grpc-server.ts)",
  protocols: ["grpc"],
  async start(options = {}) {
    return startScript("bench/servers/node-http2-grpc-server.ts", ["0"], options, async ([port], child, stderr) => {
      const url = `http://127.0.0.1:${port}`;
      await untilAnswering(createGrpcTransport({ baseUrl: url }), child, stderr, START_TIMEOUT_MS);
      return running(nodeHttp2GrpcSpec, child, stderr, { grpc: { url, httpVersion: "2" } });
    });
  },
};

/** V8's default, which the gateway's shipped flags turn off: how the gateway ran before its own HTTP/2 server was the default. */
const WITH_PRETENURING = ["--allocation-site-pretenuring"];

/** Every server, in the order rows are printed. Ratios are taken against PEERS. */
export const SERVERS: readonly ServerSpec[] = [
  gatewaySpec("gateway", { GATEWAY_LOG_LEVEL: "silent" }, "connect-gateway, GATEWAY_LOG_LEVEL=silent (default interceptor chain, logger a no-op)"),
  gatewaySpec("gateway+log", { GATEWAY_LOG_LEVEL: "info" }, "connect-gateway, GATEWAY_LOG_LEVEL=info, stdout to /dev/null (default interceptors doing their work)"),
  grpcJsSpec,
  // Reference of grpc-unary-1x100 (cases.ts names it): the same peer with the allocator the
  // gateway's image preloads, so the report shows how much of the lead is the allocator's.
  grpcJsServerSpec(GRPC_JS_ON_GATEWAY_ALLOCATOR_ID, `the same @grpc/grpc-js server with ${GATEWAY_ALLOCATOR.name} preloaded (LD_PRELOAD), as the gateway's image preloads it`, findGatewayAllocator),
  connectNodeSpec,
  // Floor of the gRPC Greet cases, 1×100 and 2k-even (cases.ts names it): what node:http2's public API reaches on that call.
  nodeHttp2GrpcSpec,
  // Floor of connect-json-h1 (cases.ts names it): what node:http itself reaches on that call.
  nodeHttp1JsonSpec,
  // Opt-in (--servers=...): the gateway with its unary fast path switched off.
  gatewaySpec("gateway-nofast", { GATEWAY_LOG_LEVEL: "silent", GATEWAY_FAST_PATH: "false" }, "connect-gateway, GATEWAY_FAST_PATH=false, log silent (every call through connect-node)"),
  // Opt-in (--servers=...): the fast path on, HTTP/1.1 through node:http's request and response objects.
  gatewaySpec("gateway-nolean", { GATEWAY_LOG_LEVEL: "silent", GATEWAY_LEAN_HTTP1: "false" }, "connect-gateway, GATEWAY_LEAN_HTTP1=false, log silent (HTTP/1.1 calls through node:http's request API)"),
  // Opt-in (--servers=...): cleartext HTTP/2 served by Node's http2 server instead of the gateway's own (src/http2/server/).
  gatewaySpec("gateway-node-h2", { GATEWAY_LOG_LEVEL: "silent", GATEWAY_LEAN_HTTP2: "false" }, "connect-gateway, GATEWAY_LEAN_HTTP2=false (HTTP/2 on Node's http2 server), log silent"),
  // Opt-in (--servers=...): the same with V8's allocation-site pretenuring back on, as the gateway shipped until 2026-12-07.
  gatewaySpec(
    "gateway-node-h2-pretenuring",
    { GATEWAY_LOG_LEVEL: "silent", GATEWAY_LEAN_HTTP2: "false" },
    "connect-gateway, GATEWAY_LEAN_HTTP2=false and node's --allocation-site-pretenuring (Node's http2 server, V8's default pretenuring: as shipped until 2026-12-07), log silent",
    WITH_PRETENURING,
  ),
  // The proxy cases (cases.ts names them): the upstream directly, and through the gateway.
  echoUpstreamSpec,
  gatewayProxySpec("gateway-proxy", { passthrough: true }, "connect-gateway → echo-upstream, gRPC pass-through (frames relayed, headers rewritten) between the gateway's own HTTP/2 server and client, log silent"),
  // Floor of the proxy cases: what a forwarder on node:http2 alone reaches to the same upstream.
  nodeHttp2ProxySpec,
  // Native reference of the proxy cases: what nghttpx reaches forwarding to the same upstream.
  nghttpxProxySpec,
  // Opt-in (--servers=...): the same route with pass-through off, so gRPC is decoded and re-encoded.
  gatewayProxySpec("gateway-proxy-transcoded", { passthrough: false }, "connect-gateway → echo-upstream, pass-through off (decoded and re-encoded), log silent"),
  // Opt-in (--servers=...): the pass-through on Node's http2 client, as before the gateway had its own.
  gatewayProxySpec("gateway-proxy-node-client", { passthrough: true, passthroughClient: "node" }, "connect-gateway → echo-upstream, gRPC pass-through on Node's http2 client (connection.passthroughClient: node), log silent"),
  // Opt-in (--servers=...): the pass-through with Node's http2 server facing the clients instead of the gateway's own.
  gatewayProxySpec(
    "gateway-proxy-node-h2",
    { passthrough: true },
    "connect-gateway → echo-upstream, gRPC pass-through, GATEWAY_LEAN_HTTP2=false (Node's http2 server facing the clients), log silent",
    { GATEWAY_LEAN_HTTP2: "false" },
  ),
];

/** Servers a case uses unless --servers names others. */
export const DEFAULT_SERVERS = ["gateway", "gateway+log", "grpc-js", "connect-node"] as const;

/** The ids of the peers the ratio columns compare against. */
export const PEERS = { grpcJs: "grpc-js", connectNode: "connect-node" } as const;
