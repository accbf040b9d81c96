import diagnosticsChannel from "node:diagnostics_channel";
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { CONNECTION_SPECIFIC_FIELDS, LOWER_CASE_FIELD_NAME } from "./field-names.js";
import { findSymbolKey, onCheckedNodeMajor } from "./node-internals.js";
import { Http2ServerStream } from "./server/server-stream.js";

/*
 * Why this exists: every gRPC answer sends two header blocks, the response headers and the
 * trailers, and Node's ServerHttp2Stream.respond() and sendTrailers() do generic work for each
 * that a hot path does not need: they spread the options, copy the headers into a fresh object,
 * run a validation pass that allocates a Set and an array, and (trailers) schedule one
 * setImmediate per stream. On a bare node:http2 server answering unary gRPC calls (1 connection
 * × 100 streams) that work was about a fifth of the server's CPU per call (41–44 µs against
 * 33–36 with the steps below), and a tenth of the gateway's (README, "How it works").
 *
 * leanRespond() and leanSendTrailers() take the same arguments as Node's methods and do the
 * same steps in the same order: the same checks, flags, timer refresh and native call, with the
 * header block built by a loop that only accepts what needs no validation (a plain object with
 * lower-case token names, string or number values, an own valid :status and no other
 * pseudo-header, no sensitive-header list, no connection-specific names, no date left for Node
 * to fill in) and options Node would read the same way (booleans, no sendDate). Anything else
 * goes to Node's own method, which then answers or throws exactly as before. Trailers of all
 * streams that ask for them in one event-loop turn are sent from a single setImmediate: still
 * outside nghttp2's callback, as Node requires.
 *
 * What differs: `stream.sentHeaders` and `stream.sentTrailers` hold the objects passed in (Node's
 * copy also has the date it added); a stream whose native submit fails is destroyed with a
 * ConnectError (Internal) instead of Node's NghttpError; the batched trailers go out before other
 * immediates queued between them; and NODE_DEBUG=http2 does not log these two steps.
 */

/** The private parts of a Node server stream these functions use, found once. */
interface StreamInternals {
  /** kState: `{ flags, trailersReady, … }`. */
  state: symbol;
  /** kHandle: the native stream, with respond(headerList, options) and trailers(headerList). */
  handle: symbol;
  updateTimer: symbol;
  maybeDestroy: symbol;
  sentHeaders: symbol;
  sentTrailers: symbol;
}

interface NodeStreamState {
  flags: number;
  trailersReady: boolean;
}

interface NativeStream {
  respond(headerList: HeaderList, options: number): number;
  trailers(headerList: HeaderList): number;
}

/** A header block as Node's native layer takes it: name NUL value NUL flags, repeated; and the count. */
type HeaderList = [string, number];

type StreamWithInternals = http2.ServerHttp2Stream & Record<symbol, unknown>;

// Node's private constants (lib/internal/http2/core.js and src/node_http2.h, the same in 20 and 22).
const STREAM_FLAGS_CLOSED = 0x2;
const STREAM_FLAGS_HEADERS_SENT = 0x4;
const STREAM_FLAGS_HEAD_REQUEST = 0x8;
const STREAM_FLAGS_HAS_TRAILERS = 0x20;
const STREAM_OPTION_EMPTY_PAYLOAD = 0x1;
const STREAM_OPTION_GET_TRAILERS = 0x2;
/** NGHTTP2_NV_FLAG_NONE as the one-character string Node appends to each header. */
const NO_HEADER_FLAGS = "\0";

/** Lower-case HTTP token: the names whose header needs no further check by Node. */
const PLAIN_HEADER_NAME = LOWER_CASE_FIELD_NAME;
/** Names Node refuses (or checks the value of) in HTTP/2: left to Node to refuse. */
const CONNECTION_SPECIFIC = new Set([...CONNECTION_SPECIFIC_FIELDS, "http2-settings", "te"]);

let internals: StreamInternals | null | undefined;
/** Node 22 tells this channel's subscribers (APM agents) about each response respond() sends: leave those to Node. */
const responseSentChannel = diagnosticsChannel.channel("http2.server.stream.finish");

