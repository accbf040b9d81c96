import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "./grpc-js-client.js";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
const serverScript = "test/support/upstream-server.ts";

export interface UpstreamOptions {
  id: string;
  host?: string;
  /** 0 picks a free port; a restart reuses the port first bound. */
  port?: number;
  tls?: { certFile: string; keyFile: string };
  /** Added to every Echo: a slow replica. */
  delayMs?: number;
}

/** One grpc-js upstream server running as a child process. */
export class UpstreamProcess {
  child: ChildProcess | undefined;
  port = 0;
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly options: UpstreamOptions) {}

  get host(): string {
    return this.options.host ?? "127.0.0.1";
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Start the process (again, on the same port after a kill) and wait until it listens. */
  async start(): Promise<this> {
    const port = this.port || this.options.port || 0;
    const args = ["--import", "tsx", serverScript, "--id", this.options.id, "--host", this.host, "--port", String(port)];
    if (this.options.delayMs) args.push("--delay-ms", String(this.options.delayMs));
    if (this.options.tls) args.push("--tls-cert", this.options.tls.certFile, "--tls-key", this.options.tls.keyFile);
    const child = spawn(process.execPath, args, { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`upstream ${this.options.id} did not start: ${stderr}`));
      }, 20_000);
      let out = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const ready = /READY (\d+)/.exec(out);
        if (ready) {
          clearTimeout(timer);
          resolve(Number(ready[1]));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`upstream ${this.options.id} exited with ${code}: ${stderr}`));
      });
    });
    return this;
  }

  /** Kill the process at once (SIGKILL: no goodbye to open connections) and wait for it to be gone. */
  async kill(): Promise<void> {
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}

/** Start several upstreams in parallel. */
export async function startUpstreams(options: UpstreamOptions[]): Promise<UpstreamProcess[]> {
  return Promise.all(options.map((o) => new UpstreamProcess(o).start()));
}

/** A grpc-js client talking to one upstream directly (bypassing the gateway), e.g. for Inspect. */
export function directClient(address: string): GenericGrpcClient {
  return createGrpcJsClient(address, grpcServiceDefinition(EchoService), "EchoService");
}

/** What an upstream recorded about calls with `tag`. */
export async function inspect(address: string, tag: string) {
  const client = directClient(address);
  try {
    const outcome = await grpcUnary(client, EchoService.method.inspect, { tag });
    if (outcome.status.code !== grpc.status.OK) throw new Error(`inspect failed: ${outcome.status.details}`);
    return outcome.messages[0];
  } finally {
    client.close();
  }
}
