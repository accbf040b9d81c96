/**
 * The length-prefixed message framing shared by gRPC, gRPC-web and Connect streaming:
 * one flags byte, a 4-byte big-endian length, then the payload.
 */
export interface Envelope {
  flags: number;
  data: Buffer;
}

/** Connect: the end-of-stream message (JSON, carries the error and trailers). */
export const CONNECT_END_STREAM_FLAG = 0b0000_0010;
/** gRPC-web: the trailers frame (HTTP/1-style header lines). */
export const GRPC_WEB_TRAILER_FLAG = 0b1000_0000;

export function encodeEnvelope(data: Uint8Array | string, flags = 0): Buffer {
  const payload = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function encodeEnvelopes(messages: readonly (Uint8Array | string)[]): Buffer {
  return Buffer.concat(messages.map((m) => encodeEnvelope(m)));
}

/** Split a body into envelopes; throws on a truncated frame so a cut-off body cannot pass. */
export function decodeEnvelopes(body: Buffer): Envelope[] {
  const envelopes: Envelope[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < 5) throw new Error(`truncated envelope header at byte ${offset} of ${body.length}`);
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    const end = offset + 5 + length;
    if (end > body.length) throw new Error(`truncated envelope at byte ${offset}: needs ${length} bytes, has ${body.length - offset - 5}`);
    envelopes.push({ flags, data: body.subarray(offset + 5, end) });
    offset = end;
  }
  return envelopes;
}

/** Parse a gRPC-web trailers frame ("grpc-status: 0\r\ngrpc-message: ...\r\n"). */
export function parseGrpcWebTrailers(data: Buffer): Record<string, string> {
  const trailers: Record<string, string> = {};
  for (const line of data.toString("latin1").split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new Error(`malformed gRPC-web trailer line ${JSON.stringify(line)}`);
    trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return trailers;
}
