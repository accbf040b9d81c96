import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { Http2ErrorCode } from "../../http2/frames.js";

/** What a stream needs of its connection. */
export interface StreamOwner {
  /** Cancel or refuse the stream (RST_STREAM) and forget it. */
  resetStream(stream: Http2ClientStream, code: number): void;
  /** The caller consumed `bytes` of response data: the upstream may send that much more. */
  consumed(stream: Http2ClientStream, bytes: number): void;
}

/**
 * One request/response exchange on an {@link Http2ClientConnection}, with the events and members
 * of Node's ClientHttp2Stream that the gRPC pass-through relies on: `response` (headers, flags),
 * `data`, `trailers`, `end`, `close`, and `pause`/`resume` for backpressure. The request (headers
 * and the whole body) is given when the stream is opened.
 *
 * Like a Node readable, it starts paused: `data`, `trailers` and `end` wait for `resume()`, since
 * a whole response often arrives in one read, before the caller has seen `response` and added
 * its listeners. (Unlike Node's, adding a `data` listener does not resume it.)
 */
export class Http2ClientStream extends EventEmitter {
  /** 0 until the connection could open it (waiting for a free slot under MAX_CONCURRENT_STREAMS). */
  id = 0;
  /** The RST_STREAM code that ended it, ours or the upstream's. */
  rstCode: number | undefined;
  /** Why it failed without a reset: the connection failed or refused it (marked "not sent" when nothing left). */
  failure: ConnectError | undefined;
  readableEnded = false;
  closed = false;

  /** Our side of flow control: how much more the upstream may send on this stream. */
  receiveWindow: number;
  /** Response bytes the caller consumed that no WINDOW_UPDATE has given back yet. */
  consumedUnannounced = 0;
  /** How much of the request body the upstream's window lets us send. */
  sendWindow = 0;
  /** The request body not yet sent (flow control), from `sendOffset`. */
  body: Buffer | undefined;
  sendOffset = 0;
  headersReceived = false;

  private paused = true;
  private buffered: Buffer[] | undefined;
  private trailersBuffered: [http2.IncomingHttpHeaders, number] | undefined;
  private endBuffered = false;

  constructor(
    private readonly owner: StreamOwner,
    readonly headerBlock: Buffer,
    body: Buffer,
    receiveWindow: number,
  ) {
    super();
    this.body = body;
    this.receiveWindow = receiveWindow;
  }

  /** Stop delivering `data` until `resume()`; the upstream stops once our window is used up. */
  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    const buffered = this.buffered;
    this.buffered = undefined;
    if (buffered !== undefined) {
      for (let i = 0; i < buffered.length; i++) {
        if (this.paused) {
          // A listener paused again: keep the rest for the next resume().
          this.buffered = buffered.slice(i).concat(this.buffered ?? []);
          return this;
        }
        this.deliver(buffered[i]);
      }
    }
    if (this.paused) return this;
    const trailers = this.trailersBuffered;
    if (trailers !== undefined) {
      this.trailersBuffered = undefined;
      this.emit("trailers", trailers[0], trailers[1]);
    }
    if (this.endBuffered && !this.paused) {
      this.endBuffered = false;
      this.finish();
    }
    return this;
  }

  /** Cancel the exchange (RST_STREAM with `code`, CANCEL by default); `close` follows. */
  close(code: number = Http2ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.owner.resetStream(this, code);
  }

  /** From the connection: response data for this stream. */
  receiveData(chunk: Buffer): void {
    if (this.paused) {
      (this.buffered ??= []).push(chunk);
      return;
    }
    this.deliver(chunk);
  }

  /** From the connection: the upstream ended the response (END_STREAM). */
  receiveEnd(): void {
    if (this.paused) {
      this.endBuffered = true;
      return;
    }
    this.finish();
  }

  /** From the connection: a header block, the response's head or its trailers. */
  receiveHeaders(headers: http2.IncomingHttpHeaders, flags: number): void {
    if (!this.headersReceived) {
      this.headersReceived = true;
      this.emit("response", headers, flags);
    } else if (this.paused) {
      this.trailersBuffered = [headers, flags];
    } else {
      this.emit("trailers", headers, flags);
    }
  }

  /** From the connection: the stream is gone (reset, connection lost, or ended). Emits `close` once. */
  markClosed(rstCode: number | undefined, failure: ConnectError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.body = undefined;
    this.buffered = undefined;
    this.trailersBuffered = undefined;
    if (rstCode !== undefined) this.rstCode = rstCode;
    if (failure !== undefined) this.failure = failure;
    this.emit("close");
  }

  private deliver(chunk: Buffer): void {
    this.owner.consumed(this, chunk.length);
    this.emit("data", chunk);
  }

  private finish(): void {
    if (this.readableEnded) return;
    this.readableEnded = true;
    this.emit("end");
    this.markClosed(undefined, undefined);
  }
}
