import { forkChildHost } from "./child-host.js";
import type { GcProbeReading } from "./gc-probe.js";

/** A bare node:http2 server in a child process (see stream-churn-host.ts). */
export interface StreamChurnServer {
  url: string;
  /** The server's GC probe, optionally after a forced full collection. */
  readGc(options?: { collectFirst?: boolean }): Promise<GcProbeReading>;
  stop(): Promise<void>;
}

/** Start the bare server with Node's stream tables or the gateway's GC-friendly ones. */
export async function startStreamChurnServer(tables: "node" | "gc-friendly"): Promise<StreamChurnServer> {
  const host = await forkChildHost("test/support/stream-churn-host.ts", { STREAM_TABLES: tables }, "stream churn server");
  return {
    url: `http://127.0.0.1:${host.port}`,
    readGc: async (options = {}) => (await host.ask<{ reading: GcProbeReading }>("gc", { collectFirst: options.collectFirst })).reading,
    async stop() {
      host.child.kill("SIGTERM");
      await host.exit;
    },
  };
}
