import { EventEmitter } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http2 from "node:http2";
import type * as net from "node:net";
import { Http2ErrorCode } from "../frames.js";

/** What a stream needs of its connection. */
export interface ServerStreamOwner {
  /** The connection's socket, for the peer's address (as `stream.session.socket` on Node's streams). */
  readonly socket: net.Socket;
  /** Send the response headers (or trailers) `headers`; END_STREAM with them when `endStream`. */
  sendHeaders(stream: Http2ServerStream, headers: http2.OutgoingHttpHeaders, endStream: boolean, trailers: boolean): void;
  /** Send what flow control allows of the stream's queued body (and its end, when due). */
  flush(stream: Http2ServerStream): void;
  /** End the stream with RST_STREAM `code` and forget it. */
  resetStream(stream: Http2ServerStream, code: number): void;
  /** The handler read `bytes` of request data: the client may send that much more. */
  consumed(stream: Http2ServerStream, bytes: number): void;
  /** A listener of the stream threw outside the connection's own frame handling. */
  listenerFailed(stream: Http2ServerStream, error: unknown): void;
}

/** Node's default highWaterMark for an HTTP/2 stream: write() returns false past this many queued bytes. */
const WRITE_HIGH_WATER_MARK = 16 * 1024;

/**
 * One request/response exchange on an {@link Http2ServerConnection}, with the members and events of
 * Node's ServerHttp2Stream that the gateway's handlers use. Reading: `data`, `end`, `trailers`,
 * `pause()`/`resume()` (flow control follows what the handler has read). Writing: `respond()`,
 * `write()`, `end()`, `sendTrailers()` after `wantTrailers`, `drain`, `close(code)`. Ending:
 * `aborted` (the client reset it or went away before the response ended), then `close`.
 *
 * Like a Node readable it holds request data until a `data` listener or `resume()` asks for it,
 * so a handler that subscribes late loses nothing.
 */
export class Http2ServerStream extends EventEmitter {
  /** The RST_STREAM code that ended it, the client's or ours. */
  rstCode: number | undefined;
  closed = false;
  destroyed = false;
  /** The request's END_STREAM arrived and `end` was emitted. */
  readableEnded = false;
  /** end() was called (or the response ended with its headers). */
  writableEnded = false;
  headersSent = false;
  sentHeaders: http2.OutgoingHttpHeaders | undefined;
  sentTrailers: http2.OutgoingHttpHeaders | undefined;

  /** Flow control, kept by the connection: what the client may still send, read bytes not yet given back, what we may send. */
  receiveWindow: number;
  consumedUnannounced = 0;
  sendWindow: number;
  /** The request's END_STREAM arrived (the handler may not have read it yet). */
  remoteEnded = false;
  /** Our END_STREAM (or RST_STREAM) went out. */
  localEnded = false;
  /** Response body not yet sent, oldest first. */
  readonly queue: Buffer[] = [];
  queuedBytes = 0;
  /** Send trailers after the body: `wantTrailers` is emitted once the body is out. */
  waitsForTrailers = false;
  trailersAsked = false;
  /** Trailers given with endWithTrailers(), sent once the body is out. */
  pendingTrailers: http2.OutgoingHttpHeaders | undefined;
  /**
   * Serve the stream elsewhere after a handler read part of its body (`alreadyRead`; `requestEnded`
   * when that was all of it): set by the server that owns the stream.
   */
  fallback: ((stream: Http2ServerStream, alreadyRead: Buffer[], requestEnded: boolean) => void) | undefined;
  /** The request's headers, and whether they ended it (END_STREAM, no body): what a fallback re-sends. */
  requestHeaders: http2.IncomingHttpHeaders | undefined;
  endedWithHeaders = false;
  /** Closes the stream if the client keeps uploading after the response ended (set by the connection). */
  uploadGrace: NodeJS.Timeout | undefined = undefined;
  /** Request bytes counted against content-length, and the length announced (-1: none). */
  receivedBytes = 0;
  expectedBytes = -1;

  private flowing = false;
  private paused = false;
  private held: Buffer[] | undefined;
  private heldTrailers: http2.IncomingHttpHeaders | undefined;
  private endHeld = false;
  private needDrain = false;
  private flushScheduled = false;

  constructor(
    private readonly owner: ServerStreamOwner,
    readonly id: number,
    receiveWindow: number,
    sendWindow: number,
  ) {
    super();
    this.receiveWindow = receiveWindow;
    this.sendWindow = sendWindow;
  }

  /** As on Node's streams: `session.socket` is the connection's socket. */
  get session(): { socket: net.Socket } {
    return this.owner;
  }

  /** Bytes queued for the client, as Node's writable streams report them. */
  get writableLength(): number {
    return this.queuedBytes;
  }

