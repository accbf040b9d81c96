import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** A test host in a child process: it sends { type: "listening", port } once bound and answers requests over IPC. */
export interface ChildHost {
  child: ChildProcess;
  port: number;
  /** Everything the host wrote to stderr so far. */
  stderr(): string;
  /** Whether the process has exited. */
  exited(): boolean;
  /** Resolves when the process exits. */
  exit: Promise<void>;
  /** Sends `{ type, id, ...fields }` and resolves with the host's answer of the same type and id. */
  ask<Answer>(type: string, fields?: Record<string, unknown>, timeoutMs?: number): Promise<Answer>;
}

/** Fork `script` (a project path) with --expose-gc, `nodeFlags` and tsx, and wait until it listens. */
export async function forkChildHost(script: string, env: Record<string, string>, name: string, nodeFlags: readonly string[] = []): Promise<ChildHost> {
  const child = fork(script, [], {
    cwd: projectRoot,
    execArgv: [...new Set(["--expose-gc", ...nodeFlags]), "--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start: ${stderr}`));
    }, 20_000);
    child.on("message", (message: { type: string; port?: number }) => {
      if (message.type !== "listening") return;
      clearTimeout(timer);
      resolve(message.port!);
    });
    void exit.then(() => reject(new Error(`${name} exited before listening: ${stderr}`)));
  });
  let nextId = 0;
  return {
    child,
    port,
    stderr: () => stderr,
    exited: () => exited,
    exit,
    ask: <Answer>(type: string, fields: Record<string, unknown> = {}, timeoutMs = 5_000) =>
      new Promise<Answer>((resolve, reject) => {
        if (exited) return reject(new Error(`${name} process is gone: ${stderr}`));
        const id = ++nextId;
        const timer = setTimeout(() => reject(new Error(`${name} did not answer a ${type} request in ${timeoutMs / 1000} s: ${stderr}`)), timeoutMs);
        const onMessage = (message: { type: string; id: number }) => {
          if (message.type !== type || message.id !== id) return;
          clearTimeout(timer);
          child.off("message", onMessage);
          resolve(message as Answer);
        };
        child.on("message", onMessage);
        child.send({ ...fields, type, id });
      }),
  };
}