/** Sends a response's headers as `stream.respond(headers, options)` does, without its per-call overhead when the headers allow (see the note above). */
export function leanRespond(stream: http2.ServerHttp2Stream, headers: http2.OutgoingHttpHeaders, options?: http2.ServerStreamResponseOptions): void {
  const found = internalsOf(stream);
  const plain = found !== undefined && isPlainOptions(options) && !responseSentChannel.hasSubscribers;
  const headerList = plain ? responseHeaderList(headers) : undefined;
  if (found === undefined || headerList === undefined || stream.destroyed) {
    stream.respond(headers, options);
    return;
  }
  const target = stream as StreamWithInternals;
  const state = target[found.state] as NodeStreamState;
  // A closed stream, a second response, or a HEAD request: Node's method throws or ends the stream.
  if ((state.flags & (STREAM_FLAGS_CLOSED | STREAM_FLAGS_HEADERS_SENT | STREAM_FLAGS_HEAD_REQUEST)) !== 0) {
    stream.respond(headers, options);
    return;
  }
  (target[found.updateTimer] as () => void)();
  let streamOptions = 0;
  // isPlainOptions let only booleans through, so these tests read the options as Node's `!!` does.
  const endStream = options?.endStream === true;
  if (endStream) streamOptions |= STREAM_OPTION_EMPTY_PAYLOAD;
  if (options?.waitForTrailers) {
    streamOptions |= STREAM_OPTION_GET_TRAILERS;
    state.flags |= STREAM_FLAGS_HAS_TRAILERS;
  }
  target[found.sentHeaders] = headers;
  state.flags |= STREAM_FLAGS_HEADERS_SENT;
  if (endStream) stream.end();
  const result = (target[found.handle] as NativeStream).respond(headerList, streamOptions);
  if (result < 0) stream.destroy(nativeFailure("response headers", result));
}

/** Sends a stream's trailers as `stream.sendTrailers(trailers)` does (call it from 'wantTrailers'), without its per-call overhead when the trailers allow. */
export function leanSendTrailers(stream: http2.ServerHttp2Stream, trailers: http2.OutgoingHttpHeaders): void {
  const found = internalsOf(stream);
  const headerList = found === undefined ? undefined : trailerList(trailers);
  if (found === undefined || headerList === undefined || stream.destroyed) {
    stream.sendTrailers(trailers);
    return;
  }
  const target = stream as StreamWithInternals;
  const state = target[found.state] as NodeStreamState;
  // Closed, sent already, or not asked for yet: Node's method throws the error that says which.
  if ((state.flags & STREAM_FLAGS_CLOSED) !== 0 || target[found.sentTrailers] !== undefined || !state.trailersReady) {
    stream.sendTrailers(trailers);
    return;
  }
  (target[found.updateTimer] as () => void)();
  target[found.sentTrailers] = trailers;
  if (trailersDue.length === 0) setImmediate(sendDueTrailers);
  trailersDue.push(target, headerList);
}

/** Whether leanRespond and leanSendTrailers found what they need on this stream (false: they call Node's methods). */
export function leanResponsesWorkOn(stream: http2.ServerHttp2Stream): boolean {
  return internalsOf(stream) !== undefined;
}

/** Streams and their trailer blocks, alternating, waiting for the end of this event-loop turn. */
let trailersDue: (StreamWithInternals | HeaderList)[] = [];

function sendDueTrailers(): void {
  const due = trailersDue;
  trailersDue = [];
  const found = internals!;
  let firstError: unknown;
  for (let i = 0; i < due.length; i += 2) {
    const stream = due[i] as StreamWithInternals;
    // The stream may have been destroyed meanwhile; then there is nothing to send.
    if (stream.destroyed) continue;
    // One stream's failure (a throwing 'close' listener, say) must not strand the others' trailers.
    try {
      (stream[found.state] as NodeStreamState).flags &= ~STREAM_FLAGS_HAS_TRAILERS;
      const result = (stream[found.handle] as NativeStream).trailers(due[i + 1] as HeaderList);
      if (result < 0) stream.destroy(nativeFailure("trailers", result));
      else (stream[found.maybeDestroy] as () => void)();
    } catch (error) {
      firstError ??= error;
    }
  }
  // Surfaced as Node's own per-stream setImmediate would have surfaced it.
  if (firstError !== undefined) throw firstError;
}

