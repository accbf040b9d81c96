import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http1Exchange } from "../../http1/lean-connections.js";
import { leanRespond, leanSendTrailers } from "../../http2/lean-response.js";
import type { Http2ServerStream } from "../../http2/server/server-stream.js";
import type { HttpRequest, HttpResponse } from "../http-types.js";
import { FastCall, type FastSpec, type UnaryReply } from "./fast-call.js";
import { writeAtEndOfTurn, type DeferredWrite } from "./end-of-turn-writes.js";
import { OK_TRAILERS_OBJECT } from "./replies.js";
import type { AcceptedRequest } from "./rpc-fast-path.js";

/** What a fast-path call needs from its route (made once per route) when it leaves the fast path. */
export interface FastRoute {
  readonly spec: FastSpec;
  readonly shutdownSignal: AbortSignal;
  /** Serve the request through connect-node instead; body replaces the request's own when given. */
  serveWithConnect(req: HttpRequest, res: HttpResponse, body?: AsyncIterable<Uint8Array>): void;
  /** Log an unexpected failure of the fast path. */
  logFailure(error: unknown): void;
}

const WAIT_FOR_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({ waitForTrailers: true });
/** Where a stream keeps the trailers its shared wantTrailers listener sends. */
const TRAILERS = Symbol("trailers to send");
type StreamWithTrailers = http2.ServerHttp2Stream & { [TRAILERS]?: Readonly<Record<string, string | string[]>> };

// Shared listeners: a closure per call would be one more allocation on the hottest path.
function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  leanSendTrailers(this, OK_TRAILERS_OBJECT);
}
function sendStoredTrailers(this: StreamWithTrailers): void {
  leanSendTrailers(this, this[TRAILERS]!);
}

/** A fast-path call that arrived as a raw HTTP/2 stream. */
export class Http2Call extends FastCall {
  constructor(
    private readonly route: FastRoute,
    accepted: AcceptedRequest,
    headers: http2.IncomingHttpHeaders,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly rawHeaders: string[],
  ) {
    super(route.spec, accepted.format, headers, accepted.timeoutMs, route.shutdownSignal);
  }

  write(reply: UnaryReply): void {
    if (this.isGone()) return;
    const stream = this.stream as StreamWithTrailers;
    const headers = reply.headers as http2.OutgoingHttpHeaders;
    headers[":status"] = reply.status;
    const trailers = reply.trailers;
    if (trailers === undefined) {
      leanRespond(stream, headers);
    } else {
      leanRespond(stream, headers, WAIT_FOR_TRAILERS);
      if (trailers === OK_TRAILERS_OBJECT) {
        stream.on("wantTrailers", sendOkTrailers);
      } else {
        stream[TRAILERS] = trailers;
        stream.on("wantTrailers", sendStoredTrailers);
      }
    }
    if (reply.body) stream.end(reply.body);
    else stream.end();
  }

  startResponse(status: number, headers: Record<string, string | string[]>, withTrailers: boolean): void {
    (headers as http2.OutgoingHttpHeaders)[":status"] = status;
    leanRespond(this.stream, headers, withTrailers ? WAIT_FOR_TRAILERS : undefined);
  }

  writeBody(chunk: Uint8Array): boolean {
    return this.stream.write(chunk);
  }

  whenDrained(listener: () => void): void {
    if (this.isGone()) listener();
    else whenDrained(this.stream, listener);
  }

  endResponse(trailers: Readonly<Record<string, string | string[]>> | undefined): void {
    const stream = this.stream as StreamWithTrailers;
    if (trailers !== undefined) {
      stream[TRAILERS] = trailers;
      stream.on("wantTrailers", sendStoredTrailers);
    }
    stream.end();
  }

  isGone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  replay(requestEnded: boolean): void {
    // A stream of the own HTTP/2 server goes to Node's server whole, by the relay it was given.
    const fallback = (this.stream as unknown as Partial<Http2ServerStream>).fallback;
    if (fallback !== undefined) {
      fallback(this.stream as unknown as Http2ServerStream, this.chunks, requestEnded);
      return;
    }
    // connect-node works on Node's request API: wrap the stream the way Node's own server would.
    const req = new http2.Http2ServerRequest(this.stream, this.headers, {}, this.rawHeaders);
    const res = new http2.Http2ServerResponse(this.stream);
    this.route.serveWithConnect(req, res, replayBody(this.chunks, requestEnded ? undefined : req));
  }

  fail(error: unknown): void {
    this.route.logFailure(error);
    this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }

  protected buildUrl(): string {
    const headers = this.headers;
    return `${headers[":scheme"] ?? "http"}://${headers[":authority"] ?? "localhost"}${headers[":path"]}`;
  }

  protected onClientGone(listener: () => void): void {
    this.stream.once("close", listener);
  }
}

/** A fast-path call that arrived through Node's request API (HTTP/1.1, or HTTP/2 via the compatibility layer). */
export class HttpRequestCall extends FastCall implements DeferredWrite {
  private deferredReply: UnaryReply | undefined;

  constructor(
    private readonly route: FastRoute,
    accepted: AcceptedRequest,
    private readonly req: HttpRequest,
    private readonly res: HttpResponse,
  ) {
    super(route.spec, accepted.format, req.headers, accepted.timeoutMs, route.shutdownSignal);
  }

  write(reply: UnaryReply): void {
    // HTTP/2 (here through the compatibility layer) already coalesces a connection's writes.
    if (this.req.httpVersionMajor !== 1) {
      this.writeReply(reply);
      return;
    }
    this.deferredReply = reply;
    writeAtEndOfTurn(this);
  }

