/**
 * Runs the real gateway (createGateway, config from the environment as in src/main.ts) in a child
 * process for the reliability tests, and answers "stats" requests over IPC: in-flight calls,
 * connections open on its port, memory and GC, and the error-level log lines it wrote. The memory of
 * the load generator (the test process) does not count against the gateway this way.
 *
 * Usage (through test/support/hostile-gateway.ts): node --expose-gc --import tsx test/support/hostile-gateway-host.ts
 */
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { loadConfig } from "../../src/config/load-config.js";
import { createGateway } from "../../src/gateway.js";
import { createLogger } from "../../src/ops/logger.js";
import { readGcProbe, type GcProbeReading } from "./gc-probe.js";

export interface HostStats {
  inFlight: number;
  /** TCP connections on the gateway's port the gateway has not closed (ESTABLISHED, SYN_RECV or CLOSE_WAIT). */
  connections: number;
  /** Every TCP state seen on the gateway's port (hex state from /proc/net/tcp, e.g. "01" ESTABLISHED), with counts. */
  connectionStates: Record<string, number>;
  rssBytes: number;
  heapUsedBytes: number;
  /** What V8 has committed for the JS heap, used or not. */
  heapTotalBytes: number;
  /** Log lines at level error or fatal (e.g. "rpc handler failed"): unexpected failures. */
  errorLogs: Record<string, unknown>[];
  /** The gateway's "http/2 session error" log lines (debug level: only with HOSTILE_LOG_LEVEL=debug), at most 50. */
  sessionErrors: Record<string, unknown>[];
  /** Uncaught exceptions and unhandled rejections the process survived only because this host caught them. */
  crashes: string[];
  /** The old generation's use and the full collections so far. */
  gc: GcProbeReading;
}

const errorLogs: Record<string, unknown>[] = [];
const sessionErrors: Record<string, unknown>[] = [];
const crashes: string[] = [];
process.on("uncaughtException", (error) => crashes.push(`uncaughtException: ${error.stack ?? error}`));
process.on("unhandledRejection", (reason) => crashes.push(`unhandledRejection: ${(reason as Error)?.stack ?? reason}`));
// Die with the test runner, even when it is killed without a chance to clean up.
process.on("disconnect", () => process.exit(0));

const sink = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    for (const line of chunk.toString("utf8").split("\n")) {
      // Parse only what is kept: the access log (info) can be thousands of lines a second.
      if (!line || !/"level":"(error|fatal)"|"msg":"http\/2 session error"/.test(line)) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.level === "error" || entry.level === "fatal") errorLogs.push(entry);
      else if (sessionErrors.length < 50) sessionErrors.push(entry);
    }
    callback();
  },
});

/** Server-side sockets on `port` by TCP state. */
function connectionsOn(port: number): Record<string, number> {
  const states: Record<string, number> = {};
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const localPort = parseInt(fields[1].split(":")[1], 16);
      const state = fields[3];
      if (localPort === port && state !== "0A") states[state] = (states[state] ?? 0) + 1;
    }
  }
  return states;
}

/** 01 ESTABLISHED, 03 SYN_RECV, 08 CLOSE_WAIT: the gateway still holds these open. */
const OPEN_STATES = ["01", "03", "08"];

const config = loadConfig();
const level = (process.env.HOSTILE_LOG_LEVEL ?? "warn") as "warn" | "debug";
const gateway = createGateway(config, createLogger(level, sink));
const address = await gateway.listen();
process.send!({ type: "listening", port: address.port });
process.on("message", async (message: { type: string; id: number; gc?: boolean }) => {
  if (message.type === "stats") {
    const gc = await readGcProbe({ collectFirst: message.gc });
    const memory = process.memoryUsage();
    const connectionStates = connectionsOn(address.port);
    const stats: HostStats = {
      inFlight: gateway.inFlightCalls(),
      connections: OPEN_STATES.reduce((n, state) => n + (connectionStates[state] ?? 0), 0),
      connectionStates,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      errorLogs,
      sessionErrors,
      crashes,
      gc,
    };
    process.send!({ type: "stats", id: message.id, stats });
  } else if (message.type === "shutdown") {
    void gateway.shutdown().then(() => process.exit(0));
  }
});