  on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    if (event === "data" && !this.flowing && !this.paused) this.resume();
    return this;
  }

  addListener(event: string | symbol, listener: (...args: any[]) => void): this {
    return this.on(event, listener);
  }

  /** Stop delivering `data` until `resume()`; the client stops once the stream's window is used up. */
  pause(): this {
    this.paused = true;
    return this;
  }

  /** Deliver `data` again: what is held goes out on the next tick (as in Node), so listeners added right after this call hear it. */
  resume(): this {
    this.paused = false;
    this.flowing = true;
    if ((this.held !== undefined || this.endHeld) && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushHeld, this);
    }
    return this;
  }

  /** Deliver what arrived while nobody read, until a listener pauses again. */
  flushHeld(): void {
    this.flushScheduled = false;
    if (this.paused || this.closed) return;
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      for (let i = 0; i < held.length; i++) {
        if (this.paused) {
          // A listener paused again: keep the rest for the next resume().
          this.held = held.slice(i).concat(this.held ?? []);
          return;
        }
        this.deliver(held[i]);
      }
    }
    if (this.endHeld && !this.paused) {
      this.endHeld = false;
      this.deliverEnd();
    }
  }

  /** Send the response headers; `endStream` ends the response with them (trailers-only), `waitForTrailers` asks for `wantTrailers` after the body. */
  respond(headers: http2.OutgoingHttpHeaders = { ":status": 200 }, options?: http2.ServerStreamResponseOptions): void {
    if (this.destroyed || this.closed) throw streamError("ERR_HTTP2_INVALID_STREAM", "The stream has been destroyed");
    if (this.headersSent) throw streamError("ERR_HTTP2_HEADERS_SENT", "Response has already been initiated.");
    const status = Number(headers[":status"] ?? 200);
    if (status < 200) throw streamError("ERR_HTTP2_STATUS_INFO", "Informational status codes cannot be used");
    const endStream = options?.endStream === true;
    // Sent first: headers the encoder refuses throw here and leave the stream as it was.
    this.owner.sendHeaders(this, headers, endStream, false);
    this.headersSent = true;
    this.sentHeaders = headers;
    if (options?.waitForTrailers === true && !endStream) this.waitsForTrailers = true;
    if (endStream) this.writableEnded = true;
  }

  /**
   * Queue response body bytes; false once more than Node's high-water mark waits (then wait for
   * `drain`). As with Node's streams, the bytes are not copied: the caller must not change them
   * after writing.
   */
  write(chunk: Uint8Array | string): boolean {
    if (this.closed) return false;
    if (this.writableEnded) {
      // As Node's stream does (it does not destroy itself): `error` on the next tick, and the
      // response already ended still goes out.
      process.nextTick(emitWriteAfterEnd, this);
      return false;
    }
    if (!this.headersSent) this.respond();
    this.enqueue(chunk);
    this.owner.flush(this);
    const below = this.queuedBytes < WRITE_HIGH_WATER_MARK;
    if (!below) this.needDrain = true;
    return below;
  }

  /** End the response, after `chunk` if given. */
  end(chunk?: Uint8Array | string): this {
    if (this.writableEnded || this.closed) return this;
    if (!this.headersSent) this.respond();
    if (chunk !== undefined && chunk.length > 0) this.enqueue(chunk);
    this.writableEnded = true;
    this.owner.flush(this);
    return this;
  }

  /** End the response after its queued body: with `trailers` if given, else with the last DATA frame. */
  endWithTrailers(trailers: http2.OutgoingHttpHeaders | undefined): void {
    if (this.writableEnded || this.closed) return;
    if (!this.headersSent) this.respond();
    if (trailers !== undefined) {
      this.pendingTrailers = trailers;
      this.waitsForTrailers = true;
    }
    this.writableEnded = true;
    this.owner.flush(this);
  }

  /** Send an informational (1xx) header block ahead of the response, as Node's additionalHeaders() does. */
  additionalHeaders(headers: http2.OutgoingHttpHeaders): void {
    if (this.headersSent || this.closed) throw streamError("ERR_HTTP2_HEADERS_AFTER_RESPOND", "Cannot specify additional headers after response initiated");
    const status = Number(headers[":status"]);
    if (!(status >= 100 && status < 200)) throw streamError("ERR_HTTP2_STATUS_INVALID", `Invalid status code: ${String(headers[":status"])}`);
    this.owner.sendHeaders(this, headers, false, false);
  }

  /** Relay the request body into `destination` with backpressure, ending it with the request (Node's readable.pipe, as the gateway uses it). */
  pipe<T extends NodeJS.WritableStream>(destination: T): T {
    const onDrain = (): void => {
      this.resume();
    };
    this.on("data", (chunk: Buffer) => {
      if (!destination.write(chunk)) {
        this.pause();
        destination.once("drain", onDrain);
      }
    });
    this.on("end", () => destination.end());
    this.resume();
    return destination;
  }

  /** Send the trailers (from a `wantTrailers` listener); they end the response. */
  sendTrailers(trailers: http2.OutgoingHttpHeaders): void {
    if (this.closed || this.localEnded) throw streamError("ERR_HTTP2_INVALID_STREAM", "The stream has been destroyed");
    if (this.sentTrailers !== undefined) throw streamError("ERR_HTTP2_TRAILERS_ALREADY_SENT", "Trailing headers have already been sent");
    this.sentTrailers = trailers;
    if (this.queue.length > 0) {
      // Body still held by flow control: the trailers follow it.
      this.pendingTrailers = trailers;
      this.waitsForTrailers = true;
      this.trailersAsked = true;
      this.writableEnded = true;
      this.owner.flush(this);
      return;
    }
    this.owner.sendHeaders(this, trailers, true, true);
  }

  /** End the stream now with RST_STREAM `code` (NO_ERROR by default). */
  close(code: number = Http2ErrorCode.NO_ERROR): void {
    if (this.closed) return;
    this.owner.resetStream(this, code);
  }

  /** Reset the stream (INTERNAL_ERROR with an error, CANCEL without), emitting `error` to its listeners. */
  destroy(error?: Error): this {
    if (this.closed) return this;
    if (error !== undefined && this.listenerCount("error") > 0) this.emit("error", error);
    this.owner.resetStream(this, error === undefined ? Http2ErrorCode.CANCEL : Http2ErrorCode.INTERNAL_ERROR);
    return this;
  }

  /** From the connection: request data arrived. */
  receiveData(chunk: Buffer): void {
    if (!this.flowing || this.paused || this.held !== undefined || this.flushScheduled) {
      // The chunk is a view into the socket's read: a small one held by a paused stream would keep
      // the whole read (up to 64 KiB) alive, so it is copied.
      (this.held ??= []).push(chunk.length * 4 < chunk.buffer.byteLength ? Buffer.from(chunk) : chunk);
    } else {
      this.deliver(chunk);
    }
  }

  /** From the connection: the request's trailers arrived (END_STREAM follows at once). */
  receiveTrailers(trailers: http2.IncomingHttpHeaders): void {
    if (!this.flowing || this.paused || this.held !== undefined || this.flushScheduled) this.heldTrailers = trailers;
    else this.emit("trailers", trailers, 0);
  }

  /** From the connection: the request's END_STREAM arrived. */
  receiveEnd(): void {
    this.remoteEnded = true;
    if (!this.flowing || this.paused || this.held !== undefined || this.flushScheduled) this.endHeld = true;
    else this.deliverEnd();
  }

  /** From the connection: queued body went out; a writer waiting for room hears `drain`. */
  drained(): void {
    if (this.needDrain && this.queuedBytes < WRITE_HIGH_WATER_MARK) {
      this.needDrain = false;
      emitGuarded(this, "drain");
    }
  }

  /** From the connection: the body is out and the response asked for trailers (`wantTrailers` on the next tick, as Node emits it). */
  askForTrailers(): void {
    this.trailersAsked = true;
    process.nextTick(emitWantTrailers, this);
  }

  /** From the connection, once: the stream is over (`aborted` first when the client's side of it broke off). */
  markClosed(code: number | undefined, aborted: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.destroyed = true;
    this.rstCode = code;
    this.held = undefined;
    this.endHeld = false;
    this.queue.length = 0;
    this.queuedBytes = 0;
    // Node emits these on a later tick, never from inside the call that closed the stream.
    process.nextTick(emitClosed, this, aborted);
  }

  /** A listener of this stream threw: the stream is reset (INTERNAL_ERROR) and the error reported. */
  listenerFailed(error: unknown): void {
    this.owner.listenerFailed(this, error);
  }

  private enqueue(chunk: Uint8Array | string): void {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (bytes.length === 0) return;
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
  }

  private deliver(chunk: Buffer): void {
    this.owner.consumed(this, chunk.length);
    this.emit("data", chunk);
  }

  private deliverEnd(): void {
    const trailers = this.heldTrailers;
    if (trailers !== undefined) {
      this.heldTrailers = undefined;
      this.emit("trailers", trailers, 0);
    }
    this.readableEnded = true;
    this.emit("end");
  }
}

