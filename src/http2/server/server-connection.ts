import type * as http2 from "node:http2";
import type * as net from "node:net";
import {
  CONNECTION_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW_SIZE,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  encodeUint32Frame,
  Flag,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  HeaderBlockAssembler,
  headerFrames,
  grownConnectionWindow,
  readGoaway,
  readPing,
  readResetCode,
  readSettings,
  readWindowIncrement,
  Http2ConnectionError,
  Http2ErrorCode,
  MAX_STREAM_ID,
  MAX_WINDOW_SIZE,
  Setting,
  unpad,
  writeFrameHeader,
} from "../frames.js";
import { StreamTable } from "../stream-tables.js";
import { ResetBucket } from "../reset-bucket.js";
import { RequestHeaderDecoder, type RequestHead } from "./request-headers.js";
import { ResponseHeaderEncoder } from "./response-headers.js";
import { Http2ServerStream, type ServerStreamOwner } from "./server-stream.js";

/** The limits of one connection; see GatewayConfig.limits for their meaning and defaults. */
export interface Http2ServerLimits {
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, and the largest header block a request may send. */
  maxHeaderListBytes: number;
  /** Close (GOAWAY) a connection without a byte either way for this long; 0 never. */
  idleTimeoutMs: number;
}

export interface Http2ServerConnectionOptions {
  limits: Http2ServerLimits;
  /** A new request: its stream and its headers (the stream knows whether they ended it). A throw resets the stream with INTERNAL_ERROR. */
  onStream(stream: Http2ServerStream, head: RequestHead): void;
  /** The connection ended (every stream closed); called once. */
  onClose?(): void;
  /** A problem worth a log line: the client broke the protocol, or a handler threw. */
  onProblem?(message: string, error?: unknown): void;
}

/** Node's defaults, which the gateway keeps: request header fields per block, and streams' receive window. */
const MAX_HEADER_FIELDS = 128;
const STREAM_RECEIVE_WINDOW = DEFAULT_WINDOW_SIZE;
/** The connection's receive window: streams are bounded each, so this is only about round trips. */
const CONNECTION_RECEIVE_WINDOW = 16 * 1024 * 1024;
/** Response data is only framed while the socket holds less than this, so a client that stops reading stalls its own streams. */
const SOCKET_HIGH_WATER_BYTES = 64 * 1024;
/** DATA payloads smaller than this are copied behind their frame header (one socket write); larger ones are written as they are. */
const COPIED_PAYLOAD_BYTES = 4 * 1024;
/** Output waiting in the socket past which the client's further requests are not read until it drains. */
const MAX_UNREAD_OUTPUT_BYTES = 1024 * 1024;
/** Frames we owe the client (ACKs, resets) while it is not reading; more is a flood (nghttp2's limit: 1,000). */
const MAX_QUEUED_CONTROL_FRAMES = 1000;
/** Empty DATA frames (no END_STREAM) a client may send, as nghttp2 counts them, before that is a flood. */
const MAX_EMPTY_DATA_FRAMES = 1000;
/** How long a stream answered before its upload ended may go on uploading before it is closed with NO_ERROR. */
const EARLY_ANSWER_UPLOAD_GRACE_MS = 1_000;
/** How long a closing connection waits for the client to close its side before cutting it. */
const CLOSE_GRACE_MS = 1_000;

const SETTINGS_ACK = encodeFrame(FrameType.SETTINGS, Flag.ACK, 0);

type State = "preface" | "settings" | "open" | "closed";

/**
 * The server side of one HTTP/2 connection (RFC 9113) on a socket, written for the gateway's hot
 * path instead of Node's http2 server: it frames and parses in JavaScript, with a few objects per
 * call and no strings outside the young generation (Node's server hands each request header value
 * over as an external string, which only a full collection frees).
 *
 * It speaks what nghttp2 speaks for Node's server: SETTINGS, PING, GOAWAY, RST_STREAM,
 * WINDOW_UPDATE and flow control both ways, CONTINUATION, padding and priority fields (parsed,
 * then ignored), the request checks of RFC 9113 §8, and nghttp2's limits against floods (rapid
 * reset, empty frames, control frames the client does not read).
 */
