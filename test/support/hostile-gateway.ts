import type { ChildProcess } from "node:child_process";
import { GATEWAY_NODE_FLAGS } from "../../bench/lib/proc.js";
import { forkChildHost } from "./child-host.js";
import type { HostStats } from "./hostile-gateway-host.js";

export type { HostStats };

/** The gateway in a child process (see hostile-gateway-host.ts), with its stats over IPC. */
export interface IsolatedGateway {
  child: ChildProcess;
  port: number;
  url: string;
  stats(options?: { gc?: boolean }): Promise<HostStats>;
  /** Wait until `done` holds (default: no call in flight, no connection open) or the time is up; returns the last stats. */
  settle(timeoutMs: number, done?: (stats: HostStats) => boolean): Promise<HostStats>;
  /**
   * Stats after a full collection, once RSS has stopped falling. V8 hands the pages a collection
   * freed to a background thread to unmap, so RSS read right after `gc()` can still hold tens of
   * MiB that heapTotal no longer counts (measured: 214 MiB at once, 166 MiB 200 ms later).
   */
  quietMemory(timeoutMs?: number): Promise<HostStats>;
  /** Whether the process is still alive. */
  alive(): boolean;
  stop(): Promise<void>;
}

/** RSS moving less than this between two readings 250 ms apart counts as steady. */
const RSS_STEADY_BYTES = 1024 * 1024;

/**
 * Start the gateway on 127.0.0.1 and a free port, configured by GATEWAY_* variables, with the node
 * flags it ships with unless `nodeFlags` names others (--expose-gc is always added).
 */
export async function startIsolatedGateway(env: Record<string, string> = {}, nodeFlags: readonly string[] = GATEWAY_NODE_FLAGS): Promise<IsolatedGateway> {
  const host = await forkChildHost("test/support/hostile-gateway-host.ts", { GATEWAY_HOST: "127.0.0.1", GATEWAY_PORT: "0", ...env }, "gateway", nodeFlags);
  const stats = async (options: { gc?: boolean } = {}) => (await host.ask<{ stats: HostStats }>("stats", { gc: options.gc })).stats;
  return {
    child: host.child,
    port: host.port,
    url: `http://127.0.0.1:${host.port}`,
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
    async quietMemory(timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      let last = await stats({ gc: true });
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        const next = await stats();
        const falling = next.rssBytes < last.rssBytes - RSS_STEADY_BYTES;
        last = next;
        if (!falling) break;
      }
      return last;
    },
    alive: () => !host.exited(),
    async stop() {
      if (host.exited()) return;
      host.child.send({ type: "shutdown" });
      const timer = setTimeout(() => host.child.kill("SIGKILL"), 5_000);
      await host.exit;
      clearTimeout(timer);
    },
  };
}