function nativeFailure(what: string, result: number): ConnectError {
  return new ConnectError(`HTTP/2 could not send the ${what} (nghttp2 error ${result})`, Code.Internal);
}

/** The internals on this stream, or undefined when this Node is not one checked or they are not all there. */
function internalsOf(stream: http2.ServerHttp2Stream): StreamInternals | undefined {
  // The own server's streams send their headers cheaply already, and must not be taken for Node's shape.
  if ((stream as unknown) instanceof Http2ServerStream) return undefined;
  if (internals === undefined) {
    // A destroyed stream has lost its native handle: judge Node's shape on a live one.
    if (stream.destroyed) return undefined;
    internals = findInternals(stream) ?? null;
  }
  if (internals === null) return undefined;
  // Every server stream has its native handle from the start; without one, leave it to Node.
  return typeof (stream as StreamWithInternals)[internals.handle] === "object" ? internals : undefined;
}

function findInternals(stream: http2.ServerHttp2Stream): StreamInternals | undefined {
  if (!onCheckedNodeMajor) return undefined;
  const isFunction = (value: unknown) => typeof value === "function";
  const state = findSymbolKey(stream, "state", (value) => {
    const candidate = value as Partial<NodeStreamState> | undefined;
    return typeof candidate?.flags === "number" && typeof candidate.trailersReady === "boolean";
  });
  const handle = findSymbolKey(stream, "kHandle", (value) => {
    const candidate = value as Partial<NativeStream> | undefined;
    return typeof candidate?.respond === "function" && typeof candidate.trailers === "function";
  });
  const updateTimer = findSymbolKey(stream, "kUpdateTimer", isFunction);
  const maybeDestroy = findSymbolKey(stream, "kMaybeDestroy", isFunction);
  const sentHeaders = keyReadByGetter(stream, "sentHeaders");
  const sentTrailers = keyReadByGetter(stream, "sentTrailers");
  if (!state || !handle || !updateTimer || !maybeDestroy || !sentHeaders || !sentTrailers) return undefined;
  // The flag bits are private: check the three that public getters read (HAS_TRAILERS has none).
  const flagsRead = (getter: string, flags: number) => readGetter(stream, getter, { [state]: { flags } });
  if (flagsRead("headersSent", STREAM_FLAGS_HEADERS_SENT) !== true || flagsRead("headersSent", ~STREAM_FLAGS_HEADERS_SENT & 0xff) !== false) return undefined;
  if (flagsRead("closed", STREAM_FLAGS_CLOSED) !== true || flagsRead("closed", ~STREAM_FLAGS_CLOSED & 0xff) !== false) return undefined;
  if (flagsRead("headRequest", STREAM_FLAGS_HEAD_REQUEST) !== true || flagsRead("headRequest", ~STREAM_FLAGS_HEAD_REQUEST & 0xff) !== false) return undefined;
  return { state, handle, updateTimer, maybeDestroy, sentHeaders, sentTrailers };
}

/** The symbol a public getter (`get sentHeaders() { return this[kSentHeaders]; }`) reads. */
function keyReadByGetter(stream: http2.ServerHttp2Stream, name: string): symbol | undefined {
  let read: PropertyKey | undefined;
  const spy = new Proxy({}, {
    get(_target, key) {
      read ??= key;
      return undefined;
    },
  });
  readGetter(stream, name, spy);
  return typeof read === "symbol" ? read : undefined;
}

