/**
 * wrk (Debian package wrk) as the HTTP/1.1 load driver: keep-alive connections, one request
 * in flight per connection, POST body and headers from a generated Lua script.
 * `--latency` prints the 50/75/90/99th percentiles; non-2xx/3xx answers are counted.
 */
import { writeFile } from "node:fs/promises";
import { runToolOutput } from "../lib/proc.js";

export interface WrkOptions {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  connections: number;
  durationSec: number;
  /** Where to write the Lua script. */
  scriptFile: string;
}

export interface WrkResult {
  reqPerSec: number;
  requests: number;
  elapsedSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  readBytes: number;
  output: string;
}

/** Lua string literal (decimal escapes keep any byte intact). */
function luaString(bytes: Buffer): string {
  let out = '"';
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b}`;
  }
  return out + '"';
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const lines = [`wrk.method = "POST"`, `wrk.body = ${luaString(options.body)}`];
  for (const [name, value] of Object.entries(options.headers)) lines.push(`wrk.headers[${luaString(Buffer.from(name))}] = ${luaString(Buffer.from(value))}`);
  await writeFile(options.scriptFile, lines.join("\n") + "\n");
  const args = [
    "-t", "1",
    "-c", String(options.connections),
    "-d", `${Math.max(1, Math.round(options.durationSec))}s`, // wrk takes whole seconds
    "--timeout", "10s",
    "--latency",
    "-s", options.scriptFile,
    options.url,
  ];
  const output = await runToolOutput("wrk", args, options.durationSec);
  return parseWrk(output);
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
const SIZE: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

function duration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  return match ? Number(match[1]) * UNIT_MS[match[2]] : NaN;
}

export function parseWrk(output: string): WrkResult {
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(output);
    return match ? duration(match[1]) : NaN;
  };
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB) read/.exec(output);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!summary || !rps) throw new Error(`cannot parse wrk output:\n${output.slice(-2000)}`);
  const sockets = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    reqPerSec: Number(rps[1]),
    requests: Number(summary[1]),
    elapsedSec: duration(`${summary[2]}${summary[3]}`) / 1000,
    p50Ms: percentile("50"),
    p99Ms: percentile("99"),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
    socketErrors: {
      connect: Number(sockets?.[1] ?? 0),
      read: Number(sockets?.[2] ?? 0),
      write: Number(sockets?.[3] ?? 0),
      timeout: Number(sockets?.[4] ?? 0),
    },
    readBytes: Number(summary[4]) * SIZE[summary[5]],
    output,
  };
}
