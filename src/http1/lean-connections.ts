/*
 * Lean HTTP/1.1 connections: a cleartext HTTP/1.1 connection is parsed by Node's own llhttp
 * parser, reading the socket natively as node:http does, but the requests the RPC fast path
 * serves get no IncomingMessage/ServerResponse, no stream machinery and no header objects
 * beyond one plain object: a small Connect call took 29 instead of 45 µs of CPU here.
 *
 * Anything else goes to Node's HTTP/1.1 server, which takes the connection over from the first
 * request the lean path does not serve: its head is rebuilt from what llhttp parsed (the same
 * method, target, version and header lines), followed by every byte not yet parsed. From then on
 * node:http owns the connection. A request the lean path accepted but must answer through
 * connect-node after all is given Node's own request and response objects on the same socket.
 */
import * as http from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import type * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../ops/logger.js";
import { nodeParserBinding, type NodeHttpParser, type NodeParserBinding, type RawHeaderList } from "./node-parser.js";

/** The limits node:http applies to the same connections (see GatewayConfig.limits). */
export interface LeanHttp1Limits {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
}

/** Offered each request the lean path could serve; returns false to leave it, and the connection, to node:http. */
export type Http1ExchangeHandler = (exchange: Http1Exchange) => boolean;

export interface LeanHttp1Options {
  limits: LeanHttp1Limits;
  onExchange: Http1ExchangeHandler;
  /** Give the socket to Node's HTTP/1.1 server, which must read `bytes` before anything else. */
  handOver(socket: net.Socket, bytes: Buffer): void;
  logger: Logger;
}

/** node:http's default: a whole request must arrive within five minutes. */
const REQUEST_TIMEOUT_MS = 300_000;
/** node:http keeps at most this many header pairs; a request with more is left to it. */
const MAX_HEADER_PAIRS = 2000;
/** From llhttp's on_headers_complete: no body follows, stop after the head (as for an upgrade). */
const STOP_AFTER_HEAD = 2;
/** Answers up to this size are written as one buffer; larger ones as head and body (writev). */
const SINGLE_WRITE_MAX_BYTES = 16 * 1024;

const CONNECTION = Symbol("lean connection");
type ParserWithConnection = NodeHttpParser & { [CONNECTION]?: LeanConnection };

/** Node's header checks (lib/_http_common.js): a token name, a value without CR, LF or NUL. */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The cleartext HTTP/1.1 connections served on the lean path, and their timeouts. Their sockets
 * are counted and cut with every other HTTP/1.1 socket by the SinglePortServer that owns them.
 */
export class LeanHttp1Server {
  /** Set by stopAccepting: answers say Connection: close and their connections end after them. */
  stopping = false;
  private readonly binding: NodeParserBinding;
  private readonly connectionsList: ReturnType<NodeParserBinding["createConnectionsList"]>;
  private headersTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly options: LeanHttp1Options,
    binding: NodeParserBinding,
  ) {
    this.binding = binding;
    this.connectionsList = binding.createConnectionsList();
  }

  /** A lean server, or undefined on a Node whose parser binding was not checked (then node:http serves everything). */
  static create(options: LeanHttp1Options): LeanHttp1Server | undefined {
    return nodeParserBinding && new LeanHttp1Server(options, nodeParserBinding);
  }

  /** Serve a new connection whose first bytes were already read (while sniffing the protocol). */
  start(socket: net.Socket, firstBytes: Buffer): void {
    const connection = new LeanConnection(this, this.binding, socket, this.connectionsList);
    if (this.headersTimer === undefined) this.startHeadersTimer();
    connection.begin(firstBytes);
  }

  /**
   * Close the connections between requests now (as node:http's closeIdleConnections: those with
   * no request begun); the others close after their current answer, which says Connection: close.
   */
  stopAccepting(): void {
    this.stopping = true;
    for (const parser of this.connectionsList.idle()) (parser as ParserWithConnection)[CONNECTION]?.closeIfIdle();
  }

  /** Stop checking header timeouts (the owner cuts the sockets). */
  close(): void {
    clearInterval(this.headersTimer);
    this.headersTimer = undefined;
  }

  /**
   * A slow client (slowloris) must send its request head within headersTimeoutMs and the whole
   * request within five minutes, as on node:http, which checks the same list the same way.
   */
  private startHeadersTimer(): void {
    const { headersTimeoutMs } = this.options.limits;
    const every = Math.max(250, Math.min(headersTimeoutMs / 2, 30_000));
    this.headersTimer = setInterval(() => {
      for (const parser of this.connectionsList.expired(headersTimeoutMs, REQUEST_TIMEOUT_MS)) {
        (parser as ParserWithConnection)[CONNECTION]?.timedOut();
      }
    }, every).unref();
  }
}