  /** The end of the turn has come: write the answer kept by write(). */
  writeNow(): void {
    const reply = this.deferredReply!;
    this.deferredReply = undefined;
    this.writeReply(reply);
  }

  /** Writing the kept answer threw: log it and cut the call, as an immediate write would. */
  failWrite(error: unknown): void {
    this.fail(error);
  }

  private writeReply(reply: UnaryReply): void {
    if (this.isGone()) return;
    const res = this.res;
    res.writeHead(reply.status, reply.headers);
    if (reply.trailers) (res as { addTrailers(t: Readonly<Record<string, string | string[]>>): void }).addTrailers(reply.trailers);
    if (reply.body) res.end(reply.body);
    else res.end();
  }

  startResponse(status: number, headers: Record<string, string | string[]>): void {
    this.res.writeHead(status, headers);
  }

  writeBody(chunk: Uint8Array): boolean {
    return this.res.write(chunk);
  }

  whenDrained(listener: () => void): void {
    if (this.isGone()) listener();
    else whenDrained(this.res, listener);
  }

  endResponse(trailers: Readonly<Record<string, string | string[]>> | undefined): void {
    if (trailers) (this.res as { addTrailers(t: Readonly<Record<string, string | string[]>>): void }).addTrailers(trailers);
    this.res.end();
  }

  isGone(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  replay(requestEnded: boolean): void {
    this.route.serveWithConnect(this.req, this.res, replayBody(this.chunks, requestEnded ? undefined : this.req));
  }

  fail(error: unknown): void {
    this.route.logFailure(error);
    this.res.destroy();
  }

  protected buildUrl(): string {
    const req = this.req;
    const encrypted = "encrypted" in req.socket && (req.socket as { encrypted?: boolean }).encrypted;
    const authority = "authority" in req ? req.authority : req.headers.host;
    return new URL(req.url ?? "/", `${encrypted ? "https" : "http"}://${authority ?? "localhost"}`).toString();
  }

  protected onClientGone(listener: () => void): void {
    this.res.once("close", listener);
  }
}

/** A unary fast-path call on a lean HTTP/1.1 connection (no request or response objects). */
export class Http1ExchangeCall extends FastCall implements DeferredWrite {
  private deferredReply: UnaryReply | undefined;

  constructor(
    private readonly route: FastRoute,
    accepted: AcceptedRequest,
    private readonly exchange: Http1Exchange,
  ) {
    super(route.spec, accepted.format, exchange.headers, accepted.timeoutMs, route.shutdownSignal);
  }

  write(reply: UnaryReply): void {
    // Written with the other answers of this event-loop turn (see end-of-turn-writes.ts).
    this.deferredReply = reply;
    writeAtEndOfTurn(this);
  }

  /** The end of the turn has come: write the answer kept by write(). */
  writeNow(): void {
    const reply = this.deferredReply!;
    this.deferredReply = undefined;
    // HTTP/1.1 has no trailers here: gRPC proper, which needs them, never takes this path.
    if (reply.trailers !== undefined) throw new ConnectError("HTTP trailers on a lean HTTP/1.1 answer", Code.Internal);
    this.exchange.respond(reply.status, reply.headers, reply.body);
  }

  /** Writing the kept answer threw: log it and cut the call, as an immediate write would. */
  failWrite(error: unknown): void {
    this.fail(error);
  }

  // Server streams are never served on lean connections (the dispatcher leaves them to node:http).
  startResponse(): void {
    throw noStreamsOnLeanConnections();
  }

  writeBody(): boolean {
    throw noStreamsOnLeanConnections();
  }

  whenDrained(listener: () => void): void {
    listener();
  }

  endResponse(): void {
    throw noStreamsOnLeanConnections();
  }

  isGone(): boolean {
    return this.exchange.isGone();
  }

  replay(requestEnded: boolean): void {
    if (!requestEnded) {
      // The declared length is within the limit, so the fast path never stops reading early here.
      this.fail(new ConnectError("a lean HTTP/1.1 request replayed before its body ended", Code.Internal));
      return;
    }
    const { req, res } = this.exchange.toNodeRequest();
    this.route.serveWithConnect(req, res, replayBody(this.chunks, undefined));
  }

  fail(error: unknown): void {
    this.route.logFailure(error);
    this.exchange.destroy();
  }

  protected buildUrl(): string {
    return new URL(this.exchange.url, `http://${this.headers.host ?? "localhost"}`).toString();
  }

  protected onClientGone(listener: () => void): void {
    this.exchange.on("close", listener);
  }
}

function noStreamsOnLeanConnections(): ConnectError {
  return new ConnectError("a streamed answer on a lean HTTP/1.1 connection", Code.Internal);
}

/** Calls back once a writable has drained, or closed (then nobody will read what is left anyway). */
function whenDrained(writable: NodeJS.WritableStream & { on(event: "close", listener: () => void): unknown }, listener: () => void): void {
  const done = () => {
    writable.off("drain", done);
    writable.off("close", done);
    listener();
  };
  writable.on("drain", done);
  writable.on("close", done);
}

/** The bytes the fast path already read, followed by whatever the request still has to send. */
async function* replayBody(alreadyRead: Buffer[], rest: AsyncIterable<Buffer> | undefined): AsyncGenerator<Uint8Array> {
  yield* alreadyRead;
  if (rest) yield* rest;
}
