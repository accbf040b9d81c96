/**
 * Raw sockets for hostile-input tests: bytes exactly as written (no client library fixing them
 * up), HTTP/2 frames built by hand, and bounded waits for the server's answer or for it to hang up.
 */
import * as net from "node:net";

export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flags = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

/** One HTTP/2 frame: 9-byte header then the payload. */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInteger(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const bytes = [firstByte | max];
  value -= max;
  while (value >= 128) {
    bytes.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  return Buffer.concat([hpackInteger(bytes.length, 7, 0), bytes]);
}

/** A header block of literal fields without indexing (no Huffman, no dynamic table): simple and always valid HPACK. */
export function headerBlock(headers: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

/** A client SETTINGS frame (empty: every default). */
export const EMPTY_SETTINGS = frame(FrameType.SETTINGS, 0, 0);
export const SETTINGS_ACK = frame(FrameType.SETTINGS, Flags.ACK, 0);

/** What a raw connection saw: bytes received and how it ended. */
export interface RawOutcome {
  received: Buffer;
  /** The server closed (FIN or reset) before our deadline. */
  closedByServer: boolean;
  /** Milliseconds from connect to the server closing (or to our deadline). */
  elapsedMs: number;
}

export interface RawConnection {
  socket: net.Socket;
  received(): Buffer;
  /** Write, ignoring errors (the server may have hung up already). */
  write(bytes: Uint8Array | string): Promise<void>;
  /** Resolves when the server closes the connection, or after `timeoutMs` (then we destroy it). */
  closed(timeoutMs: number): Promise<RawOutcome>;
  destroy(): void;
}

/** Open a raw TCP connection to 127.0.0.1:port. */
export function rawConnect(port: number, options: { read?: boolean } = {}): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let closedAt: number | undefined;
    let onClosed: (() => void) | undefined;
    socket.on("data", (chunk: Buffer) => {
      if (chunks.reduce((n, c) => n + c.length, 0) < 1 << 20) chunks.push(chunk);
    });
    if (options.read === false) socket.pause();
    socket.on("error", () => undefined);
    socket.on("close", () => {
      closedAt ??= Date.now();
      onClosed?.();
    });
    socket.once("connect", () =>
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        write: (bytes) =>
          new Promise((done) => {
            if (socket.destroyed || !socket.writable) return done();
            socket.write(bytes, () => done());
          }),
        closed: (timeoutMs) =>
          new Promise((done) => {
            const finish = (byServer: boolean) => {
              clearTimeout(timer);
              onClosed = undefined;
              socket.destroy();
              done({ received: Buffer.concat(chunks), closedByServer: byServer, elapsedMs: (closedAt ?? Date.now()) - started });
            };
            const timer = setTimeout(() => finish(false), timeoutMs);
            if (closedAt !== undefined || socket.destroyed) finish(true);
            else {
              onClosed = () => finish(true);
              // A FIN from the server counts as closing even if we have not ended our side.
              socket.once("end", () => {
                closedAt ??= Date.now();
                finish(true);
              });
            }
          }),
        destroy: () => socket.destroy(),
      }),
    );
    socket.once("error", reject);
  });
}

/** Send one raw HTTP/1.1 request and read until the server closes or `timeoutMs`. */
export async function rawHttp1(port: number, request: Buffer | string, timeoutMs = 5_000): Promise<RawOutcome & { status: number | undefined; head: string; body: Buffer }> {
  const connection = await rawConnect(port);
  await connection.write(request);
  const outcome = await connection.closed(timeoutMs);
  const text = outcome.received.toString("latin1");
  const split = text.indexOf("\r\n\r\n");
  const head = split >= 0 ? text.slice(0, split) : text;
  const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
  return { ...outcome, status: status === undefined ? undefined : Number(status), head, body: outcome.received.subarray(split >= 0 ? split + 4 : outcome.received.length) };
}

/** Parse the frames a server sent (best effort: a trailing partial frame is ignored). */
export function parseFrames(bytes: Buffer): { type: number; flags: number; streamId: number; payload: Buffer }[] {
  const frames = [];
  let offset = 0;
  while (offset + 9 <= bytes.length) {
    const length = bytes.readUIntBE(offset, 3);
    if (offset + 9 + length > bytes.length) break;
    frames.push({ type: bytes[offset + 3], flags: bytes[offset + 4], streamId: bytes.readUInt32BE(offset + 5) & 0x7fffffff, payload: bytes.subarray(offset + 9, offset + 9 + length) });
    offset += 9 + length;
  }
  return frames;
}

/**
 * Send one HTTP/1.1 request without reading the answer, run `drain` once it has had 100 ms to be
 * written (mostly into the server's socket buffer), then read until the server closes (or
 * `timeoutMs`): the answer's head, every byte received, and whether the server closed.
 */
export async function readAnswerAfterDrain(port: number, request: string, drain: () => void, timeoutMs = 5_000): Promise<{ head: string; totalBytes: number; closedByServer: boolean }> {
  const connection = await rawConnect(port, { read: false });
  await connection.write(request);
  await new Promise((resolve) => setTimeout(resolve, 100));
  drain();
  // The raw connection keeps only its first MiB: count everything here.
  let totalBytes = 0;
  connection.socket.on("data", (chunk: Buffer) => (totalBytes += chunk.length));
  connection.socket.resume();
  const outcome = await connection.closed(timeoutMs);
  const head = outcome.received.toString("latin1", 0, outcome.received.indexOf("\r\n\r\n") + 4);
  return { head, totalBytes, closedByServer: outcome.closedByServer };
}
