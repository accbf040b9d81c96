import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import type { AddressInfo } from "node:net";
import { classifyConnectionStart } from "./http2-preface.js";
import { closeAfterThisAnswer, letAnswersGoingOutFinishOnIdleClose } from "./http1-drain.js";
import { LeanHttp1Server, type Http1ExchangeHandler } from "../http1/lean-connections.js";
import { leanResponsesWorkOn } from "../http2/lean-response.js";
import { installGcFriendlyStreamTables } from "../http2/stream-tables.js";
import type { Logger } from "../ops/logger.js";
import { duplexPair } from "../http2/duplex-pair.js";
import { Http2ServerConnection } from "../http2/server/server-connection.js";
import type { Http2ServerStream } from "../http2/server/server-stream.js";
import { ResetBucket } from "../http2/reset-bucket.js";
import { markRelayed, type HttpHandler } from "./http-types.js";
import { NodeHttp2Relay } from "./node-http2-relay.js";


/** Connection-level limits; see GatewayConfig.limits for their meaning and defaults. */
export interface ConnectionLimits {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  maxConcurrentStreams: number;
  /** 0 = connections live as long as they are used. */
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
}

/** Client stream resets one connection may make within RESET_WINDOW_MS before it is cut (if they are most of its streams). */
const MAX_CLIENT_RESETS_PER_WINDOW = 100;
const RESET_WINDOW_MS = 10_000;

/**
 * nghttp2's own rapid-reset limit on a server connection (since 1.57): a bucket of 1,000 stream
 * resets, refilled by 33 each whole second. When it runs dry, nghttp2 ends the connection with
 * GOAWAY(INTERNAL_ERROR) and every call still on it fails. Node 20 cannot change these numbers
 * (Node 22 has streamResetBurst/streamResetRate), so the gateway keeps a copy of the bucket and,
 * with RESET_BUDGET_HEADROOM resets left, closes the connection gracefully (GOAWAY(NO_ERROR):
 * calls in flight finish, the client opens a new connection) before nghttp2 cuts it. The copy
 * can lag nghttp2's: it counts a reset when the stream's close event runs, not when the frame
 * is parsed (a client may cancel all of its up to maxConcurrentStreams streams at once, 256 by
 * default), and it does not see resets of streams that had already ended. Hence the headroom
 * of half the bucket. (nghttp2 stops counting once a GOAWAY is submitted.)
 */
const RESET_BUDGET_HEADROOM = 500;

/** Per connection: streams opened and reset in the current window, and the copy of nghttp2's reset bucket. */
interface ResetCounts {
  startedAt: number;
  opened: number;
  reset: number;
  nghttp2Bucket: ResetBucket;
}

/**
 * How long a stream that was answered without reading its request body may go on uploading
 * (the rest is discarded) before it is closed with NO_ERROR. The answer is long out by then.
 */
const EARLY_ANSWER_UPLOAD_GRACE_MS = 1_000;

/** Where a stream keeps its session for the close listener (Node forgets it on close). */
const SESSION = Symbol("session");
/** The grace timer of a stream answered before its upload ended, cleared when the stream closes. */
const UPLOAD_GRACE = Symbol("upload grace timer");
type StreamWithSession = http2.ServerHttp2Stream & { [SESSION]?: http2.ServerHttp2Session; [UPLOAD_GRACE]?: NodeJS.Timeout };
/** An HTTP/2 connection of either server, as the connection policies (resets, age) see it. */
type Http2Connection = http2.ServerHttp2Session | Http2ServerConnection;

/** Serves a raw HTTP/2 stream; returns false to have it served through onRequest instead. */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]) => boolean;

