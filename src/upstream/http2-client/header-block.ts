import type * as http2 from "node:http2";
import { Http2ConnectionError, Http2ErrorCode } from "../../http2/frames.js";
import { FIELD_OVERHEAD_BYTES, HpackBlockDecoder, LiteralFieldCache, literalField } from "../../http2/hpack.js";

/**
 * Request header blocks (src/http2/hpack.ts: stateless, every field a literal). The
 * pseudo-header part of a path's block is cached, since each connection sees few paths.
 */
export class RequestHeaderEncoder {
  private readonly prefixes = new Map<string, Buffer>();
  private readonly fields = new LiteralFieldCache();
  private readonly authorityField: Buffer;
  private readonly schemeField: number;

  constructor(authority: string, scheme: "http" | "https") {
    this.authorityField = literalField(STATIC_AUTHORITY, undefined, authority);
    this.schemeField = scheme === "https" ? INDEXED_SCHEME_HTTPS : INDEXED_SCHEME_HTTP;
  }

  /** The header block of a POST to `path` with `headers` (lower-case names; pseudo-headers are ours). */
  encode(path: string, headers: http2.OutgoingHttpHeaders): Buffer {
    const parts: Buffer[] = [this.prefix(path)];
    let size = parts[0].length;
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* ":" */) continue;
      const value = headers[name];
      if (value === undefined) continue;
      if (Array.isArray(value)) {
        for (const item of value) size += push(parts, this.fields.field(name, item));
      } else {
        size += push(parts, this.fields.field(name, typeof value === "string" ? value : String(value)));
      }
    }
    return Buffer.concat(parts, size);
  }

  private prefix(path: string): Buffer {
    let prefix = this.prefixes.get(path);
    if (prefix === undefined) {
      prefix = Buffer.concat([Buffer.of(INDEXED_METHOD_POST, this.schemeField), literalField(STATIC_PATH, undefined, path), this.authorityField]);
      // Paths come from the route table, but a bound keeps a misuse from growing it forever.
      if (this.prefixes.size < 1024) this.prefixes.set(path, prefix);
    }
    return prefix;
  }
}

/**
 * Response header blocks, decoded with the connection's HPACK table (src/http2/hpack.ts). One per
 * connection: blocks must be decoded in the order they arrived, even those of streams we no
 * longer care about.
 */
export class ResponseHeaderDecoder {
  private readonly decoder = new HpackBlockDecoder();
  /** The block being decoded: a field per call of addField, which is bound once. */
  private headers: http2.IncomingHttpHeaders = Object.create(null);
  private listBytes = 0;

  constructor(private readonly maxListBytes: number) {}

  /**
   * The fields of one block as Node's http2 client would present them: a repeated pseudo-header
   * keeps its first value, other repeated names become arrays. Throws a COMPRESSION_ERROR
   * connection error on a malformed block, a PROTOCOL_ERROR beyond `maxListBytes`.
   */
  decode(block: Buffer): http2.IncomingHttpHeaders {
    const headers: http2.IncomingHttpHeaders = Object.create(null);
    this.headers = headers;
    this.listBytes = 0;
    this.decoder.decode(block, this.addField);
    // Decoded whole first: the table must stay in step even for a block we refuse.
    if (this.listBytes > this.maxListBytes) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `response headers of ${this.listBytes} bytes exceed the limit of ${this.maxListBytes}`);
    }
    return headers;
  }

  private readonly addField = (name: string, value: string): void => {
    this.listBytes += name.length + value.length + FIELD_OVERHEAD_BYTES;
    const headers = this.headers;
    const existing = headers[name];
    if (existing === undefined) headers[name] = value;
    else if (name.charCodeAt(0) === 58 /* ":" */) return;
    else if (Array.isArray(existing)) existing.push(value);
    else headers[name] = [existing, value] as never;
  };
}

// Static table indices (RFC 7541 Appendix A).
const STATIC_AUTHORITY = 1;
const STATIC_PATH = 4;
const INDEXED_METHOD_POST = 0x80 | 3;
const INDEXED_SCHEME_HTTP = 0x80 | 6;
const INDEXED_SCHEME_HTTPS = 0x80 | 7;

function push(parts: Buffer[], part: Buffer): number {
  parts.push(part);
  return part.length;
}
