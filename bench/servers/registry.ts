/**
 * The servers under test, each started as its own child process so that /proc/<pid> measures
 * only it. To add a server (for example the gateway proxying to a grpc-js upstream), add a
 * ServerSpec here: the cases pick servers by the protocols they serve.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as net from "node:net";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { spawnGateway, spawnNode, stopChild, tailOf } from "../lib/proc.js";

/** A way to reach a server: the load tools and the probes need the HTTP version with the URL. */
export type Protocol = "grpc" | "grpc-web" | "connect-h2" | "connect-h1";

export interface Endpoint {
  url: string;
  httpVersion: "1.1" | "2";
}

export interface RunningServer {
  spec: ServerSpec;
  pid: number;
  endpoint(protocol: Protocol): Endpoint | undefined;
  /** Last lines of the server's stderr (for error messages). */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
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

/** One real client call (connect-node's own gRPC or Connect client), retried until it works. */
async function untilAnswering(transport: Transport, child: ChildProcess, stderr: () => string, timeoutMs: number): Promise<void> {
  const client = createClient(GreeterService, transport);
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.signalCode ?? child.exitCode}) during start-up\n${stderr()}`);
    }
    try {
      // No timeoutMs: a deadline header is part of what is being probed elsewhere, not here.
      const reply = await client.greet({ name: "probe" }, { signal: AbortSignal.timeout(2000) });
      if (reply.greeting !== "Hello, probe!") throw new Error(`unexpected greeting ${JSON.stringify(reply.greeting)}`);
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

/** The real connect-gateway: src/main.ts (compiled, or through tsx), every protocol on one port. */
function gatewaySpec(id: string, env: Record<string, string>, description: string): ServerSpec {
  const spec: ServerSpec = {
    id,
    description,
    protocols: ["grpc", "grpc-web", "connect-h2", "connect-h1"],
    async start(options = {}) {
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
        await untilAnswering(createGrpcTransport({ baseUrl: url }), child, stderr, START_TIMEOUT_MS);
      } catch (error) {
        await stopChild(child, 500);
        throw error;
      }
      const h2: Endpoint = { url, httpVersion: "2" };
      return running(spec, child, stderr, { grpc: h2, "grpc-web": h2, "connect-h2": h2, "connect-h1": { url, httpVersion: "1.1" } });
    },
  };
  return spec;
}

const grpcJsSpec: ServerSpec = {
  id: "grpc-js",
  description: "plain @grpc/grpc-js server, same implementations, protobuf-es (de)serialisation",
  protocols: ["grpc"],
  async start(options = {}) {
    const child = spawnNode("bench/servers/grpc-js-server.ts", ["0"], { nodeFlags: options.nodeFlags, stdio: ["ignore", "pipe", "pipe"] });
    const stderr = tailOf(child);
    try {
      const [port] = await readyLine(child, stderr, START_TIMEOUT_MS);
      const url = `http://127.0.0.1:${port}`;
      await untilAnswering(createGrpcTransport({ baseUrl: url }), child, stderr, START_TIMEOUT_MS);
      return running(grpcJsSpec, child, stderr, { grpc: { url, httpVersion: "2" } });
    } catch (error) {
      await stopChild(child, 500);
      throw error;
    }
  },
};

const connectNodeSpec: ServerSpec = {
  id: "connect-node",
  description: "bare connect-node (stock): connectNodeAdapter on http2.createServer + http.createServer",
  protocols: ["grpc", "grpc-web", "connect-h2", "connect-h1"],
  async start(options = {}) {
    const child = spawnNode("bench/servers/connect-node-server.ts", ["0", "0"], { nodeFlags: options.nodeFlags, stdio: ["ignore", "pipe", "pipe"] });
    const stderr = tailOf(child);
    try {
      const [h2Port, h1Port] = await readyLine(child, stderr, START_TIMEOUT_MS);
      const h2: Endpoint = { url: `http://127.0.0.1:${h2Port}`, httpVersion: "2" };
      const h1: Endpoint = { url: `http://127.0.0.1:${h1Port}`, httpVersion: "1.1" };
      await untilAnswering(createGrpcTransport({ baseUrl: h2.url }), child, stderr, START_TIMEOUT_MS);
      await untilAnswering(createConnectTransport({ baseUrl: h1.url, httpVersion: "1.1" }), child, stderr, START_TIMEOUT_MS);
      return running(connectNodeSpec, child, stderr, { grpc: h2, "grpc-web": h2, "connect-h2": h2, "connect-h1": h1 });
    } catch (error) {
      await stopChild(child, 500);
      throw error;
    }
  },
};

/** Every server, in the order rows are printed. Ratios are taken against PEERS. */
export const SERVERS: readonly ServerSpec[] = [
  gatewaySpec("gateway", { GATEWAY_LOG_LEVEL: "silent" }, "connect-gateway, GATEWAY_LOG_LEVEL=silent (default interceptor chain, logger a no-op)"),
  gatewaySpec("gateway+log", { GATEWAY_LOG_LEVEL: "info" }, "connect-gateway, GATEWAY_LOG_LEVEL=info, stdout to /dev/null (default interceptors doing their work)"),
  grpcJsSpec,
  connectNodeSpec,
  // Opt-in (--servers=...): the gateway with its unary fast path switched off.
  gatewaySpec("gateway-nofast", { GATEWAY_LOG_LEVEL: "silent", GATEWAY_FAST_PATH: "false" }, "connect-gateway, GATEWAY_FAST_PATH=false, log silent (every call through connect-node)"),
];

/** Servers a case uses unless --servers names others. */
export const DEFAULT_SERVERS = ["gateway", "gateway+log", "grpc-js", "connect-node"] as const;

/** The ids of the peers the ratio columns compare against. */
export const PEERS = { grpcJs: "grpc-js", connectNode: "connect-node" } as const;