// The stream's events outside the connection's frame handling (later ticks, socket drain): a
// listener that throws resets its stream instead of reaching the process.

function flushHeld(stream: Http2ServerStream): void {
  try {
    stream.flushHeld();
  } catch (error) {
    stream.listenerFailed(error);
  }
}

function emitWriteAfterEnd(stream: Http2ServerStream): void {
  if (stream.listenerCount("error") === 0) return;
  try {
    stream.emit("error", streamError("ERR_STREAM_WRITE_AFTER_END", "write after end"));
  } catch (error) {
    stream.listenerFailed(error);
  }
}

function emitWantTrailers(stream: Http2ServerStream): void {
  if (!stream.closed) emitGuarded(stream, "wantTrailers");
}

function emitClosed(stream: Http2ServerStream, aborted: boolean): void {
  if (aborted) emitGuarded(stream, "aborted");
  emitGuarded(stream, "close");
}

function emitGuarded(stream: Http2ServerStream, event: "drain" | "wantTrailers" | "aborted" | "close"): void {
  try {
    stream.emit(event);
  } catch (error) {
    stream.listenerFailed(error);
  }
}

/** A misuse Node's stream methods refuse, named by Node's error code. */
function streamError(nodeCode: string, message: string): ConnectError {
  return new ConnectError(`${message} (${nodeCode})`, Code.Internal);
}
