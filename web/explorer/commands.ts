/**
 * The command lines that make the same call as the explorer: curl (Connect protocol, so plain
 * HTTP), grpcurl (gRPC over HTTP/2, schema from server reflection) and buf curl (any of the three
 * protocols, also through reflection). Pure functions of the call, so they are unit tested.
 */
import type { MethodKind } from "../../src/web/explorer-types.js";

export interface CommandInput {
  /** The gateway's origin, e.g. "http://127.0.0.1:8080". */
  baseUrl: string;
  /** "/package.Service/Method" */
  path: string;
  kind: MethodKind;
  /** The request messages as protobuf JSON; one unless the client streams. */
  messages: unknown[];
  /** Headers the user added (authorization and the like), in order. */
  headers: [string, string][];
  timeoutMs?: number;
}

const CONTINUATION = " \\\n  ";

/** Quote for a POSIX shell: single quotes, with embedded single quotes closed and escaped. */
export function shellQuote(text: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * curl with the Connect protocol. Unary calls are plain JSON POSTs; streaming calls need the
 * 5-byte envelope before each message, which printf writes with octal escapes (POSIX printf has
 * no \x) and passes each message as an argument, so no JSON text is read as a format.
 */
export function curlCommand(input: CommandInput): string {
  const url = shellQuote(`${input.baseUrl}${input.path}`);
  const headerArgs = (contentType: string) => [
    `-H ${shellQuote(`content-type: ${contentType}`)}`,
    `-H ${shellQuote("connect-protocol-version: 1")}`,
    ...(input.timeoutMs ? [`-H ${shellQuote(`connect-timeout-ms: ${input.timeoutMs}`)}`] : []),
    ...input.headers.map(([name, value]) => `-H ${shellQuote(`${name}: ${value}`)}`),
  ];
  if (input.kind === "unary") {
    return ["curl -sS", url, ...headerArgs("application/json"), `-d ${shellQuote(compact(input.messages[0]))}`].join(CONTINUATION);
  }
  const bodies = input.messages.map(compact);
  const format = bodies.map((body) => `${envelopePrefix(utf8Length(body))}%s`).join("");
  const printf = [`printf '${format}'`, ...bodies.map(shellQuote)].join(CONTINUATION);
  // -N: print each streamed message as it arrives instead of buffering.
  return `${printf} |\n${["curl -sS -N --data-binary @-", url, ...headerArgs("application/connect+json")].join(CONTINUATION)}`;
}

/** grpcurl: gRPC over HTTP/2 on the same port; it learns the schema through server reflection. */
export function grpcurlCommand(input: CommandInput): string {
  const url = new URL(input.baseUrl);
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const args = ["grpcurl"];
  if (url.protocol === "http:") args.push("-plaintext");
  for (const [name, value] of input.headers) args.push(`-H ${shellQuote(`${name}: ${value}`)}`);
  if (input.timeoutMs) args.push(`-max-time ${input.timeoutMs / 1000}`);
  args.push(`-d ${shellQuote(input.messages.map(compact).join(" "))}`);
  // URL.hostname keeps an IPv6 address's brackets, which host:port needs.
  args.push(`${url.hostname}:${port} ${input.path.slice(1)}`);
  return args.join(CONTINUATION);
}

/** buf curl (npx buf curl): the Connect protocol, with the schema from server reflection. */
export function bufCurlCommand(input: CommandInput): string {
  const args = ["buf curl --protocol connect"];
  // Client and bidirectional streams need HTTP/2; over cleartext buf curl must be told to use it.
  if ((input.kind === "client_streaming" || input.kind === "bidi_streaming") && input.baseUrl.startsWith("http:")) {
    args[0] += " --http2-prior-knowledge";
  }
  for (const [name, value] of input.headers) args.push(`-H ${shellQuote(`${name}: ${value}`)}`);
  args.push(`-d ${shellQuote(input.messages.map(compact).join(" "))}`);
  args.push(shellQuote(`${input.baseUrl}${input.path}`));
  return args.join(CONTINUATION);
}

/** "\000\000\000\000\017": the flags byte (0: an uncompressed message) and a big-endian length. */
export function envelopePrefix(length: number): string {
  const bytes = [0, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff];
  return bytes.map((byte) => `\\${byte.toString(8).padStart(3, "0")}`).join("");
}

function compact(message: unknown): string {
  return JSON.stringify(message ?? {});
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

