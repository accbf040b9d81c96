import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { GATEWAY_NODE_FLAGS } from "../../bench/lib/proc.js";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The gateway running as a real child process (src/main.ts through tsx), as a user starts it. */
export interface GatewayProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Parsed JSON log lines printed so far. */
  logs: Record<string, unknown>[];
  /** Everything printed on stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>;
}

/**
 * Start src/main.ts on 127.0.0.1 and a free port with extra environment variables, with the node
 * flags the gateway ships with (`nodeFlags` replaces them).
 */
export function startGatewayProcess(env: Record<string, string> = {}, options: { nodeFlags?: readonly string[] } = {}): Promise<GatewayProcess> {
  const { nodeFlags = GATEWAY_NODE_FLAGS } = options;
  const child = spawn(process.execPath, [...nodeFlags, "--import", "tsx", "src/main.ts"], {
    cwd: projectRoot,
    env: { ...process.env, GATEWAY_HOST: "127.0.0.1", GATEWAY_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  let pending = "";
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start in time; stderr: ${stderr}`));
    }, 20_000);
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.trim()) continue;
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === "listening") {
          clearTimeout(timer);
          const port = entry.port as number;
          resolve({ child, port, url: `http://127.0.0.1:${port}`, logs, stderr: () => stderr, exited });
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
}
