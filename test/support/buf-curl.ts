import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import { runProcess } from "./run-process.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
/** `buf` from the @bufbuild/buf npm package. */
export const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));
/** The repository's proto/ directory: buf curl compiles the schema itself, no reflection. */
export const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

/** The wire protocols buf curl speaks (its own spelling). */
export type BufProtocol = "connect" | "grpc" | "grpcweb";

export interface BufCurlRequest {
  protocol: BufProtocol;
  /** Pass --http2-prior-knowledge (h2c). Without it buf curl uses HTTP/1.1 unless the call needs HTTP/2. */
  http2PriorKnowledge: boolean;
  /**
   * Request messages in protobuf JSON, sent on stdin (`-d @-`), whitespace-separated:
   * one for unary and server-streaming calls, any number for client and bidi streams.
   */
  messages?: readonly unknown[];
  /** Extra request headers ("name: value"). */
  headers?: readonly string[];
  /** buf's global --timeout (e.g. "300ms"): connect-go turns it into the call's deadline. */
  timeout?: string;
  /** Schema inputs; defaults to the repository's proto/ directory. */
  schema?: readonly string[];
  /** Kill buf after this long (a hang fails the test instead of stalling the suite). */
  processTimeoutMs?: number;
}

export interface BufCurlResult {
  /** buf's exit status: 0 on success, the gRPC code << 3 when the RPC failed, < 8 on usage errors. */
  exitCode: number | null;
  timedOut: boolean;
  /** Response messages, parsed from stdout. */
  messages: Record<string, unknown>[];
  /** The error buf printed for a failed RPC. */
  error?: { code: string; message?: string; details?: unknown[] };
  /** The HTTP version of the response as buf's verbose output reports it: "1.1" or "2". */
  httpVersion?: string;
  /** Request and response headers (and trailers, marked [*] by buf) from the verbose output, names lower-cased. */
  requestHeaders: Record<string, string>;
  responseHeaders: Record<string, string>;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Invoke one RPC with `buf curl -v --schema proto ...`. */
export async function bufCurl(url: string, request: BufCurlRequest): Promise<BufCurlResult> {
  const args = ["curl", "-v", "--protocol", request.protocol];
  for (const schema of request.schema ?? [PROTO_DIR]) args.push("--schema", schema);
  if (request.http2PriorKnowledge) args.push("--http2-prior-knowledge");
  for (const header of request.headers ?? []) args.push("-H", header);
  if (request.timeout !== undefined) args.push("--timeout", request.timeout);
  args.push("-d", "@-", url);
  const input = (request.messages ?? [{}]).map((m) => JSON.stringify(m)).join("\n");
  const result = await runProcess(BUF, args, { input, timeoutMs: request.processTimeoutMs ?? 20_000, cwd: repoRoot });

  const stdout = result.stdout.toString("utf8");
  const verbose: string[] = [];
  const plain: string[] = [];
  for (const line of result.stderr.split("\n")) (line.startsWith("buf: ") ? verbose : plain).push(line);
  const requestHeaders: Record<string, string> = {};
  const responseHeaders: Record<string, string> = {};
  let httpVersion: string | undefined;
  for (const line of verbose) {
    const m = /^buf: ([<>]) \(#\d+\) (\[\*\] )?(.*)$/.exec(line);
    if (!m) continue;
    const [, direction, , text] = m;
    const status = /^HTTP\/(\d(?:\.\d)?) \d{3}/.exec(text);
    if (direction === "<" && status) {
      httpVersion = status[1] === "2.0" ? "2" : status[1];
      continue;
    }
    const colon = text.indexOf(": ");
    if (colon <= 0) continue;
    const target = direction === ">" ? requestHeaders : responseHeaders;
    target[text.slice(0, colon).toLowerCase()] = text.slice(colon + 2);
  }
  const errors = tryParseJsonValues(plain.join("\n").trim()).filter(
    (v): v is { code: string; message?: string } => typeof v === "object" && v !== null && "code" in v,
  );
  return {
    exitCode: result.exitCode,
    timedOut: result.timedOut,
    messages: parseJsonValues(stdout) as Record<string, unknown>[],
    error: errors[0],
    httpVersion,
    requestHeaders,
    responseHeaders,
    stdout,
    stderr: result.stderr,
    durationMs: result.durationMs,
  };
}

/** The Connect code name ("invalid_argument") for buf curl's exit status (code << 3). */
export function codeFromExitStatus(exitCode: number | null): string | undefined {
  if (exitCode === null || exitCode < 8 || exitCode % 8 !== 0) return undefined;
  const code = exitCode >> 3;
  const name = Code[code] as string | undefined;
  return name?.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Usage failures ("Failure: ...") are plain text: they yield no values, and the exit status tells. */
function tryParseJsonValues(text: string): unknown[] {
  try {
    return parseJsonValues(text);
  } catch {
    return [];
  }
}

/**
 * Parse concatenated JSON documents (buf curl prints one pretty-printed document per message).
 * Anything left over that is not JSON is an error, so garbage in the output cannot pass.
 */
export function parseJsonValues(text: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === "{" || ch === "[") {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === "}" || ch === "]") {
      depth--;
      if (depth === 0) values.push(JSON.parse(text.slice(start, i + 1)));
      if (depth < 0) throw new Error(`unbalanced JSON at ${i}: ${text}`);
    } else if (depth === 0 && !/\s/.test(ch)) {
      throw new Error(`unexpected text outside JSON at ${i}: ${JSON.stringify(text.slice(i, i + 80))}`);
    }
  }
  if (depth !== 0 || inString) throw new Error(`truncated JSON output: ${text}`);
  return values;
}