/** Runs the getter `name` of the stream's class on another receiver; undefined if there is none or it throws. */
function readGetter(stream: http2.ServerHttp2Stream, name: string, receiver: object): unknown {
  for (let target: object | null = stream; target !== null; target = Object.getPrototypeOf(target) as object | null) {
    const getter = Object.getOwnPropertyDescriptor(target, name)?.get;
    if (getter === undefined) continue;
    try {
      return getter.call(receiver) as unknown;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

let dateValidUntil = 0;
let dateHeader = "";

/** The date header's value: the same string Node would add, made once a second. */
function currentDate(): string {
  const now = Date.now();
  if (now >= dateValidUntil) {
    dateHeader = new Date(now).toUTCString();
    dateValidUntil = now - (now % 1000) + 1000;
  }
  return dateHeader;
}

/** The header block Node would build for these response headers (:status first, a date added), or undefined when Node must look at them. */
function responseHeaderList(headers: http2.OutgoingHttpHeaders): HeaderList | undefined {
  if (!isHeaderObject(headers) || !Object.hasOwn(headers, ":status")) return undefined;
  const status = headers[":status"];
  // 204, 205 and 304 end the stream in Node's method; anything else outside 200–599 is an error it throws.
  if (typeof status !== "number" || !Number.isInteger(status) || status < 200 || status > 599 || status === 204 || status === 205 || status === 304) {
    return undefined;
  }
  const hasDate = Object.hasOwn(headers, "date");
  // A date given as null or undefined is one Node fills in where the key stands: left to Node.
  if (hasDate && headers.date == null) return undefined;
  const list = encodeFields(headers, `:status\0${status}\0${NO_HEADER_FLAGS}`, 1, ":status");
  if (list !== undefined && !hasDate) {
    list[0] += `date\0${currentDate()}\0${NO_HEADER_FLAGS}`;
    list[1]++;
  }
  return list;
}

let lastTrailers: http2.OutgoingHttpHeaders | undefined;
let lastTrailerList: HeaderList | undefined;

/** The header block for these trailers, or undefined when Node must look at them. */
function trailerList(trailers: http2.OutgoingHttpHeaders): HeaderList | undefined {
  // Shared frozen trailers (every successful call's) are encoded once.
  if (trailers === lastTrailers) return lastTrailerList;
  if (!isHeaderObject(trailers)) return undefined;
  const list = encodeFields(trailers, "", 0);
  if (list !== undefined && Object.isFrozen(trailers)) {
    lastTrailers = trailers;
    lastTrailerList = list;
  }
  return list;
}

/**
 * Appends the fields Node would send (own keys, undefined values left out, `skip` already in the
 * block) to a header block; undefined when one of them needs Node's checks.
 */
function encodeFields(fields: http2.OutgoingHttpHeaders, block: string, count: number, skip?: string): HeaderList | undefined {
  for (const name in fields) {
    if (name === skip || !Object.hasOwn(fields, name)) continue;
    const value = fields[name];
    if (value === undefined) continue;
    const entry = plainHeader(name, value);
    if (entry === undefined) return undefined;
    block += entry;
    count++;
  }
  if ((fields as Record<symbol, unknown>)[http2.sensitiveHeaders] !== undefined) return undefined;
  return [block, count];
}

/** A headers argument the loop here can read as Node reads it: a plain object (anything else is Node's to accept or refuse). */
function isHeaderObject(headers: unknown): headers is http2.OutgoingHttpHeaders {
  return typeof headers === "object" && headers !== null && !Array.isArray(headers);
}

/** Options Node would read the same way: none, or an object whose endStream and waitForTrailers are booleans, without sendDate. */
function isPlainOptions(options: http2.ServerStreamResponseOptions | undefined): boolean {
  if (options === undefined) return true;
  if (typeof options !== "object" || options === null || "sendDate" in options) return false;
  const { endStream, waitForTrailers } = options;
  return (endStream === undefined || typeof endStream === "boolean") && (waitForTrailers === undefined || typeof waitForTrailers === "boolean");
}

/** One header as Node encodes it, if it needs no check Node would make; undefined otherwise. */
function plainHeader(name: string, value: unknown): string | undefined {
  if (!PLAIN_HEADER_NAME.test(name) || CONNECTION_SPECIFIC.has(name)) return undefined;
  if (typeof value === "string" || typeof value === "number") return `${name}\0${value}\0${NO_HEADER_FLAGS}`;
  return undefined;
}