export class Http2ServerConnection implements ServerStreamOwner {
  private state: State = "preface";
  private readonly reader: FrameReader;
  private readonly decoder: RequestHeaderDecoder;
  private readonly encoder = new ResponseHeaderEncoder();
  private readonly streams = new StreamTable<Http2ServerStream>();
  /** Streams with body queued that flow control or the socket holds back, in the order they blocked. */
  private readonly blocked = new Set<Http2ServerStream>();
  private prefaceReceived = 0;
  /** The highest stream id the client opened; ids at or below it are never opened again. */
  private lastStreamId = 0;
  /** GOAWAY sent: no new streams, and the socket closes once the last one ends. */
  private goawaySent = false;
  private peerGoaway = false;

  private peerInitialWindow = DEFAULT_WINDOW_SIZE;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private connectionSendWindow = DEFAULT_WINDOW_SIZE;
  private connectionReceiveWindow = CONNECTION_RECEIVE_WINDOW;
  private connectionUnacknowledged = 0;

  private readonly headerBlock: HeaderBlockAssembler;

  /** nghttp2's rapid-reset bucket, which Node's server has: past it the connection is closed. */
  private readonly resets = new ResetBucket(performance.now());
  private emptyDataFrames = 0;
  private queuedControlFrames = 0;

  private heldWrites = false;
  private readingPaused = false;
  private closeReported = false;
  private lastActiveAt = Date.now();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: net.Socket,
    private readonly options: Http2ServerConnectionOptions,
  ) {
    const { limits } = options;
    this.decoder = new RequestHeaderDecoder(limits.maxHeaderListBytes, MAX_HEADER_FIELDS);
    // The encoded block is never larger than what it decodes to, but for Huffman-coded padding bits.
    this.headerBlock = new HeaderBlockAssembler(limits.maxHeaderListBytes + DEFAULT_MAX_FRAME_SIZE, Http2ErrorCode.ENHANCE_YOUR_CALM);
    this.reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE, this.onFrame);
    socket.setNoDelay(true);
    socket.on("data", this.onData);
    socket.on("drain", this.onSocketDrain);
    socket.on("error", this.onSocketError);
    socket.on("close", this.onSocketClose);
    socket.on("end", this.onSocketEnd);
    // RFC 9113 §3.4: the server's preface is a SETTINGS frame, sent without waiting for the client's.
    this.write(
      Buffer.concat([
        encodeSettings([
          [Setting.MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams],
          [Setting.MAX_HEADER_LIST_SIZE, limits.maxHeaderListBytes],
          [Setting.ENABLE_PUSH, 0],
        ]),
        encodeUint32Frame(FrameType.WINDOW_UPDATE, 0, CONNECTION_RECEIVE_WINDOW - DEFAULT_WINDOW_SIZE),
      ]),
    );
    if (limits.idleTimeoutMs > 0) {
      this.timer = setInterval(this.onTimer, Math.min(limits.idleTimeoutMs, 1_000));
      this.timer.unref();
    }
  }

  /** Feed bytes read from the socket before this connection took it (while sniffing the protocol). */
  receive(bytes: Buffer): void {
    this.onData(bytes);
  }

  /** Streams open now. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Whether it takes no new streams (GOAWAY sent, or over), as Node's `session.closed`. */
  get closed(): boolean {
    return this.goawaySent || this.state === "closed";
  }

  /** Whether the connection is over, as Node's `session.destroyed`. */
  get destroyed(): boolean {
    return this.state === "closed";
  }

  /** Graceful close: GOAWAY(NO_ERROR) naming the last stream taken, the open streams finish, then the socket closes. */
  close(): void {
    if (this.state === "closed") return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.write(encodeGoaway(this.lastStreamId, Http2ErrorCode.NO_ERROR));
    }
    if (this.streams.size === 0) this.finish();
  }

  /** Close now: open streams are aborted, the socket is destroyed. */
  destroy(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.socket.destroy();
    this.closeAllStreams(true);
  }

  // ServerStreamOwner: what the streams ask of their connection.

  sendHeaders(stream: Http2ServerStream, headers: http2.OutgoingHttpHeaders, endStream: boolean, trailers: boolean): void {
    if (stream.closed || this.state === "closed") return;
    const block = this.encoder.encode(headers, trailers);
    this.lastActiveAt = Date.now();
    this.write(headerFrames(stream.id, block, endStream, this.peerMaxFrameSize));
    if (endStream) this.endedLocally(stream);
  }

  flush(stream: Http2ServerStream): void {
    if (stream.closed || this.state === "closed") return;
    this.sendBody(stream);
  }

  resetStream(stream: Http2ServerStream, code: number): void {
    if (stream.closed) return;
    if (this.state !== "closed") this.write(encodeUint32Frame(FrameType.RST_STREAM, stream.id, code));
    this.forget(stream, code, !stream.localEnded && code !== Http2ErrorCode.NO_ERROR);
  }

  listenerFailed(stream: Http2ServerStream, error: unknown): void {
    this.options.onProblem?.(`HTTP/2 stream ${stream.id} failed in a listener or its trailers`, error);
    if (!stream.closed) this.resetStream(stream, Http2ErrorCode.INTERNAL_ERROR);
  }

  consumed(stream: Http2ServerStream, bytes: number): void {
    if (stream.closed || stream.remoteEnded || this.state === "closed") return;
    stream.consumedUnannounced += bytes;
    // Top up in half-window steps: one WINDOW_UPDATE per 32 KiB read, not one per frame.
    const owed = stream.consumedUnannounced;
    if (owed < STREAM_RECEIVE_WINDOW / 2) return;
    stream.consumedUnannounced = 0;
    stream.receiveWindow += owed;
    this.write(encodeUint32Frame(FrameType.WINDOW_UPDATE, stream.id, owed));
  }

  // Reading.

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === "closed") return;
    this.lastActiveAt = Date.now();
    try {
      if (this.state === "preface") {
        chunk = this.readPreface(chunk);
        if (chunk.length === 0) return;
      }
      this.reader.push(chunk);
    } catch (error) {
      if (error instanceof Http2ConnectionError) {
        this.options.onProblem?.(`HTTP/2 protocol error from the client: ${error.message}`);
        this.fail(error.code);
        return;
      }
      // A fault of ours (or of a stream's listener): the connection's state is no longer trustworthy.
      this.options.onProblem?.("internal error serving an HTTP/2 connection", error);
      this.fail(Http2ErrorCode.INTERNAL_ERROR);
    }
  };

  /** Checks the client's connection preface (RFC 9113 §3.4); returns the bytes after it. */
  private readPreface(chunk: Buffer): Buffer {
    const wanted = CONNECTION_PREFACE.length - this.prefaceReceived;
    const part = chunk.subarray(0, wanted);
    if (!part.equals(CONNECTION_PREFACE.subarray(this.prefaceReceived, this.prefaceReceived + part.length))) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "invalid connection preface");
    }
    this.prefaceReceived += part.length;
    if (this.prefaceReceived === CONNECTION_PREFACE.length) this.state = "settings";
    return chunk.subarray(part.length);
  }

  private readonly onFrame = (type: number, flags: number, streamId: number, payload: Buffer): void => {
    if (this.state === "closed") return;
    if (this.headerBlock.pending && type !== FrameType.CONTINUATION) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "header block interrupted by another frame");
    }
    if (this.state === "settings") {
      if (type !== FrameType.SETTINGS || (flags & Flag.ACK) !== 0) {
        throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "the client's first frame was not SETTINGS");
      }
      this.state = "open";
    }
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuationFrame(flags, streamId, payload);
      case FrameType.PRIORITY:
        return this.onPriorityFrame(streamId, payload);
      case FrameType.RST_STREAM:
        return this.onResetFrame(streamId, payload);
      case FrameType.SETTINGS:
        return this.onSettingsFrame(flags, streamId, payload);
      case FrameType.PING:
        return this.onPingFrame(flags, streamId, payload);
      case FrameType.GOAWAY:
        return this.onGoawayFrame(streamId, payload);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdateFrame(streamId, payload);
      case FrameType.PUSH_PROMISE:
        throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  };

  private onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    if (streamId > this.lastStreamId) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream");
    this.connectionReceiveWindow -= payload.length;
    if (this.connectionReceiveWindow < 0) throw new Http2ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, "the client overran the connection's window");
    // The connection's window is given back at once: each stream's own window bounds what waits.
    this.connectionUnacknowledged += payload.length;
    if (this.connectionUnacknowledged >= CONNECTION_RECEIVE_WINDOW / 2) {
      this.connectionReceiveWindow += this.connectionUnacknowledged;
      this.write(encodeUint32Frame(FrameType.WINDOW_UPDATE, 0, this.connectionUnacknowledged));
      this.connectionUnacknowledged = 0;
    }
    const ends = (flags & Flag.END_STREAM) !== 0;
    if (payload.length === 0 && !ends && ++this.emptyDataFrames > MAX_EMPTY_DATA_FRAMES) {
      throw new Http2ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, "too many empty DATA frames");
    }
    const stream = this.streams.get(streamId);
    // A stream we reset (or that just ended) may still receive what was in flight.
    if (stream === undefined) return;
    if (stream.remoteEnded) return this.resetWithError(stream, Http2ErrorCode.STREAM_CLOSED, "DATA after the request ended");
    const data = unpad(flags, payload);
    stream.receiveWindow -= payload.length;
    if (stream.receiveWindow < 0) return this.resetWithError(stream, Http2ErrorCode.FLOW_CONTROL_ERROR, "the client overran the stream's window");
    const padding = payload.length - data.length;
    if (padding > 0) this.consumed(stream, padding);
    stream.receivedBytes += data.length;
    if (stream.expectedBytes >= 0 && (stream.receivedBytes > stream.expectedBytes || (ends && stream.receivedBytes !== stream.expectedBytes))) {
      return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "request body length differs from content-length");
    }
    if (data.length > 0) {
      try {
        stream.receiveData(data);
      } catch (error) {
        return this.listenerFailed(stream, error);
      }
    }
    if (ends) this.endedRemotely(stream);
  }

  private onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    if ((streamId & 1) === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "HEADERS on an even (server-initiated) stream id");
    let block = unpad(flags, payload);
    if ((flags & Flag.PRIORITY) !== 0) {
      if (block.length < 5) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority fields");
      if ((block.readUInt32BE(0) & MAX_STREAM_ID) === streamId) {
        throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "a stream depending on itself");
      }
      block = block.subarray(5);
    }
    const whole = this.headerBlock.start(streamId, flags, block);
    if (whole !== undefined) this.onHeaderBlock(whole);
  }

  private onContinuationFrame(flags: number, streamId: number, payload: Buffer): void {
    const whole = this.headerBlock.continue(streamId, flags, payload);
    if (whole !== undefined) this.onHeaderBlock(whole);
  }

  private onHeaderBlock(block: Buffer): void {
    const streamId = this.headerBlock.streamId;
    const ends = (this.headerBlock.flags & Flag.END_STREAM) !== 0;
    if (streamId <= this.lastStreamId) {
      const stream = this.streams.get(streamId);
      // Decoded in any case, to keep the HPACK table in step.
      const trailers = this.decoder.decode(block, true);
      if (stream === undefined) {
        // Trailers of a stream we reset or that ended may still be in flight; the id of a
        // stream that never opened cannot come back (RFC 9113 §5.1.1).
        return;
      }
      if (stream.remoteEnded) return this.resetWithError(stream, Http2ErrorCode.STREAM_CLOSED, "HEADERS after the request ended");
      if (!ends) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "request trailers without END_STREAM");
      if ("malformed" in trailers) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, trailers.malformed);
      if ("tooLarge" in trailers) return this.resetWithError(stream, Http2ErrorCode.ENHANCE_YOUR_CALM, trailers.tooLarge);
      if (stream.expectedBytes >= 0 && stream.receivedBytes !== stream.expectedBytes) {
        return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "request body length differs from content-length");
      }
      try {
        stream.receiveTrailers(trailers.headers);
      } catch (error) {
        return this.listenerFailed(stream, error);
      }
      this.endedRemotely(stream);
      return;
    }
    this.lastStreamId = streamId;
    const head = this.decoder.decode(block, false);
    // After our GOAWAY new streams are ignored: the client learnt which it may retry.
    if (this.goawaySent) return;
    if ("tooLarge" in head) return this.refuse(streamId, Http2ErrorCode.ENHANCE_YOUR_CALM, head.tooLarge);
    if ("malformed" in head) return this.refuse(streamId, Http2ErrorCode.PROTOCOL_ERROR, head.malformed);
    if (this.streams.size >= this.options.limits.maxConcurrentStreams) {
      return this.refuse(streamId, Http2ErrorCode.REFUSED_STREAM, "over SETTINGS_MAX_CONCURRENT_STREAMS");
    }
    const stream = new Http2ServerStream(this, streamId, STREAM_RECEIVE_WINDOW, this.peerInitialWindow);
    const contentLength = head.headers["content-length"];
    if (contentLength !== undefined) {
      if (!/^\d{1,15}$/.test(contentLength)) return this.refuse(streamId, Http2ErrorCode.PROTOCOL_ERROR, "invalid content-length");
      stream.expectedBytes = Number(contentLength);
      if (ends && stream.expectedBytes !== 0) return this.refuse(streamId, Http2ErrorCode.PROTOCOL_ERROR, "request body length differs from content-length");
    }
    stream.requestHeaders = head.headers;
    stream.endedWithHeaders = ends;
    this.streams.set(streamId, stream);
    try {
      this.options.onStream(stream, head);
    } catch (error) {
      this.options.onProblem?.("a stream handler threw", error);
      this.resetStream(stream, Http2ErrorCode.INTERNAL_ERROR);
      return;
    }
    if (ends) this.endedRemotely(stream);
  }

  private onPriorityFrame(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0");
    if (payload.length !== 5) {
      const stream = this.streams.get(streamId);
      if (stream !== undefined) return this.resetWithError(stream, Http2ErrorCode.FRAME_SIZE_ERROR, "PRIORITY of the wrong size");
      this.write(encodeUint32Frame(FrameType.RST_STREAM, streamId, Http2ErrorCode.FRAME_SIZE_ERROR));
      return;
    }
    if ((payload.readUInt32BE(0) & MAX_STREAM_ID) === streamId) {
      const stream = this.streams.get(streamId);
      if (stream !== undefined) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "a stream depending on itself");
    }
    // Priorities are advice (RFC 9113 §5.3): responses go out in the order they are ready.
  }

  private onResetFrame(streamId: number, payload: Buffer): void {
    const code = readResetCode(streamId, payload);
    if (streamId > this.lastStreamId) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    this.countReset();
    this.forget(stream, code, !stream.localEnded);
  }

  private onSettingsFrame(flags: number, streamId: number, payload: Buffer): void {
    const settings = readSettings(flags, streamId, payload);
    if (settings === undefined) return;
    for (const [id, value] of settings) {
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW_SIZE) throw new Http2ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, "a stream's window above 2^31-1");
        }
      } else if (id === Setting.MAX_FRAME_SIZE) {
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: our encoder never indexes. MAX_CONCURRENT_STREAMS: we never push.
      // MAX_HEADER_LIST_SIZE: advice about what the client accepts.
    }
    this.writeControl(SETTINGS_ACK);
    this.sendBlocked();
  }

  private onPingFrame(flags: number, streamId: number, payload: Buffer): void {
    if (readPing(flags, streamId, payload).ack) return;
    this.writeControl(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
  }

  private onGoawayFrame(streamId: number, payload: Buffer): void {
    readGoaway(streamId, payload);
    // The client opens no more streams; those open finish, then the connection closes.
    this.peerGoaway = true;
    if (this.streams.size === 0) this.close();
  }

  private onWindowUpdateFrame(streamId: number, payload: Buffer): void {
    const increment = readWindowIncrement(streamId, payload);
    if (streamId === 0) {
      this.connectionSendWindow = grownConnectionWindow(this.connectionSendWindow, increment);
      this.sendBlocked();
      return;
    }
    if (streamId > this.lastStreamId) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW_SIZE) return this.resetWithError(stream, Http2ErrorCode.FLOW_CONTROL_ERROR, "stream window above 2^31-1");
    if (this.blocked.has(stream)) this.sendBody(stream);
  }

  // Stream lifecycle.

  /** Refuse a new stream before it was handed to anyone. */
  private refuse(streamId: number, code: number, message: string): void {
    if (code !== Http2ErrorCode.REFUSED_STREAM) this.options.onProblem?.(`HTTP/2 stream ${streamId} refused: ${message}`);
    this.writeControl(encodeUint32Frame(FrameType.RST_STREAM, streamId, code));
  }

  /** A stream-level protocol violation: reset that stream only (RFC 9113 §5.4.2). */
  private resetWithError(stream: Http2ServerStream, code: number, message: string): void {
    this.options.onProblem?.(`HTTP/2 stream ${stream.id} reset: ${message}`);
    this.writeControl(encodeUint32Frame(FrameType.RST_STREAM, stream.id, code));
    this.forget(stream, code, true);
  }

  private endedRemotely(stream: Http2ServerStream): void {
    if (stream.closed) return;
    try {
      stream.receiveEnd();
    } catch (error) {
      // A listener of this stream threw while the connection read a frame: only its stream pays.
      return this.listenerFailed(stream, error);
    }
    if (stream.localEnded && !stream.closed) this.forget(stream, undefined, false);
  }

  private endedLocally(stream: Http2ServerStream): void {
    stream.localEnded = true;
    this.blocked.delete(stream);
    if (stream.remoteEnded) {
      this.forget(stream, undefined, false);
      return;
    }
    // Answered before the upload ended: the rest is discarded after a grace period (RFC 9113 §8.1).
    stream.uploadGrace = setTimeout(closeStillUploading, EARLY_ANSWER_UPLOAD_GRACE_MS, this, stream).unref();
  }

  /** Take the stream out of the connection; it emits (aborted and) close on the next tick. */
  private forget(stream: Http2ServerStream, code: number | undefined, aborted: boolean): void {
    if (stream.closed) return;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    if (stream.uploadGrace !== undefined) clearTimeout(stream.uploadGrace);
    stream.markClosed(code, aborted);
    if (this.streams.size === 0 && (this.goawaySent || this.peerGoaway)) this.close();
  }

  private closeAllStreams(aborted: boolean): void {
    for (const stream of [...this.streams.values()]) this.forget(stream, undefined, aborted && !stream.localEnded);
  }

  // Writing.

  /** Send what the windows and the socket allow of the stream's queued body, and its end when due. */
  private sendBody(stream: Http2ServerStream): void {
    const queue = stream.queue;
    let sentData = false;
    while (queue.length > 0) {
      if (this.socket.writableLength >= SOCKET_HIGH_WATER_BYTES) break;
      const chunk = queue[0];
      const size = Math.min(chunk.length, this.peerMaxFrameSize, stream.sendWindow, this.connectionSendWindow);
      if (size <= 0) break;
      const part = size === chunk.length ? chunk : chunk.subarray(0, size);
      if (size === chunk.length) queue.shift();
      else queue[0] = chunk.subarray(size);
      stream.queuedBytes -= size;
      stream.sendWindow -= size;
      this.connectionSendWindow -= size;
      const last = queue.length === 0 && stream.writableEnded && !stream.waitsForTrailers;
      if (size < COPIED_PAYLOAD_BYTES) {
        const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
        writeFrameHeader(frame, 0, size, FrameType.DATA, last ? Flag.END_STREAM : 0, stream.id);
        part.copy(frame, FRAME_HEADER_BYTES);
        this.write(frame);
      } else {
        // A large payload is not copied: its frame header and the payload itself go to the
        // corked socket, which hands both to one writev.
        const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        writeFrameHeader(header, 0, size, FrameType.DATA, last ? Flag.END_STREAM : 0, stream.id);
        this.write(header);
        this.write(part);
      }
      sentData = true;
    }
    if (sentData) this.lastActiveAt = Date.now();
    if (queue.length > 0) {
      this.blocked.add(stream);
      stream.drained();
      return;
    }
    this.blocked.delete(stream);
    if (stream.writableEnded && !stream.localEnded) {
      if (stream.pendingTrailers !== undefined) {
        const trailers = stream.pendingTrailers;
        stream.pendingTrailers = undefined;
        stream.sentTrailers = trailers;
        // Encoded only now, perhaps from a socket's drain: trailers it refuses reset their stream.
        try {
          this.sendHeaders(stream, trailers, true, true);
        } catch (error) {
          this.listenerFailed(stream, error);
        }
      } else if (stream.waitsForTrailers) {
        if (!stream.trailersAsked) stream.askForTrailers();
      } else if (!sentData) {
        this.write(encodeFrame(FrameType.DATA, Flag.END_STREAM, stream.id));
        this.endedLocally(stream);
      } else {
        this.endedLocally(stream);
      }
    }
    if (!stream.closed) stream.drained();
  }

  private sendBlocked(): void {
    if (this.blocked.size === 0) return;
    for (const stream of [...this.blocked]) {
      if (this.connectionSendWindow <= 0 || this.socket.writableLength >= SOCKET_HIGH_WATER_BYTES) return;
      this.sendBody(stream);
    }
  }

  private readonly onSocketDrain = (): void => {
    this.queuedControlFrames = 0;
    if (this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
    this.sendBlocked();
  };

  /**
   * Bytes for the socket, held (the socket corked) until the end of this event-loop turn, so the
   * frames of every call answered in one turn leave in one system call.
   */
  private write(bytes: Buffer): void {
    if (this.state === "closed") return;
    if (!this.heldWrites) {
      this.heldWrites = true;
      this.socket.cork();
      setImmediate(this.releaseWrites);
    }
    this.socket.write(bytes);
    // Answers a client does not read must not pile up: stop reading its requests until they drain.
    if (!this.readingPaused && this.socket.writableLength > MAX_UNREAD_OUTPUT_BYTES) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  /** A frame the client's own frames made us owe; too many while it does not read is a flood. */
  private writeControl(frame: Buffer): void {
    if (this.socket.writableLength >= SOCKET_HIGH_WATER_BYTES && ++this.queuedControlFrames > MAX_QUEUED_CONTROL_FRAMES) {
      throw new Http2ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, "the client sends frames that need answers but does not read them");
    }
    this.write(frame);
  }

  private readonly releaseWrites = (): void => {
    if (!this.heldWrites) return;
    this.heldWrites = false;
    this.socket.uncork();
  };

  // Limits and endings.

  /** A client reset, taken from nghttp2's bucket: past it the connection is closed with ENHANCE_YOUR_CALM. */
  private countReset(): void {
    if (!this.resets.take(performance.now())) throw new Http2ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, "too many stream resets");
  }

  /** A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, every stream aborted, the socket closed. */
  private fail(code: number): void {
    if (this.state === "closed") return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.write(encodeGoaway(this.lastStreamId, code));
    }
    this.releaseWrites();
    this.state = "closed";
    this.closeAllStreams(true);
    this.endSocket();
  }

  /** Every stream has ended after a GOAWAY: close the socket. */
  private finish(): void {
    this.releaseWrites();
    this.state = "closed";
    this.endSocket();
  }

  private endSocket(): void {
    this.socket.end();
    // A client that never closes its side must not keep the socket forever.
    setTimeout(destroySocket, CLOSE_GRACE_MS, this.socket).unref();
  }

  private readonly onTimer = (): void => {
    if (this.state === "closed") return;
    const idleMs = this.options.limits.idleTimeoutMs;
    if (Date.now() - this.lastActiveAt >= idleMs) this.close();
  };

  private readonly onSocketEnd = (): void => {
    // The client sends nothing more: streams still waiting for request bytes never get them.
    if (this.state === "closed") return;
    this.releaseWrites();
    this.state = "closed";
    this.closeAllStreams(true);
    this.socket.end();
  };

  private readonly onSocketError = (): void => {
    // 'close' follows, which ends everything.
  };

  private readonly onSocketClose = (): void => {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.state = "closed";
    this.closeAllStreams(true);
    if (this.closeReported) return;
    this.closeReported = true;
    this.options.onClose?.();
  };
}

function closeStillUploading(connection: Http2ServerConnection, stream: Http2ServerStream): void {
  if (!stream.closed) connection.resetStream(stream, Http2ErrorCode.NO_ERROR);
}

function destroySocket(socket: net.Socket): void {
  socket.destroy();
}
