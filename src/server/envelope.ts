/** Length of the flags byte plus the 4-byte big-endian length that prefix every gRPC / Connect message. */
export const ENVELOPE_HEADER_BYTES = 5;

/** One enveloped message (gRPC, gRPC-web and Connect streaming share the framing). */
export function envelope(flags: number, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + data.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(data.byteLength, 1);
  frame.set(data, ENVELOPE_HEADER_BYTES);
  return frame;
}
