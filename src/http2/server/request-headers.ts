import * as http2 from "node:http2";
import { CONNECTION_SPECIFIC_FIELDS, LOWER_CASE_FIELD_NAME } from "../field-names.js";
import { FIELD_OVERHEAD_BYTES, HpackBlockDecoder } from "../hpack.js";

/** A request's header block as Node's http2 server hands it to a 'stream' listener. */
export interface RequestHead {
  headers: http2.IncomingHttpHeaders;
  /** Names and values, alternating, in the order they arrived. */
  rawHeaders: string[];
}

/** Why a block is refused: a malformed request (RFC 9113 §8.1.1) or one over the gateway's limits. */
export type RefusedHead = { malformed: string } | { tooLarge: string };

/**
 * Node's http2 keeps the first value of these when a block repeats them, and joins the repeats
 * of any other name with ", " (cookie with "; ", set-cookie in an array): lib/internal/http2/util.js.
 */
const SINGLE_VALUE_NAMES = new Set([
  ":status", ":method", ":authority", ":scheme", ":path", ":protocol",
  "access-control-allow-credentials", "access-control-max-age", "access-control-request-method",
  "age", "authorization", "content-encoding", "content-language", "content-length", "content-location",
  "content-md5", "content-range", "content-type", "date", "dnt", "etag", "expires", "from", "host",
  "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
  "location", "max-forwards", "proxy-authorization", "range", "referer", "retry-after", "tk",
  "upgrade-insecure-requests", "user-agent", "x-content-type-options",
]);

const CONNECTION_SPECIFIC = new Set(CONNECTION_SPECIFIC_FIELDS);
const REQUEST_PSEUDO_HEADERS = new Set([":method", ":scheme", ":authority", ":path"]);
/** What a field value may not hold: NUL, CR or LF anywhere, whitespace at either end (RFC 9113 §8.2.1). */
const INVALID_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;
const INVALID_PSEUDO_VALUE = /[\x00-\x20\x7f]/;
const METHOD = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * Decodes and checks the header blocks a client sends on one connection (requests and their
 * trailers), with the checks nghttp2 makes for Node's server, so that a block Node would refuse is
 * refused here too. Every block is decoded whole, even one already refused, to keep the HPACK
 * table in step.
 */
export class RequestHeaderDecoder {
  private readonly decoder = new HpackBlockDecoder();
  // The block being decoded, filled by the visitor (bound once).
  private raw: string[] = [];
  private sensitive: string[] = [];
  private problem: string | undefined;
  private sawRegular = false;
  private trailers = false;
  private listBytes = 0;

  constructor(
    private readonly maxListBytes: number,
    private readonly maxFields: number,
  ) {}

  /** A request's headers (`trailers` false) or trailers, or why they are refused. Throws an Http2ConnectionError for a malformed block. */
  decode(block: Buffer, trailers: boolean): RequestHead | RefusedHead {
    const raw: string[] = [];
    this.raw = raw;
    this.sensitive = [];
    this.problem = undefined;
    this.sawRegular = false;
    this.trailers = trailers;
    this.listBytes = 0;
    this.decoder.decode(block, this.addField);
    if (this.listBytes > this.maxListBytes) return { tooLarge: `header list of ${this.listBytes} bytes exceeds ${this.maxListBytes}` };
    if (raw.length / 2 > this.maxFields) return { tooLarge: `${raw.length / 2} header fields exceed ${this.maxFields}` };
    if (this.problem !== undefined) return { malformed: this.problem };
    const headers = toHeaderObject(raw);
    if (!trailers) {
      const problem = checkPseudoHeaders(headers);
      if (problem !== undefined) return { malformed: problem };
    }
    (headers as Record<symbol, unknown>)[http2.sensitiveHeaders] = this.sensitive;
    return { headers, rawHeaders: raw };
  }

  private readonly addField = (name: string, value: string, neverIndexed: boolean): void => {
    this.listBytes += name.length + value.length + FIELD_OVERHEAD_BYTES;
    // Past the limits only the size is still counted: the block is refused anyway.
    if (this.listBytes > this.maxListBytes || this.raw.length / 2 >= this.maxFields) return;
    this.raw.push(name, value);
    if (neverIndexed) this.sensitive.push(name);
    if (this.problem !== undefined) return;
    this.problem = this.fieldProblem(name, value);
  };

  private fieldProblem(name: string, value: string): string | undefined {
    if (name.charCodeAt(0) === 58 /* ":" */) {
      if (this.trailers) return `pseudo-header ${name} in trailers`;
      if (this.sawRegular) return `pseudo-header ${name} after a regular field`;
      if (!REQUEST_PSEUDO_HEADERS.has(name)) return `unknown pseudo-header ${name}`;
      // :method, :scheme, :authority and :path hold no whitespace or control characters (nghttp2 checks them too).
      if (INVALID_PSEUDO_VALUE.test(value)) return `invalid value of ${name}`;
      const raw = this.raw;
      for (let i = 0; i < raw.length - 2; i += 2) if (raw[i] === name) return `repeated pseudo-header ${name}`;
      return undefined;
    }
    this.sawRegular = true;
    if (!LOWER_CASE_FIELD_NAME.test(name)) return `invalid field name ${JSON.stringify(name)}`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
    if (name === "te" && value !== "trailers") return `te other than "trailers"`;
    if (INVALID_VALUE.test(value)) return `invalid value of ${name}`;
    return undefined;
  }
}

/** The header object Node's http2 builds from a field list (lib/internal/http2/util.js toHeaderObject). */
function toHeaderObject(raw: string[]): http2.IncomingHttpHeaders {
  const headers: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const existing = headers[name];
    if (existing === undefined) {
      headers[name] = name === "set-cookie" ? [value] : value;
    } else if (!SINGLE_VALUE_NAMES.has(name)) {
      if (name === "cookie") headers[name] = `${existing as string}; ${value}`;
      else if (name === "set-cookie") (existing as string[]).push(value);
      else headers[name] = `${existing as string}, ${value}`;
    }
  }
  return headers as http2.IncomingHttpHeaders;
}

/** The request pseudo-headers a request must (and must not) have (RFC 9113 §8.3.1, §8.5). */
function checkPseudoHeaders(headers: http2.IncomingHttpHeaders): string | undefined {
  const method = headers[":method"];
  if (method === undefined) return "no :method";
  if (!METHOD.test(method)) return "invalid :method";
  if (method === "CONNECT") {
    if (headers[":authority"] === undefined) return "CONNECT without :authority";
    if (headers[":scheme"] !== undefined || headers[":path"] !== undefined) return "CONNECT with :scheme or :path";
    return undefined;
  }
  if (headers[":scheme"] === undefined) return "no :scheme";
  const path = headers[":path"];
  if (path === undefined || path === "") return "no :path";
  if (path.charCodeAt(0) !== 47 /* "/" */ && !(method === "OPTIONS" && path === "*")) return "invalid :path";
  return undefined;
}
