import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { CONNECTION_SPECIFIC_FIELDS, LOWER_CASE_FIELD_NAME } from "../field-names.js";
import { LiteralFieldCache, literalField } from "../hpack.js";

/** Static table entries for :status (RFC 7541 Appendix A), sent as one indexed byte. */
const INDEXED_STATUS: Record<number, Buffer> = {
  200: Buffer.of(0x80 | 8),
  204: Buffer.of(0x80 | 9),
  206: Buffer.of(0x80 | 10),
  304: Buffer.of(0x80 | 11),
  400: Buffer.of(0x80 | 12),
  404: Buffer.of(0x80 | 13),
  500: Buffer.of(0x80 | 14),
};
const STATIC_STATUS_NAME = 8;
/** What no outgoing value may hold (lib/internal/http2/util.js). */
const INVALID_VALUE = /[\0\r\n]/;
/** Names Node refuses to send (te is allowed as "trailers"). */
const CONNECTION_SPECIFIC = new Set([...CONNECTION_SPECIFIC_FIELDS, "http2-settings"]);

/**
 * Response header blocks and trailers for one connection (stateless HPACK, src/http2/hpack.ts).
 * Like Node's respond(), it adds a `date` field when the headers have none. A field it has not
 * encoded before is checked as Node checks it; a bad one throws, and nothing is sent.
 */
export class ResponseHeaderEncoder {
  private readonly fields = new LiteralFieldCache();
  private readonly statuses = new Map<number, Buffer>();
  private dateSecond = 0;
  private dateField: Buffer = Buffer.alloc(0);

  /** The block of response headers (`trailers` false: :status first, a date added) or of trailers. */
  encode(headers: http2.OutgoingHttpHeaders, trailers: boolean): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    if (!trailers) {
      const status = this.status(headers[":status"]);
      parts.push(status);
      size += status.length;
      if (headers.date === undefined) {
        const date = this.date();
        parts.push(date);
        size += date.length;
      }
    }
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || value === null) continue;
      if (name.charCodeAt(0) === 58 /* ":" */) {
        if (trailers || name !== ":status") throw new ConnectError(`cannot send pseudo-header ${name}`, Code.Internal);
        continue;
      }
      if (Array.isArray(value)) {
        for (const item of value) size += push(parts, this.field(name, String(item)));
      } else {
        size += push(parts, this.field(name, typeof value === "string" ? value : String(value)));
      }
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
  }

  private field(name: string, value: string): Buffer {
    // Checked only when not cached: a cached field passed the same check.
    return this.fields.field(name, value, checkField);
  }

  private status(value: http2.OutgoingHttpHeaders[string]): Buffer {
    const status = value === undefined ? 200 : Number(value);
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new ConnectError(`invalid response status ${String(value)}`, Code.Internal);
    }
    const indexed = INDEXED_STATUS[status];
    if (indexed !== undefined) return indexed;
    let field = this.statuses.get(status);
    if (field === undefined) this.statuses.set(status, (field = literalField(STATIC_STATUS_NAME, undefined, String(status))));
    return field;
  }

  /** `date: <now>`, as Node adds it, made once a second. */
  private date(): Buffer {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.dateSecond) {
      this.dateSecond = second;
      this.dateField = literalField(33 /* date */, undefined, new Date(second * 1000).toUTCString());
    }
    return this.dateField;
  }
}

/** Throws for a field Node's respond() would refuse to send. */
function checkField(givenName: string, value: string): void {
  // Node lower-cases names before it checks and sends them; so does the encoder.
  const name = givenName.toLowerCase();
  if (!LOWER_CASE_FIELD_NAME.test(name) || CONNECTION_SPECIFIC.has(name) || (name === "te" && value !== "trailers")) {
    throw new ConnectError(`invalid response header name ${JSON.stringify(name)}`, Code.Internal);
  }
  if (INVALID_VALUE.test(value)) throw new ConnectError(`invalid value for response header ${name}`, Code.Internal);
}

function push(parts: Buffer[], part: Buffer): number {
  parts.push(part);
  return part.length;
}
