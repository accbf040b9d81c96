import type * as http2 from "node:http2";
import hpack from "hpack.js";
import { Http2ConnectionError, Http2ErrorCode } from "./frames.js";

/** HPACK's default (and our announced) dynamic table size (RFC 7541 §4.2). */
const HEADER_TABLE_BYTES = 4096;

/**
 * Request header blocks (RFC 7541): every field a literal "without indexing", no Huffman. That
 * keeps the encoder stateless, so nothing the upstream announces about its table can put the
 * two sides out of step; the cost is some bytes on a connection inside the cluster. The
 * pseudo-header part of a path's block is cached, since each connection sees few paths.
 */
export class RequestHeaderEncoder {
  private readonly prefixes = new Map<string, Buffer>();
  /** Encoded fields by name and value: most metadata repeats call after call (content-type, te, user-agent). */
  private readonly fields = new Map<string, Map<string, Buffer>>();
  private cachedFields = 0;
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
        for (const item of value) size += push(parts, this.field(name, item));
      } else {
        size += push(parts, this.field(name, typeof value === "string" ? value : String(value)));
      }
    }
    return Buffer.concat(parts, size);
  }

  private field(name: string, value: string): Buffer {
    let byValue = this.fields.get(name);
    const cached = byValue?.get(value);
    if (cached !== undefined) return cached;
    const field = literalField(0, name, value);
    // Per-call values (request ids, deadlines) would fill the cache with fields never used
    // again: it is bounded, and starts over when full so the repeating ones come back.
    if (value.length <= MAX_CACHED_VALUE_LENGTH) {
      if (this.cachedFields >= MAX_CACHED_FIELDS) {
        this.fields.clear();
        this.cachedFields = 0;
        byValue = undefined;
      }
      if (byValue === undefined) this.fields.set(name, (byValue = new Map()));
      byValue.set(value, field);
      this.cachedFields++;
    }
    return field;
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

const MAX_CACHED_FIELDS = 256;
const MAX_CACHED_VALUE_LENGTH = 128;

/**
 * Response header blocks, decoded with hpack.js's decoder and table. One per connection: blocks
 * must be decoded in the order they arrived, even those of streams we no longer care about, or
 * the dynamic table goes out of step with the upstream's.
 */
export class ResponseHeaderDecoder {
  private readonly decoder = hpack.decoder.create();
  private readonly table = hpack.table.create({ maxSize: HEADER_TABLE_BYTES });

  constructor(private readonly maxListBytes: number) {}

  /**
   * The fields of one block as Node's http2 client would present them: a repeated pseudo-header
   * keeps its first value, other repeated names become arrays. Throws a COMPRESSION_ERROR
   * connection error on a malformed block, a PROTOCOL_ERROR beyond `maxListBytes`.
   */
  decode(block: Buffer): http2.IncomingHttpHeaders {
    const headers: http2.IncomingHttpHeaders = Object.create(null);
    const decoder = this.decoder;
    const table = this.table;
    let listBytes = 0;
    try {
      decoder.push(block);
      while (!decoder.isEmpty()) {
        // One representation (RFC 7541 §6): indexed, literal (indexed or not), or a table size update.
        let name: string;
        let value: string;
        if (decoder.decodeBit() === 1) {
          const entry = table.lookup(decoder.decodeInt());
          name = entry.name;
          value = entry.value;
        } else {
          const incremental = decoder.decodeBit() === 1;
          if (!incremental) {
            if (decoder.decodeBit() === 1) {
              table.updateSize(decoder.decodeInt());
              continue;
            }
            decoder.decodeBit(); // "never indexed": matters to a proxy that re-encodes; we relay values only.
          }
          const index = decoder.decodeInt();
          let nameSize: number;
          if (index === 0) {
            const bytes = decoder.decodeStr();
            nameSize = bytes.length;
            name = bytesToString(bytes);
          } else {
            const entry = table.lookup(index);
            name = entry.name;
            nameSize = entry.nameSize;
          }
          const valueBytes = decoder.decodeStr();
          value = bytesToString(valueBytes);
          if (incremental) table.add(name, value, nameSize, valueBytes.length);
        }
        listBytes += name.length + value.length + 32;
        const existing = headers[name];
        if (existing === undefined) headers[name] = value;
        else if (name.charCodeAt(0) === 58 /* ":" */) continue;
        else if (Array.isArray(existing)) existing.push(value);
        else headers[name] = [existing, value] as never;
      }
    } catch (error) {
      throw new Http2ConnectionError(Http2ErrorCode.COMPRESSION_ERROR, `malformed header block: ${(error as Error).message}`);
    }
    // Decoded whole first: the table must stay in step even for a block we refuse.
    if (listBytes > this.maxListBytes) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `response headers of ${listBytes} bytes exceed the limit of ${this.maxListBytes}`);
    }
    return headers;
  }
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

/** A "literal header field without indexing" (RFC 7541 §6.2.2): by static name index, or with a new name. */
function literalField(nameIndex: number, name: string | undefined, value: string): Buffer {
  const nameLength = name === undefined ? 0 : Buffer.byteLength(name, "latin1");
  const valueLength = Buffer.byteLength(value, "latin1");
  const out = Buffer.allocUnsafe(1 + (name === undefined ? 5 : 5 + nameLength + 5) + valueLength + 5);
  let offset = writeInteger(out, 0, nameIndex, 4, 0x00);
  if (name !== undefined) {
    offset = writeInteger(out, offset, nameLength, 7, 0x00);
    offset += out.write(name, offset, "latin1");
  }
  offset = writeInteger(out, offset, valueLength, 7, 0x00);
  offset += out.write(value, offset, "latin1");
  return out.subarray(0, offset);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); returns the offset after it. */
export function writeInteger(out: Buffer, offset: number, value: number, prefixBits: number, firstByteFlags: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[offset] = firstByteFlags | value;
    return offset + 1;
  }
  out[offset++] = firstByteFlags | max;
  let rest = value - max;
  while (rest >= 128) {
    out[offset++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[offset++] = rest;
  return offset;
}

function bytesToString(bytes: ArrayLike<number>): string {
  if (Buffer.isBuffer(bytes)) return bytes.toString("latin1");
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
  return out;
}