/** One request on a lean connection: its head, its body as it arrives, and the way to answer it. */
export class Http1Exchange {
  /** Whether the end of the body was delivered (as a Readable's: every chunk was, too). */
  readableEnded = false;
  private dataListener: ((chunk: Buffer) => void) | undefined;
  private endListener: (() => void) | undefined;
  /** Body that arrived before anyone listened (the request gate may still be deciding). */
  private unheard: Buffer[] | undefined;
  private bodyArrived = false;
  private closeListeners: (() => void)[] | undefined;
  /** The answer was written (it may not be flushed yet). */
  private responded = false;
  private done = false;

  constructor(
    private readonly connection: LeanConnection,
    readonly method: string,
    readonly url: string,
    /** Lower-case names, one value each (a request with a repeated header is not served here). */
    readonly headers: IncomingHttpHeaders,
    readonly rawHeaders: RawHeaderList,
  ) {}

  /** The client's address. */
  get remoteAddress(): string | undefined {
    return this.connection.socket.remoteAddress;
  }

  /** Body chunks ("data"), the body's end ("end"), and the exchange's end ("close": answered, or the connection is gone). */
  on(event: "data" | "end" | "close", listener: (chunk: Buffer) => void): this {
    if (event === "data") {
      this.dataListener = listener;
      const unheard = this.unheard;
      this.unheard = undefined;
      if (unheard) for (const chunk of unheard) listener.call(this, chunk);
    } else if (event === "end") {
      this.endListener = listener as () => void;
      if (this.bodyArrived && !this.readableEnded) queueMicrotask(() => this.deliverEnd());
    } else if (this.done) {
      queueMicrotask(listener as () => void);
    } else {
      (this.closeListeners ??= []).push(listener as () => void);
    }
    return this;
  }

  off(event: "data" | "end" | "close", listener: (chunk: Buffer) => void): this {
    if (event === "data" && this.dataListener === listener) this.dataListener = undefined;
    else if (event === "end" && this.endListener === listener) this.endListener = undefined;
    else if (event === "close" && this.closeListeners) this.closeListeners = this.closeListeners.filter((l) => l !== listener);
    return this;
  }

  /** The body is read whole (its length is declared and within limits): nothing to pause. */
  pause(): this {
    return this;
  }

  /** Cut the connection (something broke while answering). */
  destroy(): void {
    this.connection.socket.destroy();
  }

  /** True once answered, or once the client is gone. */
  isGone(): boolean {
    return this.responded || this.done || this.connection.socket.destroyed;
  }

  /** Write the whole answer; the connection then waits for the next request. */
  respond(status: number, headers: Readonly<Record<string, string | string[]>>, body: Uint8Array | undefined): void {
    if (this.isGone()) return;
    this.responded = true;
    this.connection.writeAnswer(this, status, headers, body);
  }

  /**
   * Node's request and response objects for this request, on this connection, for an answer
   * that must come from connect-node after all. The request carries the head only; the caller
   * supplies the body it already read.
   */
  toNodeRequest(): { req: http.IncomingMessage; res: http.ServerResponse } {
    return this.connection.nodeRequestFor(this);
  }

  /** @internal The connection's parser delivered body bytes. */
  receive(chunk: Buffer): void {
    if (this.dataListener) this.dataListener(chunk);
    else (this.unheard ??= []).push(chunk);
  }

  /** @internal The parser reached the end of the request. */
  ended(): void {
    this.bodyArrived = true;
    if (this.endListener) this.deliverEnd();
  }

  private deliverEnd(): void {
    // Only once every chunk went to a data listener, as a Readable ends.
    if (this.readableEnded || this.unheard !== undefined || !this.endListener) return;
    this.readableEnded = true;
    this.endListener();
  }

