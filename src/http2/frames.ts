/** HTTP/2 frame layout (RFC 9113 §4, §6): the constants and the two halves, writing and reading. */

export const FRAME_HEADER_BYTES = 9;
/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce, and every peer's default. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_ALLOWED_FRAME_SIZE = 16_777_215;
export const DEFAULT_WINDOW_SIZE = 65_535;
export const MAX_WINDOW_SIZE = 2 ** 31 - 1;
export const MAX_STREAM_ID = 2 ** 31 - 1;

export const CONNECTION_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** HTTP/2 error codes (RFC 9113 §7), as carried by RST_STREAM and GOAWAY. */
export const Http2ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** A violation of the protocol by the peer that ends the whole connection with `code` (RFC 9113 §5.4.1). */
export class Http2ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "Http2ConnectionError";
  }
}

/** Write a frame header (length, type, flags, stream id) at `offset` of `target`. */
export function writeFrameHeader(target: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  target[offset] = (length >>> 16) & 0xff;
  target[offset + 1] = (length >>> 8) & 0xff;
  target[offset + 2] = length & 0xff;
  target[offset + 3] = type;
  target[offset + 4] = flags;
  target.writeUInt32BE(streamId & MAX_STREAM_ID, offset + 5);
}

/** One whole frame: header plus `payload`. */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Buffer): Buffer {
  const length = payload === undefined ? 0 : payload.length;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  writeFrameHeader(frame, 0, length, type, flags, streamId);
  if (payload !== undefined) payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** A frame with a 4-byte payload (WINDOW_UPDATE, RST_STREAM). */
export function encodeUint32Frame(type: number, streamId: number, value: number): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(frame, 0, 4, type, 0, streamId);
  frame.writeUInt32BE(value, FRAME_HEADER_BYTES);
  return frame;
}

/** A SETTINGS frame from `[identifier, value]` pairs. */
export function encodeSettings(settings: ReadonlyArray<readonly [number, number]>): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + settings.length * 6);
  writeFrameHeader(frame, 0, settings.length * 6, FrameType.SETTINGS, 0, 0);
  let offset = FRAME_HEADER_BYTES;
  for (const [id, value] of settings) {
    frame.writeUInt16BE(id, offset);
    frame.writeUInt32BE(value, offset + 2);
    offset += 6;
  }
  return frame;
}

/** GOAWAY with the last stream id we processed and why we leave. */
export function encodeGoaway(lastStreamId: number, code: number): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
  writeFrameHeader(frame, 0, 8, FrameType.GOAWAY, 0, 0);
  frame.writeUInt32BE(lastStreamId & MAX_STREAM_ID, FRAME_HEADER_BYTES);
  frame.writeUInt32BE(code, FRAME_HEADER_BYTES + 4);
  return frame;
}

export type FrameHandler = (type: number, flags: number, streamId: number, payload: Buffer) => void;

/**
 * Cuts a byte stream into frames. Payloads are views into the received chunks (no copy) unless a
 * frame spans chunks; a frame longer than `maxFrameSize` is a FRAME_SIZE_ERROR.
 */
export class FrameReader {
  /** The first bytes of a frame header that arrived without the rest. */
  private readonly header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  private headerBytes = 0;
  /**
   * A frame whose header is in and whose payload is not: allocated at its full size once its
   * header is read, and filled as bytes arrive, so a frame sent a byte at a time costs one buffer
   * and linear copying.
   */
  private partial: Buffer | undefined;
  private partialBytes = 0;

  constructor(
    private readonly maxFrameSize: number,
    private readonly onFrame: FrameHandler,
  ) {}

