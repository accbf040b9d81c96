import { afterEach, describe, expect, it, vi } from "vitest";
import { Flag, FrameReader, FrameType, Http2ConnectionError, encodeFrame } from "../../src/http2/frames.js";

interface ReadFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function collect(maxFrameSize = 16_384): { reader: FrameReader; frames: ReadFrame[] } {
  const frames: ReadFrame[] = [];
  const reader = new FrameReader(maxFrameSize, (type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: Buffer.from(payload) }));
  return { reader, frames };
}

describe("FrameReader", () => {
  afterEach(() => vi.restoreAllMocks());

  it("reads frames split at every possible byte, in order", () => {
    const bytes = Buffer.concat([
      encodeFrame(FrameType.DATA, 0, 1, Buffer.from("first")),
      encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8, 9)),
      encodeFrame(FrameType.DATA, Flag.END_STREAM, 3, Buffer.alloc(0)),
    ]);
    for (let split = 1; split < bytes.length; split++) {
      const { reader, frames } = collect();
      reader.push(bytes.subarray(0, split));
      reader.push(bytes.subarray(split));
      expect(frames.map((f) => [f.type, f.flags, f.streamId, f.payload.toString("hex")])).toEqual([
        [FrameType.DATA, 0, 1, Buffer.from("first").toString("hex")],
        [FrameType.PING, 0, 0, "0909090909090909"],
        [FrameType.DATA, Flag.END_STREAM, 3, ""],
      ]);
    }
  });

  it("collects a frame sent a byte at a time in one buffer of its size, not by joining the bytes again with every read", () => {
    const payload = Buffer.alloc(16_000, 5);
    const bytes = encodeFrame(FrameType.DATA, 0, 1, payload);
    const frames: Buffer[] = [];
    const reader = new FrameReader(16_384, (_type, _flags, _streamId, framePayload) => frames.push(framePayload));
    const concat = vi.spyOn(Buffer, "concat");
    const allocations = vi.spyOn(Buffer, "allocUnsafe");
    for (let i = 0; i < bytes.length; i++) reader.push(bytes.subarray(i, i + 1));
    expect(frames).toHaveLength(1);
    expect(frames[0].equals(payload)).toBe(true);
    expect(concat).not.toHaveBeenCalled();
    expect(allocations.mock.calls).toEqual([[bytes.length]]);
    // The frame's payload is its own buffer, not a view that keeps a client's reads alive.
    expect(frames[0].buffer.byteLength).toBeLessThanOrEqual(bytes.length + 8192);
  });

  it("reads the frames after an incomplete one from the same read in place", () => {
    const first = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(100, 1));
    const rest = Buffer.concat([encodeFrame(FrameType.DATA, 0, 3, Buffer.alloc(50, 2)), encodeFrame(FrameType.DATA, Flag.END_STREAM, 5, Buffer.alloc(20, 3))]);
    const { reader, frames } = collect();
    reader.push(first.subarray(0, 4));
    reader.push(Buffer.concat([first.subarray(4), rest]));
    expect(frames.map((f) => [f.streamId, f.payload.length, f.flags])).toEqual([[1, 100, 0], [3, 50, 0], [5, 20, Flag.END_STREAM]]);
  });

  it("refuses a frame longer than announced as soon as its header is in", () => {
    const { reader } = collect(100);
    const header = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(101)).subarray(0, 9);
    reader.push(header.subarray(0, 4));
    expect(() => reader.push(header.subarray(4))).toThrow(Http2ConnectionError);
  });
});