  /** @internal Answered or abandoned: tell the "close" listeners, once. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    const listeners = this.closeListeners;
    this.closeListeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}

/** One cleartext HTTP/1.1 connection on the lean path, until it closes or node:http takes it over. */
class LeanConnection {
  private readonly parser: ParserWithConnection;
  private readonly limits: LeanHttp1Limits;
  private rawHeaders: RawHeaderList = [];
  private url = "";
  /** The request being received or answered; a second one waits (pipelining) for node:http. */
  private current: Http1Exchange | undefined;
  /** The request's head was handed to llhttp with STOP_AFTER_HEAD: its completion is not a request of ours. */
  private skipMessage = false;
  /** Bytes for node:http, in order, once the connection is being handed over. */
  private handOverBytes: Buffer[] | undefined;
  private consumed = false;
  private released = false;
  /** After a parse error behind a running call: what to write once that call is answered, before closing. */
  private lastAnswer: string | undefined;
  /** Answered, its answer not yet flushed: its "close" listeners (the gateway's drain count) wait for that. */
  private flushing: Http1Exchange | undefined;
  /** Set once our own code failed: the parser's remaining callbacks for this connection do nothing. */
  private failed = false;
  private readonly onClose = () => this.closed();
  private readonly onIdle = () => this.idle();

  constructor(
    private readonly server: LeanHttp1Server,
    private readonly binding: NodeParserBinding,
    readonly socket: net.Socket,
    connectionsList: object,
  ) {
    this.limits = server.options.limits;
    const parser = binding.createParser() as ParserWithConnection;
    parser.initialize(binding.REQUEST, {}, this.limits.maxHeaderBytes, 0, connectionsList);
    parser[CONNECTION] = this;
    parser[binding.kOnHeaders] = (headers: RawHeaderList, url: string) => {
      if (!this.failed) this.onHeaders(headers, url);
    };
    // What these callbacks run (the request handler, the body's listeners) must not throw into
    // the native parser: an exception there would be uncaught. It cuts this connection instead.
    parser[binding.kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: RawHeaderList | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _statusMessage: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ) => {
      if (this.failed) return STOP_AFTER_HEAD;
      try {
        return this.onHeadersComplete(major, minor, headers, method, url, upgrade, keepAlive);
      } catch (error) {
        this.broken(error);
        return STOP_AFTER_HEAD;
      }
    };
    parser[binding.kOnBody] = (chunk: Buffer) => {
      if (this.failed) return;
      try {
        this.current?.receive(chunk);
      } catch (error) {
        this.broken(error);
      }
    };
    parser[binding.kOnMessageComplete] = () => {
      if (this.failed) return;
      try {
        this.onMessageComplete();
      } catch (error) {
        this.broken(error);
      }
    };
    parser[binding.kOnExecute] = (result: number | Error) => {
      if (this.failed) return;
      try {
        this.afterExecute(result, undefined);
      } catch (error) {
        this.broken(error);
      }
    };
    this.parser = parser;
  }

  /** Parse the bytes read while sniffing, then let the parser read the socket itself. */
  begin(firstBytes: Buffer): void {
    const socket = this.socket;
    socket.on("error", onSocketError);
    socket.on("close", this.onClose);
    // A listener of our own, not setTimeout's callback: that one is heard once, and a busy
    // connection ignores its first timeout.
    socket.setTimeout(this.limits.idleTimeoutMs);
    socket.on("timeout", this.onIdle);
    this.parse(firstBytes);
    if (this.released || this.handOverBytes !== undefined || this.lastAnswer !== undefined || socket.destroyed) return;
    const handle = (socket as unknown as { _handle?: { isStreamBase?: boolean; _consumed?: boolean } })._handle;
    if (handle?.isStreamBase) {
      this.parser.consume(handle);
      handle._consumed = true;
      this.consumed = true;
    } else {
      // No native stream to read (not expected for a TCP socket): parse the 'data' events instead.
      socket.on("data", (chunk: Buffer) => this.parse(chunk));
    }
    socket.resume();
  }

