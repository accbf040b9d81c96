import { execFile } from "node:child_process";

/** What a finished (or killed) child process left behind. */
export interface ProcessResult {
  /** Exit status; null when the process was killed by a signal (for example on timeout). */
  exitCode: number | null;
  stdout: Buffer;
  stderr: string;
  /** True when the process outlived `timeoutMs` and was killed: a hang, never a pass. */
  timedOut: boolean;
  durationMs: number;
}

export interface RunOptions {
  /** Bytes written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** Hard limit after which the child is killed (SIGKILL). */
  timeoutMs: number;
  cwd?: string;
}

/**
 * Run an executable without a shell, feed it stdin, and collect its output.
 * A non-zero exit status is a result, not an exception: the tests assert on it.
 */
export function runProcess(file: string, args: readonly string[], options: RunOptions): Promise<ProcessResult> {
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        encoding: "buffer",
        timeout: options.timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 16 * 1024 * 1024,
        cwd: options.cwd,
        // No proxy may sit between a client and the loopback gateway under test.
        env: { ...process.env, http_proxy: "", https_proxy: "", HTTP_PROXY: "", HTTPS_PROXY: "", all_proxy: "", ALL_PROXY: "" },
      },
      (error, stdout, stderr) => {
        const durationMs = performance.now() - startedAt;
        if (error && typeof error.code === "string") {
          // ENOENT and friends: the tool itself is missing, which must fail loudly.
          reject(error);
          return;
        }
        const killed = Boolean(error?.killed) || child.signalCode === "SIGKILL";
        resolve({
          exitCode: child.exitCode,
          stdout: Buffer.isBuffer(stdout) ? stdout : Buffer.from(stdout),
          stderr: Buffer.isBuffer(stderr) ? stderr.toString("utf8") : String(stderr),
          timedOut: killed,
          durationMs,
        });
      },
    );
    child.stdin?.on("error", () => undefined); // the child may exit before reading all of stdin
    child.stdin?.end(options.input ?? "");
  });
}
