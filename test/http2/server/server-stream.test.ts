import type * as net from "node:net";
import { describe, expect, it } from "vitest";
import { Http2ErrorCode } from "../../../src/http2/frames.js";
import { Http2ServerStream, type ServerStreamOwner } from "../../../src/http2/server/server-stream.js";

/** A stand-in for the connection that records what the stream asks of it (the connection itself is tested in server-connection.test.ts). */
function recordingOwner(): ServerStreamOwner & { resets: number[]; consumedBytes: number } {
  return {
    socket: undefined as unknown as net.Socket,
    resets: [],
    consumedBytes: 0,
    sendHeaders() {},
    flush() {},
    resetStream(stream, code) {
      this.resets.push(code);
      stream.markClosed(code, false);
    },
    consumed(_stream, bytes) {
      this.consumedBytes += bytes;
    },
    listenerFailed() {},
  };
}

describe("Http2ServerStream", () => {
  it("copies a small chunk it holds for a paused reader, so the socket read it came in is not kept alive", async () => {
    const owner = recordingOwner();
    const stream = new Http2ServerStream(owner, 1, 65_535, 65_535);
    const socketRead = Buffer.alloc(60_000, 1);
    stream.receiveData(socketRead.subarray(100, 110));
    const large = socketRead.subarray(0, 50_000);
    stream.receiveData(large);
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    await new Promise((resolve) => process.nextTick(resolve));
    expect(chunks).toHaveLength(2);
    expect(chunks[0].equals(Buffer.alloc(10, 1))).toBe(true);
    expect(chunks[0].buffer).not.toBe(socketRead.buffer);
    // A large chunk is most of its read: passed on as it is.
    expect(chunks[1]).toBe(large);
    expect(owner.consumedBytes).toBe(50_010);
  });

  it("answers write() after end() as Node's stream does: false, and an error on the next tick, the ended response left alone", async () => {
    const owner = recordingOwner();
    const stream = new Http2ServerStream(owner, 1, 65_535, 65_535);
    const errors: unknown[] = [];
    stream.on("error", (error) => errors.push(error));
    stream.end("body");
    let written: boolean | undefined;
    expect(() => (written = stream.write("more"))).not.toThrow();
    expect(written).toBe(false);
    expect(errors).toEqual([]);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(String(errors[0])).toContain("ERR_STREAM_WRITE_AFTER_END");
    expect(owner.resets).toEqual([]);
    expect(stream.queue.map((chunk) => chunk.toString())).toEqual(["body"]);
  });
});