  /** Parse bytes read in JavaScript (the sniffed first ones), with what follows each parsed chunk. */
  private parse(chunk: Buffer): void {
    if (this.failed || this.released) return;
    try {
      this.afterExecute(this.parser.execute(chunk), chunk);
    } catch (error) {
      this.broken(error);
    }
  }

  private onHeaders(headers: RawHeaderList, url: string): void {
    // llhttp hands over the head in parts when it has many headers. Every one is kept (the head
    // is bounded by maxHeaderBytes): a head rebuilt for node:http without some of them could
    // lose the very header that framed the body.
    for (const item of headers) this.rawHeaders.push(item);
    this.url += url;
  }

  private onHeadersComplete(
    major: number,
    minor: number,
    headers: RawHeaderList | undefined,
    methodIndex: number,
    url: string | undefined,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    if (headers !== undefined) this.onHeaders(headers, url ?? "");
    const rawHeaders = this.rawHeaders;
    const target = this.url;
    this.rawHeaders = [];
    this.url = "";
    const method = this.binding.methodName(methodIndex);
    if (method === undefined) {
      // A method llhttp knows and this table does not: the head cannot be rebuilt for node:http.
      this.parseError(Object.assign(new Error("unknown method"), { code: "HPE_INVALID_METHOD" }));
      return STOP_AFTER_HEAD;
    }
    const exchange =
      this.current === undefined && this.handOverBytes === undefined && major === 1 && minor === 1 && keepAlive && !upgrade && !this.socket.writableNeedDrain
        ? this.leanExchange(method, target, rawHeaders)
        : undefined;
    if (exchange !== undefined && this.server.options.onExchange(exchange)) {
      this.current = exchange;
      return 0;
    }
    // From this request on, node:http serves the connection; it reads the head again, rebuilt.
    (this.handOverBytes ??= []).push(rebuildHead(method, target, major, minor, rawHeaders));
    this.skipMessage = true;
    return STOP_AFTER_HEAD;
  }

