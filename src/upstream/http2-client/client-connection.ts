import type * as net from "node:net";
import type * as tls from "node:tls";
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { markNotSent } from "../upstream-errors.js";
import { connectUpstreamSocket, type UpstreamTlsOptions } from "../upstream-socket.js";
import { Http2ClientStream, type StreamOwner } from "./client-stream.js";
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
} from "../../http2/frames.js";
import { RequestHeaderEncoder, ResponseHeaderDecoder } from "./header-block.js";
import { StreamTable } from "../../http2/stream-tables.js";

export interface Http2ClientConnectionOptions {
  host: string;
  port: number;
  /** `host:port` for `:authority`. */
  authority: string;
  /** TLS settings; undefined for cleartext h2c. */
  tls?: UpstreamTlsOptions;
  connectTimeoutMs: number;
  /** PING after this long without a frame while streams are open; 0 disables. */
  keepAliveMs: number;
  /** How long a keep-alive PING may go unanswered before the connection counts as dead. */
  pingTimeoutMs?: number;
  /** Close the connection after this long without streams. */
  idleTimeoutMs?: number;
}

/**
 * Each stream may have this much response data in flight, so a paused reader (a slow client)
 * holds at most this per call: the same bound as Node's http2 client, which the pass-through
 * used before.
 */
const STREAM_RECEIVE_WINDOW = 64 * 1024;
/** The connection's receive window: streams are bounded each, so this is only about round trips. */
const CONNECTION_RECEIVE_WINDOW = 16 * 1024 * 1024;
const MAX_RESPONSE_HEADER_BYTES = 64 * 1024;
const DEFAULT_PING_TIMEOUT_MS = 15_000;
/** Writes sent in one syscall at most (see write()); 4 served the most calls per second of 1, 4, 16 and a whole turn. */
const WRITES_PER_BATCH = 4;
const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;
/** A SETTINGS ACK, always the same bytes. */
const SETTINGS_ACK = encodeFrame(FrameType.SETTINGS, Flag.ACK, 0);

type ConnectionState = "connecting" | "open" | "closed";

/**
 * A client HTTP/2 connection written for the gRPC pass-through's hot path, on a plain TCP (or TLS)
 * socket instead of Node's http2 module. A call through Node's ClientHttp2Session costs about
 * 60–80 µs of CPU on the benchmark machine (a native stream handle, an AsyncResource and
 * deprecation wrappers per request, and stream objects that outlive scavenges); this one frames
 * the request into one buffer and parses the response with a few objects per call.
 *
 * Scope: requests whose body is known whole when the stream opens (unary and server-streaming
 * gRPC), sent with flow control; responses of any length, with backpressure through `pause()`.
 * It handles SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, CONTINUATION and padding; it
 * refuses server push. Streaming requests keep using Node's http2 client.
 */
export class Http2ClientConnection implements StreamOwner {
  /** Called once when the connection closes: it takes no more streams and every stream has been told. */
  onClose: (() => void) | undefined;

  private state: ConnectionState = "connecting";
  private readonly socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly encoder: RequestHeaderEncoder;
  private readonly decoder = new ResponseHeaderDecoder(MAX_RESPONSE_HEADER_BYTES);
  /** Not a Map: see StreamTable for why (ended streams must stay young garbage). */
  private readonly streams = new StreamTable<Http2ClientStream>();
  /** Streams waiting for a slot under the upstream's MAX_CONCURRENT_STREAMS. */
  private readonly waiting: Http2ClientStream[] = [];
  /** Streams with request bytes held back by flow control, in the order they blocked. */
  private readonly blocked = new Set<Http2ClientStream>();
  private nextStreamId = 1;
  /** No new streams: GOAWAY received, ids used up, or closed by us. */
  private draining = false;
  private drainingReason = "";

  // The upstream's settings (RFC 9113 §6.5.2 defaults until its SETTINGS arrive), but for the
  // stream limit: unlimited by default, yet a server announcing a small one would refuse the
  // excess sent before its SETTINGS arrive. 100 is the least the RFC asks servers to allow.
  private peerMaxConcurrentStreams = 100;
  private peerInitialWindow = DEFAULT_WINDOW_SIZE;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private connectionSendWindow = DEFAULT_WINDOW_SIZE;
  private connectionUnacknowledged = 0;
  private receivedSettings = false;

  private readonly headerBlock = new HeaderBlockAssembler(MAX_RESPONSE_HEADER_BYTES, Http2ErrorCode.ENHANCE_YOUR_CALM);

