import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { GcProbeReading } from "./gc-probe.js";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** A bare node:http2 server in a child process (see stream-churn-host.ts). */
export interface StreamChurnServer {
  url: string;
  /** The server's GC probe, optionally after a forced full collection. */
  readGc(options?: { collectFirst?: boolean }): Promise<GcProbeReading>;
  stop(): Promise<void>;
}

/** Start the bare server with Node's stream tables or the gateway's GC-friendly ones. */
export async function startStreamChurnServer(tables: "node" | "gc-friendly"): Promise<StreamChurnServer> {
  const child = fork("test/support/stream-churn-host.ts", [], {
    cwd: projectRoot,
    execArgv: ["--expose-gc", "--import", "tsx"],
    env: { ...process.env, STREAM_TABLES: tables },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stream churn server did not start: ${stderr}`)), 20_000);
    child.on("message", (message: { type: string; port?: number }) => {
      if (message.type !== "listening") return;
      clearTimeout(timer);
      resolve(message.port!);
    });
    void exit.then(() => reject(new Error(`stream churn server exited: ${stderr}`)));
  });
  let nextId = 0;
  return {
    url: `http://127.0.0.1:${port}`,
    readGc: (options = {}) =>
      new Promise((resolve, reject) => {
        const id = ++nextId;
        const timer = setTimeout(() => reject(new Error(`no GC reading in 5 s: ${stderr}`)), 5_000);
        const onMessage = (message: { type: string; id: number; reading: GcProbeReading }) => {
          if (message.type !== "gc" || message.id !== id) return;
          clearTimeout(timer);
          child.off("message", onMessage);
          resolve(message.reading);
        };
        child.on("message", onMessage);
        child.send({ type: "gc", id, collectFirst: options.collectFirst });
      }),
    async stop() {
      child.kill("SIGTERM");
      await exit;
    },
  };
}
