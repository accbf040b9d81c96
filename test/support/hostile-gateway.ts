import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { HostStats } from "./hostile-gateway-host.js";

export type { HostStats };
const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The gateway in a child process (see hostile-gateway-host.ts), with its stats over IPC. */
export interface IsolatedGateway {
  child: ChildProcess;
  port: number;
  url: string;
  stats(options?: { gc?: boolean }): Promise<HostStats>;
  /** Wait until `done` holds (default: no call in flight, no connection open) or the time is up; returns the last stats. */
  settle(timeoutMs: number, done?: (stats: HostStats) => boolean): Promise<HostStats>;
  /** Whether the process is still alive. */
  alive(): boolean;
  stop(): Promise<void>;
}

/** Start the gateway on 127.0.0.1 and a free port, configured by GATEWAY_* variables. */
export async function startIsolatedGateway(env: Record<string, string> = {}): Promise<IsolatedGateway> {
  const child = fork("test/support/hostile-gateway-host.ts", [], {
    cwd: projectRoot,
    execArgv: ["--expose-gc", "--import", "tsx"],
    env: { ...process.env, GATEWAY_HOST: "127.0.0.1", GATEWAY_PORT: "0", ...env },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start: ${stderr}`));
    }, 20_000);
    child.on("message", (message: { type: string; port?: number }) => {
      if (message.type === "listening") {
        clearTimeout(timer);
        resolve(message.port!);
      }
    });
    void exit.then(() => reject(new Error(`gateway exited before listening: ${stderr}`)));
  });
  let nextId = 0;
  const stats = (options: { gc?: boolean } = {}) =>
    new Promise<HostStats>((resolve, reject) => {
      if (exited) return reject(new Error(`gateway process is gone: ${stderr}`));
      const id = ++nextId;
      const timer = setTimeout(() => reject(new Error("gateway did not answer a stats request in 5 s")), 5_000);
      const onMessage = (message: { type: string; id: number; stats: HostStats }) => {
        if (message.type !== "stats" || message.id !== id) return;
        clearTimeout(timer);
        child.off("message", onMessage);
        resolve(message.stats);
      };
      child.on("message", onMessage);
      child.send({ type: "stats", id, gc: options.gc });
    });
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    async settle(timeoutMs, done = (s) => s.inFlight === 0 && s.connections === 0) {
      const deadline = Date.now() + timeoutMs;
      let last = await stats({ gc: true });
      while (!done(last) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        last = await stats({ gc: true });
      }
      return last;
    },
    alive: () => !exited,
    async stop() {
      if (exited) return;
      child.send({ type: "shutdown" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