export interface SinglePortServerOptions {
  onRequest: HttpHandler;
  /** Tried first for every HTTP/2 stream, before Node's request/response objects are built. */
  onStream?: StreamHandler;
  /**
   * Tried first for every request on a cleartext HTTP/1.1 connection, before Node's request and
   * response objects are built (see src/http1/lean-connections.ts). Without it, node:http serves
   * HTTP/1.1 alone.
   */
  onHttp1Exchange?: Http1ExchangeHandler;
  /**
   * Serve cleartext HTTP/2 connections with the gateway's own HTTP/2 server (src/http2/server/):
   * onStream sees its streams first, and the rest are relayed in-process to Node's http2 server
   * (src/server/node-http2-relay.ts). TLS connections stay with Node's server.
   */
  leanHttp2?: boolean;
  limits: ConnectionLimits;
  logger: Logger;
  /** PEM certificate and key; when set the port speaks TLS and negotiates h2 or http/1.1 by ALPN. */
  /** clientCa: require a client certificate signed by it (mTLS); the handshake fails without one. */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
}

/**
 * One listening port for HTTP/1.1 and HTTP/2.
 *
 * Cleartext: Node's http2 server only speaks HTTP/2, so each new socket is sniffed for the
 * HTTP/2 connection preface and handed to the HTTP/2 or the HTTP/1.1 server.
 * TLS: ALPN decides, through http2's allowHTTP1.
 */
export class SinglePortServer {
  private readonly listener: net.Server;
  private readonly http1: http.Server | undefined;
  private readonly leanHttp1: LeanHttp1Server | undefined;
  private readonly http2Server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Connections of the own HTTP/2 server (leanHttp2). */
  private readonly ownConnections = new Set<Http2ServerConnection>();
  /** The client socket whose relay connection Node's server is being handed (read by its 'session' listener). */
  private relayPeer: net.Socket | undefined;
  /**
   * Node's sessions on the own server's in-memory relay connections. The connection policies
   * (first stream, age, resets) are the client connection's business, applied there: a relay
   * connection sees only the share of its streams the own server did not serve.
   */
  private readonly relaySessions = new WeakSet<http2.ServerHttp2Session>();
  private readonly sniffing = new Set<net.Socket>();
  private readonly http1Sockets = new Set<net.Socket>();
  private readonly resets = new WeakMap<Http2Connection, ResetCounts>();
  private draining = false;