  /** Feed received bytes; calls the handler for every complete frame, in order. */
  push(chunk: Buffer): void {
    let offset = 0;
    if (this.headerBytes > 0 || this.partial !== undefined) {
      offset = this.fill(chunk, 0);
      if (offset === chunk.length) return;
    }
    while (chunk.length - offset >= FRAME_HEADER_BYTES) {
      const length = this.checkedLength(chunk, offset);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > chunk.length) break;
      this.deliver(chunk, offset, end);
      offset = end;
    }
    if (offset < chunk.length) this.fill(chunk, offset);
  }

  /** Add bytes of `chunk` from `offset` to the incomplete frame; the frame goes out once whole. Returns where its bytes end in `chunk`. */
  private fill(chunk: Buffer, offset: number): number {
    if (this.partial === undefined) {
      const taken = Math.min(FRAME_HEADER_BYTES - this.headerBytes, chunk.length - offset);
      chunk.copy(this.header, this.headerBytes, offset, offset + taken);
      this.headerBytes += taken;
      offset += taken;
      if (this.headerBytes < FRAME_HEADER_BYTES) return offset;
      this.headerBytes = 0;
      this.partial = Buffer.allocUnsafe(FRAME_HEADER_BYTES + this.checkedLength(this.header, 0));
      this.header.copy(this.partial, 0);
      this.partialBytes = FRAME_HEADER_BYTES;
    }
    const frame = this.partial;
    const taken = Math.min(frame.length - this.partialBytes, chunk.length - offset);
    chunk.copy(frame, this.partialBytes, offset, offset + taken);
    this.partialBytes += taken;
    offset += taken;
    if (this.partialBytes === frame.length) {
      this.partial = undefined;
      this.deliver(frame, 0, frame.length);
    }
    return offset;
  }

  private deliver(bytes: Buffer, start: number, end: number): void {
    const streamId = bytes.readUInt32BE(start + 5) & MAX_STREAM_ID;
    this.onFrame(bytes[start + 3], bytes[start + 4], streamId, bytes.subarray(start + FRAME_HEADER_BYTES, end));
  }

  private checkedLength(bytes: Buffer, start: number): number {
    const length = (bytes[start] << 16) | (bytes[start + 1] << 8) | bytes[start + 2];
    if (length > this.maxFrameSize) {
      throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds the ${this.maxFrameSize} announced`);
    }
    return length;
  }
}

/** The payload without its padding (PADDED flag: a length byte first, that many zero bytes last). */
export function unpad(flags: number, payload: Buffer): Buffer {
  if ((flags & Flag.PADDED) === 0) return payload;
  if (payload.length < 1) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "padded frame without a pad length");
  const padLength = payload[0];
  if (padLength >= payload.length) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "padding longer than the frame");
  return payload.subarray(1, payload.length - padLength);
}

/** A header block as frames: one HEADERS frame, or HEADERS then CONTINUATION frames when the block exceeds `maxFrameSize`. */
export function headerFrames(streamId: number, block: Buffer, endStream: boolean, maxFrameSize: number): Buffer {
  const endFlag = endStream ? Flag.END_STREAM : 0;
  if (block.length <= maxFrameSize) {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + block.length);
    writeFrameHeader(frame, 0, block.length, FrameType.HEADERS, Flag.END_HEADERS | endFlag, streamId);
    block.copy(frame, FRAME_HEADER_BYTES);
    return frame;
  }
  const frames: Buffer[] = [];
  for (let offset = 0; offset < block.length; offset += maxFrameSize) {
    const part = block.subarray(offset, offset + maxFrameSize);
    const last = offset + maxFrameSize >= block.length;
    const type = offset === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    frames.push(encodeFrame(type, (last ? Flag.END_HEADERS : 0) | (offset === 0 ? endFlag : 0), streamId, part));
  }
  return Buffer.concat(frames);
}

/**
 * A header block arriving in a HEADERS frame and the CONTINUATION frames after it (RFC 9113 §4.3):
 * no other frame may come between them, and the whole block is bounded.
 */
export class HeaderBlockAssembler {
  /** The stream and HEADERS flags of the block being assembled (or last assembled). */
  streamId = 0;
  flags = 0;
  private parts: Buffer[] | undefined;
  private bytes = 0;

  /** `maxBytes` bounds the assembled block; past it is `overflowCode` (a connection error). */
  constructor(
    private readonly maxBytes: number,
    private readonly overflowCode: number,
  ) {}

  /** Whether a block waits for CONTINUATION frames (any other frame is then a PROTOCOL_ERROR). */
  get pending(): boolean {
    return this.parts !== undefined;
  }

  /** A HEADERS frame's block (padding and priority fields removed): the whole block when END_HEADERS is set, else undefined. */
  start(streamId: number, flags: number, block: Buffer): Buffer | undefined {
    this.streamId = streamId;
    this.flags = flags;
    if ((flags & Flag.END_HEADERS) !== 0) return block;
    this.parts = [block];
    this.bytes = block.length;
    return undefined;
  }

  /** A CONTINUATION frame: the whole block once END_HEADERS is set, else undefined. */
  continue(streamId: number, flags: number, payload: Buffer): Buffer | undefined {
    const parts = this.parts;
    if (parts === undefined || streamId !== this.streamId) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "CONTINUATION without a header block to continue");
    }
    // Each frame's header counts too: empty CONTINUATION frames would otherwise pile up for free.
    this.bytes += FRAME_HEADER_BYTES + payload.length;
    if (this.bytes > this.maxBytes) throw new Http2ConnectionError(this.overflowCode, `header block larger than ${this.maxBytes} bytes`);
    parts.push(payload);
    if ((flags & Flag.END_HEADERS) === 0) return undefined;
    this.parts = undefined;
    return Buffer.concat(parts);
  }
}

/**
 * A peer's SETTINGS frame, checked (RFC 9113 §6.5): its settings in order, or undefined for an
 * acknowledgement. Throws the connection error a malformed frame or an out-of-range value is.
 */
export function readSettings(flags: number, streamId: number, payload: Buffer): [id: number, value: number][] | undefined {
  if (streamId !== 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
  if ((flags & Flag.ACK) !== 0) {
    if (payload.length !== 0) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
    return undefined;
  }
  if (payload.length % 6 !== 0) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "SETTINGS of the wrong size");
  const settings: [number, number][] = [];
  for (let offset = 0; offset < payload.length; offset += 6) {
    const id = payload.readUInt16BE(offset);
    const value = payload.readUInt32BE(offset + 2);
    if (id === Setting.INITIAL_WINDOW_SIZE && value > MAX_WINDOW_SIZE) {
      throw new Http2ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE above 2^31-1");
    }
    if (id === Setting.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE)) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
    }
    if (id === Setting.ENABLE_PUSH && value > 1) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH neither 0 nor 1");
    settings.push([id, value]);
  }
  return settings;
}

/** A peer's PING frame, checked (RFC 9113 §6.7): whether it acknowledges one of ours. */
export function readPing(flags: number, streamId: number, payload: Buffer): { ack: boolean } {
  if (streamId !== 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "PING on a stream");
  if (payload.length !== 8) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "PING of the wrong size");
  return { ack: (flags & Flag.ACK) !== 0 };
}

/** A peer's GOAWAY frame, checked (RFC 9113 §6.8): the last stream it took and its error code. */
export function readGoaway(streamId: number, payload: Buffer): { lastStreamId: number; code: number } {
  if (streamId !== 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream");
  if (payload.length < 8) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "GOAWAY too short");
  return { lastStreamId: payload.readUInt32BE(0) & MAX_STREAM_ID, code: payload.readUInt32BE(4) };
}

/** A peer's RST_STREAM frame, checked (RFC 9113 §6.4): its error code. */
export function readResetCode(streamId: number, payload: Buffer): number {
  if (streamId === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
  if (payload.length !== 4) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM of the wrong size");
  return payload.readUInt32BE(0);
}

/**
 * A peer's WINDOW_UPDATE frame, checked (RFC 9113 §6.9): its increment. An increment of 0 is
 * left to the caller on a stream (a stream error there) and refused on the connection.
 */
export function readWindowIncrement(streamId: number, payload: Buffer): number {
  if (payload.length !== 4) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size");
  const increment = payload.readUInt32BE(0) & MAX_WINDOW_SIZE;
  if (streamId === 0 && increment === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
  return increment;
}

/** The connection's send window grown by a WINDOW_UPDATE's increment; past 2^31-1 is a connection error. */
export function grownConnectionWindow(window: number, increment: number): number {
  const grown = window + increment;
  if (grown > MAX_WINDOW_SIZE) throw new Http2ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, "connection window above 2^31-1");
  return grown;
}