  /** The request as the lean path serves it, or undefined when its framing is anything but the plainest. */
  private leanExchange(method: string, url: string, rawHeaders: RawHeaderList): Http1Exchange | undefined {
    if (method !== "POST" || rawHeaders.length > MAX_HEADER_PAIRS * 2) return undefined;
    const headers: IncomingHttpHeaders = {};
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].toLowerCase();
      // Repeated headers have per-name merge rules in node:http; such requests are left to it.
      if (Object.hasOwn(headers, name)) return undefined;
      headers[name] = rawHeaders[i + 1];
    }
    // A declared length (no chunked upload) and no 100-continue handshake.
    if (headers["content-length"] === undefined || headers["transfer-encoding"] !== undefined || headers.expect !== undefined) return undefined;
    return new Http1Exchange(this, method, url, headers, rawHeaders);
  }

  private onMessageComplete(): void {
    if (this.skipMessage) {
      this.skipMessage = false;
      return;
    }
    this.current?.ended();
  }

  /**
   * After each parsed chunk (undefined: the one the parser read from the socket itself): reads
   * keep the idle timer alive; errors and hand-overs are dealt with here.
   */
  private afterExecute(result: number | Error, parsed: Buffer | undefined): void {
    const socket = this.socket as net.Socket & { _unrefTimer?: () => void };
    socket._unrefTimer?.();
    if (result instanceof Error) {
      this.parseError(result as Error & { code?: string });
      return;
    }
    const handOver = this.handOverBytes;
    if (handOver === undefined || this.released) return;
    // Copied out of the parser only here: on every read it would cost a copy per chunk.
    const chunk = parsed ?? this.parser.getCurrentBuffer();
    // The parser stopped after the head node:http must serve; what follows is not ours to parse.
    this.stopReading();
    if (result < chunk.length) handOver.push(chunk.subarray(result));
    if (this.current === undefined) this.handOver();
  }

  private stopReading(): void {
    if (this.consumed) {
      this.parser.unconsume();
      const handle = (this.socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
      if (handle) handle._consumed = false;
      this.consumed = false;
    }
    this.socket.removeAllListeners("data");
    this.socket.pause();
  }

  /** Give the connection to node:http with the bytes it has yet to read. */
  private handOver(): void {
    const bytes = Buffer.concat(this.handOverBytes!);
    this.release(true);
    if (this.socket.destroyed) return;
    this.server.options.handOver(this.socket, bytes);
  }

  /** The answer to the current request, as node:http would write it for a keep-alive HTTP/1.1 request. */
  writeAnswer(exchange: Http1Exchange, status: number, headers: Readonly<Record<string, string | string[]>>, body: Uint8Array | undefined): void {
    let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "unknown"}\r\n`;
    let hasLength = false;
    for (const name in headers) {
      const value = headers[name];
      if (!TOKEN.test(name)) http.validateHeaderName(name);
      if (Array.isArray(value)) {
        for (const item of value) head += headerLine(name, item);
      } else {
        head += headerLine(name, value);
      }
      if (name === "content-length") hasLength = true;
      else if (name === "connection" || name === "transfer-encoding" || name === "date") {
        throw new ConnectError(`the lean HTTP/1.1 path does not write a "${name}" header`, Code.Internal);
      }
    }
    const closing = this.server.stopping;
    head += `Date: ${utcDate()}\r\n`;
    head += closing ? "Connection: close\r\n" : `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(this.limits.idleTimeoutMs / 1000)}\r\n`;
    const length = body?.byteLength ?? 0;
    if (!hasLength) head += `Content-Length: ${length}\r\n`;
    head += "\r\n";
    const socket = this.socket;
    // The exchange ends (its "close" listeners run) once the answer is flushed, as a response's
    // 'close' follows its 'finish': a drain waiting for it must not cut the answer short.
    this.flushing = exchange;
    const flushed = () => {
      if (this.flushing === exchange) this.flushing = undefined;
      exchange.finish();
    };
    if (length === 0) {
      socket.write(head, "latin1", flushed);
    } else if (length <= SINGLE_WRITE_MAX_BYTES) {
      // One byte per character: the head is latin1 (every value passed the header check above).
      const headLength = head.length;
      const out = Buffer.allocUnsafe(headLength + length);
      out.write(head, 0, "latin1");
      out.set(body!, headLength);
      socket.write(out, flushed);
    } else {
      socket.cork();
      socket.write(head, "latin1");
      socket.write(body!, flushed);
      socket.uncork();
    }
    this.answered(exchange, closing);
  }

  /** The current request is answered: the connection moves on, closes, or goes to node:http. */
  private answered(exchange: Http1Exchange, closing: boolean): void {
    if (this.current === exchange) this.current = undefined;
    if (this.lastAnswer !== undefined) {
      this.release(false);
      this.socket.write(this.lastAnswer, "latin1");
      destroySoon(this.socket);
    } else if (closing) {
      // Closed once the answer is out (as node:http closes after a last response), not half-open.
      this.release(false);
      destroySoon(this.socket);
    } else if (this.handOverBytes !== undefined && this.current === undefined) {
      this.handOver();
    }
  }

  /** Node's request/response pair for an exchange that connect-node answers (see Http1Exchange.toNodeRequest). */
  nodeRequestFor(exchange: Http1Exchange): { req: http.IncomingMessage; res: http.ServerResponse } {
    const socket = this.socket;
    const req = new http.IncomingMessage(socket);
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.httpVersion = "1.1";
    req.method = exchange.method;
    req.url = exchange.url;
    req.headers = exchange.headers;
    req.rawHeaders = exchange.rawHeaders;
    req.complete = true;
    req.push(null);
    const res = new http.ServerResponse(req);
    // Read when the answer's head is written, not now: a drain may begin while connect-node works.
    const server = this.server;
    let keepAlive = true;
    Object.defineProperty(res, "shouldKeepAlive", {
      get: () => keepAlive && !server.stopping,
      set: (value: boolean) => (keepAlive = value),
    });
    (res as unknown as { _keepAliveTimeout: number })._keepAliveTimeout = this.limits.idleTimeoutMs;
    res.assignSocket(socket);
    res.once("finish", () => {
      res.detachSocket(socket);
      // node:http tells a response's listeners it is over with 'close' after 'finish'.
      process.nextTick(() => res.emit("close"));
      exchange.finish();
      // An answer that said Connection: close ends the connection, as on node:http.
      this.answered(exchange, server.stopping || !res.shouldKeepAlive || (res as unknown as { _last?: boolean })._last === true);
    });
    return { req, res };
  }

  /** Our own code failed while serving this connection: log it and cut the connection. */
  private broken(error: unknown): void {
    this.failed = true;
    this.server.options.logger.error({ err: error }, "lean HTTP/1.1 connection failed");
    // The current exchange, if any, ends when the socket closes (its "close" listeners run then).
    this.socket.destroy();
  }

  /**
   * A parse error: node:http's answer to it (400, or 431 for an oversized head), then the
   * connection is closed. A call still running gets its answer first; node:http would drop it.
   */
  private parseError(error: Error & { code?: string }): void {
    const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW" ? 413 : 400;
    const answer = `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`;
    if (this.current === undefined) {
      if (this.socket.writable) this.socket.write(answer, "latin1");
      this.socket.destroy();
      return;
    }
    this.stopReading();
    this.lastAnswer = answer;
  }

  /** The head (or the whole request) took longer than node:http allows: 408, as node:http answers. */
  timedOut(): void {
    // A request still arriving has no answer under way: node:http answers it 408 too.
    if (this.socket.writable) this.socket.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n", "latin1");
    this.socket.destroy();
  }

  /** No bytes either way for idleTimeoutMs: an idle keep-alive connection is closed; a busy one waits for its answer. */
  private idle(): void {
    if (this.current === undefined && this.handOverBytes === undefined) this.socket.destroy();
  }

  /** Between requests: close now, or once an answer still going out is sent. */
  closeIfIdle(): void {
    if (this.current !== undefined || this.handOverBytes !== undefined) return;
    if (this.flushing === undefined && this.socket.writableLength === 0) {
      this.socket.destroy();
      return;
    }
    this.release(false);
    destroySoon(this.socket);
  }

  private closed(): void {
    this.current?.finish();
    this.flushing?.finish();
    this.current = undefined;
    this.flushing = undefined;
    this.release(false);
  }

  /**
   * Done with the socket (closed, closing, or handed over): free the parser and our listeners.
   * The error listener stays until the socket closes, unless node:http takes it (with its own).
   */
  private release(handingOver: boolean): void {
    if (this.released) return;
    this.released = true;
    const socket = this.socket;
    if (this.consumed) this.stopReading();
    socket.setTimeout(0);
    socket.removeListener("timeout", this.onIdle);
    if (handingOver) {
      socket.removeListener("error", onSocketError);
      socket.removeListener("close", this.onClose);
    }
    const parser = this.parser;
    parser.remove();
    parser[CONNECTION] = undefined;
    // The native parser may still be on the stack (a callback of its own): free it afterwards.
    setImmediate(() => parser.close());
  }
}

/** A reset or broken pipe ends the connection through 'close'; unheard, the error would crash the process. */
function onSocketError(): void {}

/** End the socket once what is queued is written, then destroy it (node:http's way of closing after a last answer). */
function destroySoon(socket: net.Socket): void {
  (socket as net.Socket & { destroySoon(): void }).destroySoon();
}

function headerLine(name: string, value: string): string {
  if (typeof value !== "string" || INVALID_VALUE_CHAR.test(value)) http.validateHeaderValue(name, value);
  return `${name}: ${value}\r\n`;
}

/**
 * The request head as node:http will parse it again: llhttp's own reading of the original,
 * never longer than it (no space after the colon), so node:http's header size limit judges it
 * as it would have judged the original.
 */
function rebuildHead(method: string, target: string, major: number, minor: number, rawHeaders: RawHeaderList): Buffer {
  let head = `${method} ${target} HTTP/${major}.${minor}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) head += `${rawHeaders[i]}:${rawHeaders[i + 1]}\r\n`;
  return Buffer.from(head + "\r\n", "latin1");
}

let cachedDate: string | undefined;

/** The Date header's value, made once a second as node:http makes it. */
function utcDate(): string {
  if (cachedDate === undefined) {
    const now = new Date();
    cachedDate = now.toUTCString();
    setTimeout(() => (cachedDate = undefined), 1000 - now.getMilliseconds()).unref();
  }
  return cachedDate;
}