  constructor(private readonly options: SinglePortServerOptions) {
    const { limits, onStream, tls } = options;
    const onRequest: HttpHandler = (req, res) => {
      // While draining, an HTTP/1.1 connection closes after its current answer; a request behind
      // an answer already going out with Connection: close is not run (node:http drops it).
      if (this.draining && req.httpVersionMajor === 1 && !closeAfterThisAnswer(req.socket, res as http.ServerResponse)) return;
      options.onRequest(req, res);
    };
    const http2Options: http2.ServerOptions = {
      maxSendHeaderBlockLength: limits.maxHeaderBytes,
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderBytes,
        enablePush: false,
      },
    };
    if (tls) {
      const secure = http2.createSecureServer(
        {
          ...http2Options,
          cert: tls.cert,
          key: tls.key,
          allowHTTP1: true,
          ALPNProtocols: ["h2", "http/1.1"],
          ...(tls.clientCa && { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
        },
        onRequest as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
      );
      secure.on("secureConnection", (socket: net.Socket) => this.trackHttp1Socket(socket));
      // Its close() closes the idle HTTP/1.1 connections.
      letAnswersGoingOutFinishOnIdleClose(secure as unknown as http.Server);
      this.http2Server = secure;
      this.listener = secure;
      this.http1 = undefined;
      this.leanHttp1 = undefined;
    } else {
      this.http2Server = http2.createServer(http2Options, onRequest as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
      this.http1 = http.createServer(
        {
          maxHeaderSize: limits.maxHeaderBytes,
          headersTimeout: limits.headersTimeoutMs,
          keepAliveTimeout: limits.idleTimeoutMs,
          // Node checks header timeouts only this often (30 s by default), which would let a
          // slowloris client outlive headersTimeoutMs many times over.
          connectionsCheckingInterval: Math.max(250, Math.min(limits.headersTimeoutMs / 2, 30_000)),
        },
        onRequest as http.RequestListener,
      );
      letAnswersGoingOutFinishOnIdleClose(this.http1);
      this.listener = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.sniff(socket));
      if (options.onHttp1Exchange) {
        this.leanHttp1 = LeanHttp1Server.create({
          limits,
          onExchange: options.onHttp1Exchange,
          handOver: (socket, bytes) => this.serveWithNodeHttp1(socket, bytes),
          logger: options.logger,
        });
        if (!this.leanHttp1) {
          options.logger.warn({ node: process.versions.node }, "HTTP/1.1 served by node:http alone (a Node major whose parser binding was not checked): more CPU per call");
        }
      }
    }
    // Node's compatibility layer turns every stream into a request/response pair; this gateway
    // lets onStream look at the raw stream first and builds that pair itself only when needed.
    this.http2Server.removeAllListeners("stream");
    // Listeners shared by every stream: one closure per stream would be garbage on the hottest path.
    const onStreamError = (err: unknown) => options.logger.debug({ err }, "http/2 stream error");
    const server = this;
    const onStreamClose = function (this: StreamWithSession) {
      // The stream no longer knows its session once closed, hence the copy taken when it opened.
      if (this.rstCode !== http2.constants.NGHTTP2_NO_ERROR) server.countStream(this[SESSION], true);
      const graceTimer = this[UPLOAD_GRACE];
      if (graceTimer !== undefined) clearTimeout(graceTimer);
    };
    // Node closes a stream answered without touching its request body with RST_STREAM(NO_ERROR)
    // one tick later, and nghttp2 sends RST_STREAM ahead of the answer's queued frames: now and
    // then (about 1 in 15 curl calls here) the client got the reset and never the answer (a 415,
    // a refusal by the request gate, a pass-through error). Reading the rest of the body into
    // nowhere keeps Node from doing that; the stream ends when the client finishes its upload,
    // or is closed after a grace period if the upload goes on.
    const onStreamFinish = function (this: StreamWithSession) {
      if (this.readableFlowing !== null || this.readableEnded) return;
      this.resume();
      this[UPLOAD_GRACE] = setTimeout(closeStillUploading, EARLY_ANSWER_UPLOAD_GRACE_MS, this).unref();
    };
    let leanResponsesChecked = false;
    const onNewStream = (
      stream: StreamWithSession,
      headers: http2.IncomingHttpHeaders,
      _flags: number,
      rawHeaders: string[],
    ) => {
      if (!leanResponsesChecked && !stream.destroyed) {
        leanResponsesChecked = true;
        if (!leanResponsesWorkOn(stream)) {
          options.logger.warn({ node: process.versions.node }, "HTTP/2 responses sent through Node's respond() (a Node major not checked, or an unexpected shape): more CPU per call");
        }
      }
      // A client's RST_STREAM or a protocol error surfaces as an 'error' event; unheard, it would crash the process.
      stream.on("error", onStreamError);
      const session = stream.session as http2.ServerHttp2Session | undefined;
      stream.on("finish", onStreamFinish);
      // A relayed stream was offered to onStream on the own server already (and a fast-path call
      // handed over there ran its gate): Node's request API serves it.
      if (session !== undefined && this.relaySessions.has(session)) {
        serveThroughRequestApi(stream, headers, rawHeaders, onRequest, true);
        return;
      }
      stream[SESSION] = session;
      this.countStream(session, false);
      stream.on("close", onStreamClose);
      if (onStream?.(stream, headers, rawHeaders)) return;
      serveThroughRequestApi(stream, headers, rawHeaders, onRequest);
    };
    (this.http2Server as http2.Http2Server).on("stream", onNewStream as never);
    let streamTablesReported = false;
    this.http2Server.on("session", (session) => {
      this.sessions.add(session);
      const relay = this.relayPeer !== undefined;
      if (relay) {
        adoptPeerAddress(session, this.relayPeer!);
        this.relaySessions.add(session);
      }
      if (!installGcFriendlyStreamTables(session) && !streamTablesReported) {
        streamTablesReported = true;
        options.logger.warn(
          { node: process.versions.node },
          "HTTP/2 stream tables left as Node's (a Node major not checked, or an unexpected shape): expect more garbage collection under load",
        );
      }
      // Idle connections are closed gracefully (GOAWAY lets open streams finish) rather than cut.
      session.setTimeout(limits.idleTimeoutMs, () => session.close());
      if (limits.maxConnectionAgeMs && !relay) this.limitAge(session, limits.maxConnectionAgeMs, limits.maxConnectionAgeGraceMs ?? 0);
      // A connection must open its first stream (complete request headers) within headersTimeoutMs.
      const firstStream = relay ? undefined : setTimeout(() => session.destroy(), limits.headersTimeoutMs);
      session.once("stream", () => clearTimeout(firstStream));
      session.on("close", () => {
        clearTimeout(firstStream);
        this.sessions.delete(session);
      });
      // After a protocol error (floods, rapid reset) Node sends GOAWAY but keeps the socket;
      // the connection is of no further use, so it is cut.
      session.on("error", (err) => {
        options.logger.debug({ err }, "http/2 session error");
        session.destroy();
      });
      // The client closed its side: nothing more will arrive, let pending writes go and close ours.
      session.socket?.once("end", () => setTimeout(() => session.destroy(), 1_000).unref());
    });
    this.http2Server.on("sessionError", (err) => options.logger.debug({ err }, "http/2 session error"));
  }

  /** Start listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host?: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.listener.once("error", reject);
      this.listener.listen({ port, host }, () => {
        this.listener.off("error", reject);
        // The HTTP/1.1 server never listens itself; its header and request timeout checks are
        // started by its "listening" event, so it is told once the shared port is open.
        this.http1?.emit("listening");
        resolve(this.listener.address() as AddressInfo);
      });
    });
  }

  /** Stop accepting connections and ask every open connection to finish its calls and close. */
  stopAccepting(): void {
    this.listener.close();
    for (const socket of this.sniffing) socket.destroy();
    for (const session of this.sessions) session.close();
    for (const connection of this.ownConnections) connection.close();
    this.draining = true;
    this.http1?.closeIdleConnections();
    this.leanHttp1?.stopAccepting();
  }

  /** Number of connections still open. */
  openConnections(): number {
    return this.sessions.size + this.ownConnections.size + this.http1Sockets.size + this.sniffing.size;
  }

  /** Cut every remaining connection. */
  destroyAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const connection of this.ownConnections) connection.destroy();
    for (const socket of this.http1Sockets) socket.destroy();
    for (const socket of this.sniffing) socket.destroy();
    this.leanHttp1?.close();
    this.http1?.close(() => undefined);
  }

  /**
   * HTTP/2 rapid reset (CVE-2023-44487): a client that cancels streams as fast as it opens them
   * makes the server start work for nothing. nghttp2 has its own limit, but once it trips, Node
   * stops reading the socket without closing it, and the connection lingers until the idle
   * timeout. The gateway cuts such a connection itself, well before that limit.
   */
  private countStream(session: Http2Connection | undefined, reset: boolean): void {
    if (!session || session.destroyed) return;
    // One monotonic reading for both the window and the bucket (nghttp2's clock is monotonic too).
    const now = performance.now();
    let window = this.resets.get(session);
    if (!window) {
      window = { startedAt: now, opened: 0, reset: 0, nghttp2Bucket: new ResetBucket(now) };
      this.resets.set(session, window);
    } else if (now - window.startedAt > RESET_WINDOW_MS) {
      window.startedAt = now;
      window.opened = 0;
      window.reset = 0;
    }
    if (!reset) {
      window.opened++;
      return;
    }
    window.nghttp2Bucket.take(now);
    const budgetLeft = window.nghttp2Bucket.left;
    if (budgetLeft <= RESET_BUDGET_HEADROOM && !session.closed) {
      this.options.logger.info({ resetsLeft: budgetLeft }, "http/2 client resets streams faster than nghttp2 allows one connection: closing it gracefully");
      this.closeGracefully(session, this.options.limits.maxConnectionAgeGraceMs ?? 30_000);
    }
    // A busy proxy connection cancels some calls legitimately; an attack cancels nearly all.
    if (++window.reset > MAX_CLIENT_RESETS_PER_WINDOW && window.reset * 2 > window.opened) {
      this.options.logger.warn({ resets: window.reset, streams: window.opened }, "http/2 client resets most of its streams: closing the connection");
      session.destroy();
    }
  }

  /**
   * GOAWAY(NO_ERROR) so calls in flight finish and new ones go to a new connection; cut the
   * connection if calls outlast the grace period. A stream the client sent before it saw the
   * GOAWAY is refused (REFUSED_STREAM: not processed, safe to retry). RFC 9113 §6.8's first
   * GOAWAY naming stream 2^31 − 1 would spare those, but Node's session.goaway() with that id
   * still refused them when tried here (2026-12-07).
   */
  private closeGracefully(session: Http2Connection, graceMs: number): void {
    if (session.closed || session.destroyed) return;
    session.close();
    const graceTimer = setTimeout(() => session.destroy(), graceMs);
    graceTimer.unref();
    // An own connection's destroy() after it closed does nothing: its timer just runs out.
    if (!(session instanceof Http2ServerConnection)) session.once("close", () => clearTimeout(graceTimer));
  }

  /** GOAWAY after the (jittered) maximum age; cut the connection if calls outlast the grace period. */
  private limitAge(session: Http2Connection, maxAgeMs: number, graceMs: number): NodeJS.Timeout {
    const jitter = 0.9 + Math.random() * 0.2;
    const ageTimer = setTimeout(() => this.closeGracefully(session, graceMs), maxAgeMs * jitter);
    ageTimer.unref();
    if (!(session instanceof Http2ServerConnection)) session.once("close", () => clearTimeout(ageTimer));
    return ageTimer;
  }

  /**
   * Serve a cleartext HTTP/2 connection with the own HTTP/2 server, under the same connection
   * policies as Node's sessions (first stream within headersTimeoutMs, maximum age, resets).
   */
  private serveWithOwnHttp2(socket: net.Socket, bytes: Buffer): void {
    const { limits, onStream, logger } = this.options;
    let relay: NodeHttp2Relay | undefined;
    const relayOf = () => (relay ??= new NodeHttp2Relay(() => this.openRelayConnection(socket)));
    // One function for every stream of the connection (a closure per stream would be per-call garbage).
    const relayLater = (stream: Http2ServerStream, alreadyRead: Buffer[], requestEnded: boolean) => relayOf().relay(stream, alreadyRead, requestEnded);
    const server = this;
    const onOwnStreamClose = function (this: Http2ServerStream) {
      if (this.rstCode !== undefined && this.rstCode !== http2.constants.NGHTTP2_NO_ERROR) server.countStream(connection, true);
    };
    const connection: Http2ServerConnection = new Http2ServerConnection(socket, {
      limits: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListBytes: limits.maxHeaderBytes, idleTimeoutMs: limits.idleTimeoutMs },
      onStream: (stream, head) => {
        clearTimeout(firstStream);
        this.countStream(connection, false);
        stream.on("close", onOwnStreamClose);
        stream.fallback = relayLater;
        if (onStream?.(stream as unknown as http2.ServerHttp2Stream, head.headers, head.rawHeaders)) return;
        relayOf().relay(stream);
      },
      onClose: () => {
        clearTimeout(firstStream);
        if (ageTimer !== undefined) clearTimeout(ageTimer);
        this.ownConnections.delete(connection);
        relay?.close();
      },
      // The client's protocol errors are its own business (debug); a handler that threw is ours (error).
      onProblem: (message, err) => (err === undefined ? logger.debug(message) : logger.error({ err }, message)),
    });
    // A connection must open its first stream (complete request headers) within headersTimeoutMs.
    const firstStream = setTimeout(() => connection.destroy(), limits.headersTimeoutMs);
    const ageTimer = limits.maxConnectionAgeMs ? this.limitAge(connection, limits.maxConnectionAgeMs, limits.maxConnectionAgeGraceMs ?? 0) : undefined;
    this.ownConnections.add(connection);
    connection.receive(bytes);
    socket.resume();
  }

  /** A new in-memory connection to Node's http2 server for `peer`'s relayed streams; returns the client's end. */
  private openRelayConnection(peer: net.Socket): Duplex {
    const [clientEnd, serverEnd] = duplexPair();
    this.relayPeer = peer;
    try {
      this.http2Server.emit("connection", serverEnd);
    } finally {
      this.relayPeer = undefined;
    }
    return clientEnd;
  }

  private sniff(socket: net.Socket): void {
    this.sniffing.add(socket);
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), this.options.limits.headersTimeoutMs);
    const finish = () => {
      clearTimeout(timer);
      this.sniffing.delete(socket);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onError = () => finish();
    const onClose = () => finish();
    const onData = (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const verdict = classifyConnectionStart(received);
      if (verdict === "undecided") return;
      finish();
      socket.pause();
      if (verdict === "http2") {
        if (this.options.leanHttp2) {
          this.serveWithOwnHttp2(socket, received);
          return;
        }
        socket.unshift(received);
        // The http2 server reads the replayed bytes itself; resuming here would lose them.
        this.http2Server.emit("connection", socket);
        return;
      }
      this.trackHttp1Socket(socket);
      if (this.leanHttp1) this.leanHttp1.start(socket, received);
      else this.serveWithNodeHttp1(socket, received);
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.resume();
  }

  /** Node's HTTP/1.1 server takes the socket; it reads `bytes` first. */
  private serveWithNodeHttp1(socket: net.Socket, bytes: Buffer): void {
    socket.pause();
    if (bytes.length > 0) socket.unshift(bytes);
    this.http1!.emit("connection", socket);
    socket.resume();
  }

  private trackHttp1Socket(socket: net.Socket): void {
    if ((socket as { alpnProtocol?: string | false }).alpnProtocol === "h2") return;
    this.http1Sockets.add(socket);
    socket.once("close", () => this.http1Sockets.delete(socket));
  }
}

/**
 * A relay connection's session reports the client's address, not the in-memory stream's (which
 * has none): Node wraps a non-socket stream in a socket that answers remoteAddress from
 * `_peername` when its handle cannot tell, and the session's socket proxy passes the assignment on.
 */
function adoptPeerAddress(session: http2.ServerHttp2Session, peer: net.Socket): void {
  (session.socket as net.Socket & { _peername?: object })._peername = { address: peer.remoteAddress, family: peer.remoteFamily, port: peer.remotePort };
}

/** The grace period of an early-answered stream is over: stop the client's upload if it is still going. */
function closeStillUploading(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

/** What Node's own HTTP/2 compatibility layer does for a new stream, minus the CONNECT method. */
function serveThroughRequestApi(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: string[],
  onRequest: HttpHandler,
  relayed = false,
): void {
  const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
  if (relayed) markRelayed(req);
  const res = new http2.Http2ServerResponse(stream);
  if (headers[":method"] === "CONNECT") {
    res.statusCode = 405;
    res.end();
    return;
  }
  const expect = headers.expect;
  if (expect !== undefined) {
    if (expect !== "100-continue") {
      res.statusCode = 417;
      res.end();
      return;
    }
    res.writeContinue();
  }
  onRequest(req, res);
}