  /** Writes held in the corked socket since the last release. */
  private heldWrites = 0;
  private lastFrameAt = Date.now();
  private lastActiveAt = Date.now();
  private pingSentAt = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: Http2ClientConnectionOptions) {
    this.encoder = new RequestHeaderEncoder(options.authority, options.tls ? "https" : "http");
    this.reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE, this.onFrame);
    this.socket = this.openSocket();
    this.write(
      Buffer.concat([
        CONNECTION_PREFACE,
        encodeSettings([
          [Setting.ENABLE_PUSH, 0],
          [Setting.INITIAL_WINDOW_SIZE, STREAM_RECEIVE_WINDOW],
          [Setting.MAX_HEADER_LIST_SIZE, MAX_RESPONSE_HEADER_BYTES],
        ]),
        encodeUint32Frame(FrameType.WINDOW_UPDATE, 0, CONNECTION_RECEIVE_WINDOW - DEFAULT_WINDOW_SIZE),
      ]),
    );
    const interval = options.keepAliveMs > 0 ? Math.min(options.keepAliveMs, 60_000) : 60_000;
    this.timer = setInterval(this.onTimer, interval);
    this.timer.unref();
  }

  /** Whether new streams may start here (false once it drains, fails or closes). */
  get acceptsStreams(): boolean {
    return !this.draining && this.state !== "closed";
  }

  /** Streams open or waiting on this connection. */
  get activeStreams(): number {
    return this.streams.size + this.waiting.length;
  }

  /**
   * Start a POST to `path` with `headers` and the whole request `body`. Throws a "not sent"
   * UNAVAILABLE when the connection takes no new streams; later failures arrive as the
   * stream's `close` with `failure` or `rstCode` set.
   */
  request(path: string, headers: http2.OutgoingHttpHeaders, body: Buffer): Http2ClientStream {
    if (!this.acceptsStreams) {
      throw markNotSent(new ConnectError(`connection to ${this.options.authority} takes no new streams: ${this.drainingReason || "closed"}`, Code.Unavailable));
    }
    const stream = new Http2ClientStream(this, this.encoder.encode(path, headers), body, STREAM_RECEIVE_WINDOW);
    this.lastActiveAt = Date.now();
    if (this.streams.size >= this.peerMaxConcurrentStreams) this.waiting.push(stream);
    else this.open(stream);
    return stream;
  }

  /** Stop taking streams; close once the open ones finish. */
  close(reason = "closed by the gateway"): void {
    if (this.state === "closed") return;
    this.startDraining(reason);
    if (this.activeStreams === 0) this.shutdown(Http2ErrorCode.NO_ERROR);
  }

  /** Close now; open streams fail with UNAVAILABLE. */
  destroy(reason: string): void {
    if (this.state === "closed") return;
    this.fail(new ConnectError(reason, Code.Unavailable), Http2ErrorCode.CANCEL);
  }

  resetStream(stream: Http2ClientStream, code: number): void {
    const waitingIndex = this.waiting.indexOf(stream);
    if (waitingIndex !== -1) {
      this.waiting.splice(waitingIndex, 1);
    } else if (this.streams.get(stream.id) === stream) {
      this.forget(stream);
      if (this.state !== "closed") this.write(encodeUint32Frame(FrameType.RST_STREAM, stream.id, code));
    }
    stream.markClosed(code, undefined);
    this.afterStreamEnded();
  }

  consumed(stream: Http2ClientStream, bytes: number): void {
    // An ended or reset stream needs no more window.
    if (this.state === "closed" || this.streams.get(stream.id) !== stream) return;
    stream.consumedUnannounced += bytes;
    // Top up in half-window steps: one WINDOW_UPDATE per 32 KiB read, not one per frame.
    const owed = stream.consumedUnannounced;
    if (owed < STREAM_RECEIVE_WINDOW / 2) return;
    stream.consumedUnannounced = 0;
    stream.receiveWindow += owed;
    this.write(encodeUint32Frame(FrameType.WINDOW_UPDATE, stream.id, owed));
  }

  /**
   * Bytes for the socket. Writes are held (the socket corked) until WRITES_PER_BATCH of them
   * are queued or the event-loop turn ends, whichever comes first: that saves most of the
   * syscalls (and upstream wake-ups) of a burst of calls, while the upstream already works on
   * the first calls as the gateway reads the rest. Holding every write to the end of the turn
   * saved more syscalls but served fewer calls per second on the benchmark: the upstream sat
   * idle until the gateway had read the whole burst.
   */
  private write(bytes: Buffer): void {
    if (this.heldWrites === 0) {
      this.socket.cork();
      setImmediate(this.releaseWrites);
    }
    this.socket.write(bytes);
    if (++this.heldWrites >= WRITES_PER_BATCH) this.releaseWrites();
  }

  private readonly releaseWrites = (): void => {
    if (this.heldWrites === 0) return;
    this.heldWrites = 0;
    this.socket.uncork();
  };

  private openSocket(): net.Socket {
    const { host, port, connectTimeoutMs } = this.options;
    const tlsOptions = this.options.tls;
    const socket = connectUpstreamSocket(host, port, tlsOptions);
    // Node has no connect timeout: an unreachable pod would hold calls for the OS's TCP timeout.
    socket.setTimeout(connectTimeoutMs, () => {
      this.fail(markNotSent(new ConnectError(`connecting to ${this.options.authority} timed out after ${connectTimeoutMs} ms`, Code.Unavailable)), undefined);
    });
    socket.once(tlsOptions ? "secureConnect" : "connect", () => {
      socket.setTimeout(0);
      if (tlsOptions && (socket as tls.TLSSocket).alpnProtocol !== "h2") {
        this.fail(markNotSent(new ConnectError(`${this.options.authority} did not agree to HTTP/2 over TLS (ALPN)`, Code.Unavailable)), undefined);
        return;
      }
      if (this.state === "connecting") this.state = "open";
    });
    socket.on("data", this.onData);
    socket.on("error", (error: Error) => {
      const notSent = this.state === "connecting";
      const failure = new ConnectError(`connection to ${this.options.authority} failed: ${error.message}`, Code.Unavailable, undefined, undefined, error);
      this.fail(notSent ? markNotSent(failure) : failure, undefined);
    });
    socket.on("close", () => {
      this.fail(new ConnectError(`connection to ${this.options.authority} closed`, Code.Unavailable), undefined);
    });
    return socket;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastFrameAt = Date.now();
    try {
      this.reader.push(chunk);
    } catch (error) {
      if (error instanceof Http2ConnectionError) {
        this.fail(new ConnectError(`protocol error from ${this.options.authority}: ${error.message}`, Code.Unavailable, undefined, undefined, error), error.code);
        return;
      }
      // A fault of ours (or of a stream's listener) while handling the bytes: the connection's
      // state is no longer trustworthy, so its calls fail UNAVAILABLE instead of the process.
      const message = error instanceof Error ? error.message : String(error);
      this.fail(new ConnectError(`internal error reading from ${this.options.authority}: ${message}`, Code.Unavailable, undefined, undefined, error), Http2ErrorCode.INTERNAL_ERROR);
    }
  };

  private readonly onFrame = (type: number, flags: number, streamId: number, payload: Buffer): void => {
    if (this.state === "closed") return;
    if (this.headerBlock.pending && type !== FrameType.CONTINUATION) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "header block interrupted by another frame");
    }
    if (!this.receivedSettings && type !== FrameType.SETTINGS) {
      throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "the server's first frame was not SETTINGS");
    }
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuationFrame(flags, streamId, payload);
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
        throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "server push was disabled (SETTINGS_ENABLE_PUSH 0)");
      default:
        // PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5).
        return;
    }
  };

  private onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    this.connectionUnacknowledged += payload.length;
    if (this.connectionUnacknowledged >= CONNECTION_RECEIVE_WINDOW / 2) {
      this.write(encodeUint32Frame(FrameType.WINDOW_UPDATE, 0, this.connectionUnacknowledged));
      this.connectionUnacknowledged = 0;
    }
    const stream = this.streams.get(streamId);
    // A stream we reset may still receive what was in flight.
    if (stream === undefined) return;
    if (!stream.headersReceived) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "DATA before response headers");
    const data = unpad(flags, payload);
    stream.receiveWindow -= payload.length;
    if (stream.receiveWindow < 0) return this.resetWithError(stream, Http2ErrorCode.FLOW_CONTROL_ERROR, "the upstream overran the stream's flow-control window");
    const padding = payload.length - data.length;
    if (padding > 0) this.consumed(stream, padding);
    const ends = (flags & Flag.END_STREAM) !== 0;
    if (ends) this.forget(stream);
    if (data.length > 0) stream.receiveData(data);
    if (ends) {
      stream.receiveEnd();
      this.afterStreamEnded();
    }
  }

  private onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    let block = unpad(flags, payload);
    if ((flags & Flag.PRIORITY) !== 0) {
      if (block.length < 5) throw new Http2ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority fields");
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
    const headers = this.decoder.decode(block);
    const stream = this.streams.get(this.headerBlock.streamId);
    if (stream === undefined) return;
    const flags = this.headerBlock.flags;
    const ends = (flags & Flag.END_STREAM) !== 0;
    const status = headers[":status"];
    if (!stream.headersReceived && !ends && typeof status === "string" && status.charCodeAt(0) === 49 /* "1" */) {
      return; // 1xx informational: the real response follows.
    }
    if (stream.headersReceived && !ends) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM");
    if (typeof status === "string") headers[":status"] = Number(status) as never;
    if (ends) this.forget(stream);
    stream.receiveHeaders(headers, flags);
    if (ends) {
      stream.receiveEnd();
      this.afterStreamEnded();
    }
  }

  private onResetFrame(streamId: number, payload: Buffer): void {
    const code = readResetCode(streamId, payload);
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    this.forget(stream);
    const failure =
      code === Http2ErrorCode.REFUSED_STREAM ? markNotSent(new ConnectError("upstream refused the stream (REFUSED_STREAM)", Code.Unavailable)) : undefined;
    stream.markClosed(code, failure);
    this.afterStreamEnded();
  }

  private onSettingsFrame(flags: number, streamId: number, payload: Buffer): void {
    const settings = readSettings(flags, streamId, payload);
    if (settings === undefined) return;
    if (!this.receivedSettings) {
      this.receivedSettings = true;
      // Its first SETTINGS names every limit the server sets: an unmentioned stream limit is none.
      this.peerMaxConcurrentStreams = Number.POSITIVE_INFINITY;
    }
    for (const [id, value] of settings) {
      if (id === Setting.MAX_CONCURRENT_STREAMS) {
        this.peerMaxConcurrentStreams = value;
      } else if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) stream.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) {
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: our encoder never indexes, so any size suits it.
    }
    this.write(SETTINGS_ACK);
    this.openWaiting();
    this.sendBlocked();
  }

  private onPingFrame(flags: number, streamId: number, payload: Buffer): void {
    if (readPing(flags, streamId, payload).ack) {
      this.pingSentAt = 0;
      return;
    }
    this.write(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
  }

  private onGoawayFrame(streamId: number, payload: Buffer): void {
    const { lastStreamId, code } = readGoaway(streamId, payload);
    this.startDraining(`the upstream closed its connection (GOAWAY, HTTP/2 code ${code})`);
    // Streams above the last one it processed never reached its application: safe to retry.
    for (const stream of [...this.streams.values()]) {
      if (stream.id <= lastStreamId) continue;
      this.forget(stream);
      stream.markClosed(undefined, markNotSent(new ConnectError(`the upstream closed its connection before this call (GOAWAY, HTTP/2 code ${code})`, Code.Unavailable)));
    }
    this.afterStreamEnded();
  }

  private onWindowUpdateFrame(streamId: number, payload: Buffer): void {
    const increment = readWindowIncrement(streamId, payload);
    if (streamId === 0) {
      this.connectionSendWindow = grownConnectionWindow(this.connectionSendWindow, increment);
    } else {
      const stream = this.streams.get(streamId);
      if (stream === undefined) return;
      if (increment === 0) return this.resetWithError(stream, Http2ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      stream.sendWindow += increment;
      if (stream.sendWindow > MAX_WINDOW_SIZE) return this.resetWithError(stream, Http2ErrorCode.FLOW_CONTROL_ERROR, "stream window above 2^31-1");
    }
    this.sendBlocked();
  }

  /** Give the stream an id and send its headers and as much of its body as the windows allow. */
  private open(stream: Http2ClientStream): void {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    // Ids are never reused: the last one closes this connection to new streams.
    if (this.nextStreamId > MAX_STREAM_ID) this.startDraining("stream ids used up");
    stream.id = id;
    stream.sendWindow = this.peerInitialWindow;
    this.streams.set(id, stream);
    const block = stream.headerBlock;
    const body = stream.body!;
    const endWithHeaders = body.length === 0;
    const maxFrame = this.peerMaxFrameSize;
    const head = headerFrames(id, block, endWithHeaders, maxFrame);
    if (endWithHeaders) {
      stream.body = undefined;
      this.write(head);
      return;
    }
    // The common case, a message that fits every window: headers and body in one write.
    if (body.length <= maxFrame && body.length <= stream.sendWindow && body.length <= this.connectionSendWindow) {
      const out = Buffer.allocUnsafe(head.length + FRAME_HEADER_BYTES + body.length);
      head.copy(out, 0);
      writeFrameHeader(out, head.length, body.length, FrameType.DATA, Flag.END_STREAM, id);
      body.copy(out, head.length + FRAME_HEADER_BYTES);
      stream.sendWindow -= body.length;
      this.connectionSendWindow -= body.length;
      stream.body = undefined;
      this.write(out);
      return;
    }
    this.write(head);
    this.sendBody(stream);
  }

  /** Send what the windows allow of the stream's remaining body; the rest waits for WINDOW_UPDATE. */
  private sendBody(stream: Http2ClientStream): void {
    const body = stream.body;
    if (body === undefined) return;
    const frames: Buffer[] = [];
    while (stream.sendOffset < body.length) {
      const size = Math.min(body.length - stream.sendOffset, this.peerMaxFrameSize, stream.sendWindow, this.connectionSendWindow);
      if (size <= 0) break;
      const last = stream.sendOffset + size === body.length;
      frames.push(encodeFrame(FrameType.DATA, last ? Flag.END_STREAM : 0, stream.id, body.subarray(stream.sendOffset, stream.sendOffset + size)));
      stream.sendOffset += size;
      stream.sendWindow -= size;
      this.connectionSendWindow -= size;
    }
    if (frames.length > 0) this.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    if (stream.sendOffset >= body.length) {
      stream.body = undefined;
      this.blocked.delete(stream);
    } else {
      this.blocked.add(stream);
    }
  }

  private sendBlocked(): void {
    if (this.blocked.size === 0) return;
    for (const stream of [...this.blocked]) {
      if (this.connectionSendWindow <= 0) return;
      this.sendBody(stream);
    }
  }

  private openWaiting(): void {
    while (this.waiting.length > 0 && this.streams.size < this.peerMaxConcurrentStreams && this.acceptsStreams) {
      this.open(this.waiting.shift()!);
    }
  }

  private failWaiting(reason: string): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting.splice(0);
    for (const stream of waiting) stream.markClosed(undefined, markNotSent(new ConnectError(reason, Code.Unavailable)));
  }

  private forget(stream: Http2ClientStream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
  }

  /** A stream-level protocol violation: reset that stream only (RFC 9113 §5.4.2). */
  private resetWithError(stream: Http2ClientStream, code: number, message: string): void {
    this.forget(stream);
    this.write(encodeUint32Frame(FrameType.RST_STREAM, stream.id, code));
    stream.markClosed(code, new ConnectError(`upstream stream error: ${message}`, Code.Unavailable));
    this.afterStreamEnded();
  }

  private afterStreamEnded(): void {
    this.lastActiveAt = Date.now();
    if (this.state === "closed") return;
    this.openWaiting();
    if (this.draining && this.activeStreams === 0) this.shutdown(Http2ErrorCode.NO_ERROR);
  }

  /** No new streams from now on; those still waiting for a slot never left, so they fail "not sent" (the cluster retries them elsewhere). */
  private startDraining(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    this.drainingReason = reason;
    this.failWaiting(`connection to ${this.options.authority} takes no new streams: ${reason}`);
  }

  /** Leave politely (GOAWAY) once nothing is open. */
  private shutdown(code: number): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearInterval(this.timer);
    this.socket.end(encodeGoaway(0, code));
    // A peer that never closes its side must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.onClose?.();
  }

  /** The connection is lost or broken: every stream fails with `error`; GOAWAY `goawayCode` if one is owed. */
  private fail(error: ConnectError, goawayCode: number | undefined): void {
    if (this.state === "closed") return;
    const wasConnecting = this.state === "connecting";
    this.state = "closed";
    this.draining = true;
    this.drainingReason = error.rawMessage;
    clearInterval(this.timer);
    if (goawayCode !== undefined && !this.socket.destroyed) {
      // Say why before leaving, but do not wait on a peer that never closes its side.
      this.socket.end(encodeGoaway(0, goawayCode));
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
    const streams = [...this.streams.values(), ...this.waiting.splice(0)];
    this.streams.clear();
    this.blocked.clear();
    for (const stream of streams) {
      // Nothing reached an upstream we never connected to; a stream still waiting for a slot never left.
      const notSent = wasConnecting || stream.id === 0;
      stream.markClosed(undefined, notSent ? markNotSent(new ConnectError(error.rawMessage, Code.Unavailable, undefined, undefined, error)) : error);
    }
    this.onClose?.();
  }

  private readonly onTimer = (): void => {
    const now = Date.now();
    if (this.activeStreams === 0) {
      if (now - this.lastActiveAt >= (this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS)) this.close("idle");
      return;
    }
    const keepAliveMs = this.options.keepAliveMs;
    if (keepAliveMs <= 0 || this.state !== "open") return;
    if (this.pingSentAt !== 0) {
      if (now - this.pingSentAt >= (this.options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS)) {
        this.destroy(`${this.options.authority} did not answer a keep-alive PING`);
      }
      return;
    }
    if (now - this.lastFrameAt >= keepAliveMs) {
      this.pingSentAt = now;
      this.write(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    }
  };
}
