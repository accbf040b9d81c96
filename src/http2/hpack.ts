/*
 * HPACK (RFC 7541) as both of the gateway's own HTTP/2 endpoints use it: blocks are decoded with
 * hpack.js's bit-level decoder and table (one per connection and direction), and encoded
 * statelessly, every field a literal "without indexing" and without Huffman coding. A stateless
 * encoder keeps nothing the peer announces about its table able to put the two sides out of
 * step; the cost is a few bytes per field.
 */
import hpack from "hpack.js";
import { Http2ConnectionError, Http2ErrorCode } from "./frames.js";

/** HPACK's default dynamic table size, which the gateway never changes (RFC 7541 §4.2). */
export const HEADER_TABLE_BYTES = 4096;
/** The size a field counts for against SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2). */
export const FIELD_OVERHEAD_BYTES = 32;

/** Receives one decoded field; `neverIndexed` when the sender marked it sensitive (RFC 7541 §7.1.3). */
export type FieldVisitor = (name: string, value: string, neverIndexed: boolean) => void;

/**
 * Decodes the header blocks one peer sends on one connection. Blocks must be decoded in the order
 * they arrived, even those of streams nobody listens to any more, or the dynamic table goes out of
 * step with the peer's.
 */
export class HpackBlockDecoder {
  private readonly decoder = hpack.decoder.create();
  private readonly table = hpack.table.create({ maxSize: HEADER_TABLE_BYTES });

  /** Calls `visit` for each field of `block`, in order; a malformed block is a COMPRESSION_ERROR connection error. */
  decode(block: Buffer, visit: FieldVisitor): void {
    const decoder = this.decoder;
    const table = this.table;
    let fields = 0;
    try {
      decoder.push(block);
      while (!decoder.isEmpty()) {
        // One representation (RFC 7541 §6): indexed, literal (indexed or not), or a table size update.
        if (decoder.decodeBit() === 1) {
          const entry = table.lookup(decoder.decodeInt());
          fields++;
          visit(entry.name, entry.value, false);
          continue;
        }
        const incremental = decoder.decodeBit() === 1;
        let neverIndexed = false;
        if (!incremental) {
          if (decoder.decodeBit() === 1) {
            // Only at the start of a block (RFC 7541 §4.2); hpack.js checks the size against ours.
            if (fields > 0) throw new Error("dynamic table size update after a field");
            table.updateSize(decoder.decodeInt());
            continue;
          }
          neverIndexed = decoder.decodeBit() === 1;
        }
        const index = decoder.decodeInt();
        let name: string;
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
        const value = bytesToString(valueBytes);
        if (incremental) table.add(name, value, nameSize, valueBytes.length);
        fields++;
        visit(name, value, neverIndexed);
      }
    } catch (error) {
      if (error instanceof Http2ConnectionError) throw error;
      throw new Http2ConnectionError(Http2ErrorCode.COMPRESSION_ERROR, `malformed header block: ${(error as Error).message}`);
    }
  }
}

/** A "literal header field without indexing" (RFC 7541 §6.2.2): by static name index, or with a new name. */
export function literalField(nameIndex: number, name: string | undefined, value: string): Buffer {
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

const MAX_CACHED_FIELDS = 256;
const MAX_CACHED_VALUE_LENGTH = 128;

/**
 * Encoded literal fields by name and value: most metadata repeats call after call (content-type,
 * te, user-agent, grpc-status). Per-call values (request ids, deadlines) would fill it with fields
 * never used again, so it is bounded and starts over when full.
 */
export class LiteralFieldCache {
  private readonly fields = new Map<string, Map<string, Buffer>>();
  private cachedFields = 0;

  /** The encoded field `name: value` (the name lower-cased, as HTTP/2 wants it; latin1 text); `check` runs (and may throw) only for a field not cached. */
  field(name: string, value: string, check?: (name: string, value: string) => void): Buffer {
    let byValue = this.fields.get(name);
    const cached = byValue?.get(value);
    if (cached !== undefined) return cached;
    check?.(name, value);
    const field = literalField(0, name.toLowerCase(), value);
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
}

function bytesToString(bytes: ArrayLike<number>): string {
  if (Buffer.isBuffer(bytes)) return bytes.toString("latin1");
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
  return out;
}
