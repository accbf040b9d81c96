/**
 * Memory cases: a separate client process (bench/load/hold-connections.ts) holds idle HTTP/2
 * connections or open server streams against a freshly started server, whose RSS is read
 * from /proc before and while they are held.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { MemoryCase } from "../cases.js";
import type { RunningServer } from "../servers/registry.js";
import { memoryKiB, openFilesLimit, resetPeakRss, spawnNode, stopChild, tailOf } from "./proc.js";

const KiB_PER_MiB = 1024;

export interface MemoryRow {
  case: string;
  title: string;
  server: string;
  requested: number;
  opened: number;
  failed: number;
  openMs: number;
  baselineRssMb: number | null;
  rssMb: number | null;
  peakRssMb: number | null;
  /** (RSS with the items − baseline RSS) / items */
  kibPerItem: number | null;
  vsGrpcJs: number | null;
  vsConnectNode: number | null;
  problems: string[];
}

export interface MemoryOptions {
  idleConns: number;
  openStreams: number;
  streamsPerConnection: number;
  /** Settle before the baseline and before the reading, ms. */
  settleMs: { baseline: number; held: number };
  note(text: string): void;
}

export function emptyMemoryRow(c: MemoryCase, server: string, requested: number, problem?: string): MemoryRow {
  return {
    case: c.id,
    title: c.title,
    server,
    requested,
    opened: 0,
    failed: 0,
    openMs: 0,
    baselineRssMb: null,
    rssMb: null,
    peakRssMb: null,
    kibPerItem: null,
    vsGrpcJs: null,
    vsConnectNode: null,
    problems: problem ? [problem] : [],
  };
}

export function requestedItems(c: MemoryCase, options: Pick<MemoryOptions, "idleConns" | "openStreams">): number {
  return c.mode === "idle" ? options.idleConns : options.openStreams;
}

/** Hold connections or streams against a freshly started server and read its RSS. */
export async function measureMemory(c: MemoryCase, server: RunningServer, options: MemoryOptions): Promise<MemoryRow> {
  const requested = requestedItems(c, options);
  const row = emptyMemoryRow(c, server.spec.id, requested);
  try {
    let count = requested;
    if (c.mode === "idle") {
      // One descriptor per connection in the server, and in the client (both get the hard limit).
      const limit = openFilesLimit(server.pid);
      if (limit < count + 256) {
        count = Math.max(0, limit - 256);
        options.note(`${c.id}: open-files limit ${limit} < ${requested} + 256, so ${count} connections (raise \`ulimit -Hn\` to measure ${requested})`);
      }
    }
    // Let start-up garbage settle before the baseline, and the held items before the reading.
    await sleep(options.settleMs.baseline);
    const baseline = memoryKiB(server.pid);
    resetPeakRss(server.pid);
    const endpoint = server.endpoint(c.protocol)!;
    const args = c.mode === "idle" ? ["idle", endpoint.url, String(count)] : ["streams", endpoint.url, String(count), String(options.streamsPerConnection)];
    const client = spawnNode("bench/load/hold-connections.ts", args, { stdio: ["pipe", "pipe", "pipe"] });
    const clientErr = tailOf(client);
    try {
      const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error("memory client: not done opening within 120 s")), 120_000);
        client.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
          out += chunk;
          const match = /^READY (.*)$/m.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(JSON.parse(match[1]) as Record<string, unknown>);
          }
        });
        client.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`memory client exited (${code}): ${clientErr()}`));
        });
      });
      await sleep(options.settleMs.held);
      if (!alive(server.pid)) throw new Error(`server died: ${server.stderrTail()}`);
      const held = memoryKiB(server.pid);
      row.opened = Number(ready.opened);
      row.failed = Number(ready.failed);
      row.openMs = Number(ready.ms);
      row.baselineRssMb = baseline.rss / KiB_PER_MiB;
      row.rssMb = held.rss / KiB_PER_MiB;
      row.peakRssMb = held.hwm / KiB_PER_MiB;
      row.kibPerItem = row.opened > 0 ? (held.rss - baseline.rss) / row.opened : null;
      if (row.failed > 0) row.problems.push(`${row.failed} failed to open (first: ${String(ready.firstError)})`);
    } finally {
      client.stdin?.end();
      await stopChild(client, 2000);
    }
  } catch (error) {
    row.problems.push((error as Error).message.split("\n")[0]);
  }
  return row;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
