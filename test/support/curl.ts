import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runProcess } from "./run-process.js";

/** The system curl, an HTTP client that knows nothing about RPC. */
export const CURL = "/usr/bin/curl";

export type CurlHttpVersion = "1.1" | "2";

export interface CurlRequest {
  method?: "GET" | "POST" | "PUT";
  /** "1.1" forces HTTP/1.1; "2" uses HTTP/2 with prior knowledge (h2c). */
  http: CurlHttpVersion;
  headers?: Record<string, string>;
  /** Request body, sent byte for byte (--data-binary from a file, so curl sends it with the headers). */
  body?: string | Buffer;
  /** Kill curl after this long; the result then has timedOut set. */
  timeoutMs?: number;
}

export interface CurlResponse {
  status: number;
  /** The HTTP version curl actually used for the response: "1.1" or "2". */
  httpVersion: string;
  /** Response headers, names lower-cased. */
  headers: Record<string, string>;
  /** HTTP/2 trailers (empty when there were none). */
  trailers: Record<string, string>;
  body: Buffer;
  /** Body as UTF-8 text. */
  text: string;
  durationMs: number;
  /**
   * How many times curl ran: more than 1 when its HTTP/2 early-answer bug made us send the
   * request again (see below), so the server saw that many requests.
   */
  attempts: number;
}

/** Perform one HTTP request with curl; throws when curl itself fails (connection refused, timeout). */
export async function curl(url: string, request: CurlRequest): Promise<CurlResponse> {
  const dir = await mkdtemp(join(tmpdir(), "gateway-curl-"));
  try {
    const headerFile = join(dir, "headers");
    const bodyFile = join(dir, "body");
    const timeoutMs = request.timeoutMs ?? 10_000;
    // -q must come first: it stops a ~/.curlrc from changing the request under test.
    const args = ["-q", "-sS", "--max-time", String(timeoutMs / 1000), "-D", headerFile, "-o", bodyFile, "-w", "%{json}"];
    args.push(request.http === "2" ? "--http2-prior-knowledge" : "--http1.1");
    args.push("-X", request.method ?? (request.body === undefined ? "GET" : "POST"));
    // No "Expect: 100-continue" round trip: it would add a second header block.
    args.push("-H", "Expect:");
    for (const [name, value] of Object.entries(request.headers ?? {})) args.push("-H", `${name}: ${value}`);
    if (request.body !== undefined) {
      // Not stdin: curl would read it only after sending the headers, and a server that answers
      // early (415, 505) and resets the stream (RFC 9113 §8.1) makes curl 7.88 fail with exit 92.
      const requestFile = join(dir, "request");
      await writeFile(requestFile, request.body);
      args.push("--data-binary", `@${requestFile}`);
    }
    args.push(url);

    let result = await runProcess(CURL, args, { timeoutMs: timeoutMs + 5_000 });
    let attempts = 1;
    // RFC 9113 §8.1: a server may send a complete response before the request body is done and
    // then reset the stream with NO_ERROR, and "clients MUST NOT discard responses" for it.
    // curl 7.88 sometimes does (exit 92, "Stream error in the HTTP/2 framing layer") when the
    // reset overtakes its own END_STREAM; retry that case, which a broken server fails every time.
    for (; attempts < 4 && result.exitCode === 92 && request.http === "2"; attempts++) {
      result = await runProcess(CURL, args, { timeoutMs: timeoutMs + 5_000 });
    }
    if (result.timedOut || result.exitCode !== 0) {
      throw new Error(`curl ${args.join(" ")} failed (exit ${result.exitCode}, timedOut ${result.timedOut}): ${result.stderr}`);
    }
    const info = JSON.parse(result.stdout.toString("utf8")) as { http_version: string; response_code: number };
    const { headers, trailers, statusLine } = parseHeaderDump(await readFile(headerFile, "latin1"));
    const body = await readFile(bodyFile).catch(() => Buffer.alloc(0));
    if (!statusLine.startsWith(`HTTP/${info.http_version === "1.1" ? "1.1" : info.http_version}`)) {
      throw new Error(`curl reported HTTP ${info.http_version} but the status line is ${JSON.stringify(statusLine)}`);
    }
    return {
      status: info.response_code,
      httpVersion: info.http_version,
      headers,
      trailers,
      body,
      text: body.toString("utf8"),
      durationMs: result.durationMs,
      attempts,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** curl -D writes the header block, then (HTTP/2) a blank line and the trailers. */
function parseHeaderDump(dump: string): {
  statusLine: string;
  headers: Record<string, string>;
  trailers: Record<string, string>;
} {
  const blocks = dump.split(/\r?\n\r?\n/).filter((b) => b.trim() !== "");
  if (blocks.length === 0) throw new Error("curl wrote no response headers");
  const [head, ...rest] = blocks;
  const [statusLine, ...headerLines] = head.split(/\r?\n/);
  return {
    statusLine,
    headers: parseFields(headerLines),
    trailers: parseFields(rest.flatMap((b) => b.split(/\r?\n/))),
  };
}

function parseFields(lines: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    fields[name] = name in fields ? `${fields[name]}, ${value}` : value;
  }
  return fields;
}

/** The query string of a Connect unary GET request with a JSON message. */
export function connectGetQuery(message: unknown): string {
  const params = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(message) });
  return params.toString();
}
