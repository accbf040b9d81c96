/**
 * The gateway's own HTTP/2 client (src/upstream/http2-client/) against real peers: Node's
 * http2 server as a well-behaved upstream, and raw TCP servers that write hand-made frames for
 * what a well-behaved server never does. Plus the frame reader and HPACK pieces on their own.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { Code, ConnectError } from "@connectrpc/connect";
import { Http2ClientConnection, type Http2ClientConnectionOptions } from "../../src/upstream/http2-client/client-connection.js";
import type { Http2ClientStream } from "../../src/upstream/http2-client/client-stream.js";
import {
  CONNECTION_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  encodeUint32Frame,
  Flag,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  Http2ConnectionError,
  Http2ErrorCode,
  MAX_ALLOWED_FRAME_SIZE,
  Setting,
  unpad,
} from "../../src/http2/frames.js";
import { RequestHeaderEncoder, ResponseHeaderDecoder } from "../../src/upstream/http2-client/header-block.js";
import { writeInteger } from "../../src/http2/hpack.js";
import { wasNotSent } from "../../src/upstream/upstream-errors.js";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) {
    try {
      await step();
    } catch {
      // best effort: a failed cleanup must not hide the test's own result
    }
  }
});

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

function connect(port: number, extra: Partial<Http2ClientConnectionOptions> = {}): Http2ClientConnection {
  const connection = new Http2ClientConnection({
    host: "127.0.0.1",
    port,
    authority: `127.0.0.1:${port}`,
    connectTimeoutMs: 2000,
    keepAliveMs: 0,
    ...extra,
  });
  cleanups.push(() => connection.destroy("test cleanup"));
  return connection;
}

interface Outcome {
  events: string[];
  headers: http2.IncomingHttpHeaders | undefined;
  flags: number | undefined;
  data: Buffer;
  dataEvents: number;
  trailers: http2.IncomingHttpHeaders | undefined;
  failure: ConnectError | undefined;
  rstCode: number | undefined;
}

/** Everything a stream reports until `close`; resumes it on `response` as the pass-through does. */
function collect(stream: Http2ClientStream, options: { resume?: boolean; ms?: number } = {}): Promise<Outcome> {
  const resume = options.resume ?? true;
  const chunks: Buffer[] = [];
  const outcome: Outcome = {
    events: [],
    headers: undefined,
    flags: undefined,
    data: Buffer.alloc(0),
    dataEvents: 0,
    trailers: undefined,
    failure: undefined,
    rstCode: undefined,
  };
  const note = (event: string) => {
    if (outcome.events[outcome.events.length - 1] !== event) outcome.events.push(event);
  };
  return within(
    new Promise<Outcome>((resolve) => {
      stream.on("response", (headers: http2.IncomingHttpHeaders, flags: number) => {
        note("response");
        outcome.headers = headers;
        outcome.flags = flags;
        if (resume) stream.resume();
      });
      stream.on("data", (chunk: Buffer) => {
        note("data");
        outcome.dataEvents++;
        chunks.push(chunk);
      });
      stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => {
        note("trailers");
        outcome.trailers = trailers;
      });
      stream.on("end", () => note("end"));
      stream.on("close", () => {
        note("close");
        outcome.data = Buffer.concat(chunks);
        outcome.failure = stream.failure;
        outcome.rstCode = stream.rstCode;
        resolve(outcome);
      });
    }),
    options.ms ?? 5000,
    "the stream to close",
  );
}

function readAll(stream: http2.ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: readonly string[]) => void;

interface NodeServer {
  server: http2.Http2Server | http2.Http2SecureServer;
  port: number;
  sessions: http2.ServerHttp2Session[];
}

/** At cleanup: destroy what is still open on `server` (sessions, sockets), then close it. */
function closeAtCleanup(server: { close(callback: () => void): unknown }, open: Iterable<{ destroy(): unknown }>): void {
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const item of open) item.destroy();
        server.close(() => resolve());
      }),
  );
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

async function startH2(handler: StreamHandler, options: http2.ServerOptions = {}): Promise<NodeServer> {
  return track(http2.createServer(options), handler);
}

async function startH2Secure(handler: StreamHandler, options: http2.SecureServerOptions): Promise<NodeServer> {
  return track(http2.createSecureServer(options), handler);
}

async function track(server: http2.Http2Server | http2.Http2SecureServer, handler: StreamHandler): Promise<NodeServer> {
  const sessions: http2.ServerHttp2Session[] = [];
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.push(session);
    session.on("error", () => {});
  });
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: readonly string[]) => {
    stream.on("error", () => {});
    handler(stream, headers, rawHeaders);
  });
  const port = await listen(server as unknown as net.Server);
  closeAtCleanup(server, sessions);
  return { server, port, sessions };
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** One connection to a raw server: the client's frames as they arrive, and a way to answer. */
class RawPeer {
  readonly frames: RawFrame[] = [];
  ended = false;
  prefaceOk: boolean | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(readonly socket: net.Socket) {
    let head = Buffer.alloc(0);
    const reader = new FrameReader(MAX_ALLOWED_FRAME_SIZE, (type, flags, streamId, payload) => {
      this.frames.push({ type, flags, streamId, payload: Buffer.from(payload) });
      this.notify();
    });
    socket.on("data", (chunk: Buffer) => {
      if (this.prefaceOk === undefined) {
        head = Buffer.concat([head, chunk]);
        if (head.length < CONNECTION_PREFACE.length) return;
        this.prefaceOk = head.subarray(0, CONNECTION_PREFACE.length).equals(CONNECTION_PREFACE);
        chunk = head.subarray(CONNECTION_PREFACE.length);
      }
      reader.push(chunk);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.ended = true;
      this.notify();
    });
  }

  send(...frames: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(frames));
  }

  sendSettings(settings: ReadonlyArray<readonly [number, number]> = []): void {
    this.send(encodeSettings(settings));
  }

  /** The first frame (already received or still to come) that matches. */
  waitFor(match: (frame: RawFrame) => boolean, what: string, ms = 3000): Promise<RawFrame> {
    return within(
      new Promise<RawFrame>((resolve, reject) => {
        const check = () => {
          const frame = this.frames.find(match);
          if (frame !== undefined) {
            this.listeners.delete(check);
            resolve(frame);
          } else if (this.ended) {
            this.listeners.delete(check);
            reject(new Error(`connection closed before ${what}`));
          }
        };
        this.listeners.add(check);
        check();
      }),
      ms,
      what,
    );
  }

  waitForClose(ms = 3000): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (this.ended) {
            this.listeners.delete(check);
            resolve();
          }
        };
        this.listeners.add(check);
        check();
      }),
      ms,
      "the raw connection to close",
    );
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

interface RawServer {
  port: number;
  peers: RawPeer[];
  /** The next connection's peer (or the first one, if it is already there). */
  peer(): Promise<RawPeer>;
}

async function startRaw(onPeer: (peer: RawPeer) => void = (peer) => peer.sendSettings()): Promise<RawServer> {
  const peers: RawPeer[] = [];
  const sockets = new Set<net.Socket>();
  let arrived: (() => void) | undefined;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const peer = new RawPeer(socket);
    peers.push(peer);
    onPeer(peer);
    arrived?.();
  });
  const port = await listen(server);
  closeAtCleanup(server, sockets);
  return {
    port,
    peers,
    peer: () =>
      peers.length > 0
        ? Promise.resolve(peers[0])
        : within(
            new Promise<RawPeer>((resolve) => {
              arrived = () => resolve(peers[0]);
            }),
            3000,
            "a connection to the raw server",
          ),
  };
}

/**
 * A raw server, a connection to it, and one call (body "x") whose request HEADERS the server has
 * already received: the start of every test in which the server then misbehaves on stream 1.
 */
async function callToRawServer(
  path: string,
  options: { connection?: Partial<Http2ClientConnectionOptions>; collect?: { resume?: boolean; ms?: number } } = {},
) {
  const raw = await startRaw();
  const connection = connect(raw.port, options.connection);
  const stream = connection.request(path, GRPC_HEADERS, Buffer.from("x"));
  const outcome = collect(stream, options.collect);
  const peer = await raw.peer();
  await peer.waitFor(isHeadersOn(1), "the request");
  return { raw, connection, stream, outcome, peer };
}

/** HPACK "literal header field without indexing — new name", no Huffman (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  const out = Buffer.alloc(16 + name.length + value.length);
  let offset = writeInteger(out, 0, 0, 4, 0x00);
  offset = writeInteger(out, offset, name.length, 7, 0x00);
  offset += out.write(name, offset, "latin1");
  offset = writeInteger(out, offset, value.length, 7, 0x00);
  offset += out.write(value, offset, "latin1");
  return out.subarray(0, offset);
}

/** `:status: 200` from the static table. */
const STATUS_200 = Buffer.of(0x88);

function headersFrame(streamId: number, block: Buffer, endStream = false): Buffer {
  return encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId, block);
}

function dataFrame(streamId: number, data: Buffer, endStream = false): Buffer {
  return encodeFrame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, data);
}

/** A whole gRPC-like response on `streamId` from a raw server. */
function rawResponse(streamId: number, body: Buffer): Buffer {
  return Buffer.concat([
    headersFrame(streamId, Buffer.concat([STATUS_200, literal("content-type", "application/grpc")])),
    dataFrame(streamId, body),
    headersFrame(streamId, literal("grpc-status", "0"), true),
  ]);
}

const isHeadersOn = (streamId: number) => (frame: RawFrame) => frame.type === FrameType.HEADERS && frame.streamId === streamId;

/** A TCP proxy that records the frames going each way (to see what Node's server really sent). */
async function startRecordingProxy(targetPort: number): Promise<{ port: number; fromServer: RawFrame[]; fromClient: RawFrame[] }> {
  const fromServer: RawFrame[] = [];
  const fromClient: RawFrame[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    // No Nagle on either leg: the proxy must not add delayed-ACK stalls of its own.
    client.setNoDelay(true);
    const upstream = net.connect({ port: targetPort, host: "127.0.0.1", noDelay: true });
    sockets.add(client);
    sockets.add(upstream);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    const serverReader = new FrameReader(MAX_ALLOWED_FRAME_SIZE, (type, flags, streamId, payload) =>
      fromServer.push({ type, flags, streamId, payload: Buffer.from(payload) }),
    );
    let prefaceLeft = CONNECTION_PREFACE.length;
    const clientReader = new FrameReader(MAX_ALLOWED_FRAME_SIZE, (type, flags, streamId, payload) =>
      fromClient.push({ type, flags, streamId, payload: Buffer.from(payload) }),
    );
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      if (prefaceLeft > 0) {
        const skip = Math.min(prefaceLeft, chunk.length);
        prefaceLeft -= skip;
        chunk = chunk.subarray(skip);
      }
      if (chunk.length > 0) clientReader.push(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      client.write(chunk);
      serverReader.push(chunk);
    });
  });
  const port = await listen(server);
  closeAtCleanup(server, sockets);
  return { port, fromServer, fromClient };
}

function expectUnavailable(failure: ConnectError | undefined): ConnectError {
  expect(failure).toBeInstanceOf(ConnectError);
  expect(failure!.code).toBe(Code.Unavailable);
  return failure!;
}

function requestThrows(connection: Http2ClientConnection): ConnectError {
  let thrown: unknown;
  try {
    connection.request("/pkg.Svc/Late", { "content-type": "application/grpc" }, Buffer.from("late"));
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ConnectError);
  const error = thrown as ConnectError;
  expect(error.code).toBe(Code.Unavailable);
  expect(wasNotSent(error)).toBe(true);
  return error;
}

const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" };

/** A whole gRPC-like answer from a Node server stream: headers, `body`, trailers. */
function respond(stream: http2.ServerHttp2Stream, body: Buffer | string, trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" }): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers(trailers));
  stream.end(body);
}

/** A Node handler: the request body echoed back (prefixed), with gRPC-style trailers. */
const echoHandler: StreamHandler = (stream) => {
  void readAll(stream).then((body) => respond(stream, Buffer.concat([Buffer.from("echo:"), body])));
};

// ---------------------------------------------------------------------------------------------
// Against Node's http2 server
// ---------------------------------------------------------------------------------------------

describe("Http2ClientConnection against node:http2", () => {
  it("completes a unary exchange: request headers and body as sent, response headers, data, trailers, end, close", async () => {
    let seen: { headers: http2.IncomingHttpHeaders; raw: readonly string[]; body: Buffer } | undefined;
    const server = await startH2((stream, headers, raw) => {
      void readAll(stream).then((body) => {
        seen = { headers, raw, body };
        stream.respond({ ":status": 200, "content-type": "application/grpc", "x-reply": "r1" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "fine" }));
        stream.write(Buffer.from("first,"));
        stream.end(Buffer.from("second"));
      });
    });
    const connection = connect(server.port);
    const body = Buffer.concat([Buffer.of(0, 0, 0, 0, 5), Buffer.from("hello"), Buffer.of(0xff, 0x00, 0x80)]);
    const stream = connection.request(
      "/shop.v1.Shop/GetItem",
      { ...GRPC_HEADERS, "x-meta": "value-1", "x-repeated": ["a", "b"], "grpc-timeout": "5S" },
      body,
    );
    expect(stream.id).toBe(1);
    const outcome = await collect(stream);

    expect(outcome.events).toEqual(["response", "data", "trailers", "end", "close"]);
    expect(outcome.headers![":status"]).toBe(200);
    expect(outcome.headers!["content-type"]).toBe("application/grpc");
    expect(outcome.headers!["x-reply"]).toBe("r1");
    expect(outcome.flags! & Flag.END_STREAM).toBe(0);
    expect(outcome.data.toString()).toBe("first,second");
    expect(outcome.trailers).toMatchObject({ "grpc-status": "0", "grpc-message": "fine" });
    expect(outcome.failure).toBeUndefined();
    expect(outcome.rstCode).toBeUndefined();
    expect(stream.readableEnded).toBe(true);
    expect(stream.closed).toBe(true);

    expect(seen).toBeDefined();
    expect(seen!.headers[":method"]).toBe("POST");
    expect(seen!.headers[":path"]).toBe("/shop.v1.Shop/GetItem");
    expect(seen!.headers[":authority"]).toBe(`127.0.0.1:${server.port}`);
    expect(seen!.headers[":scheme"]).toBe("http");
    expect(seen!.headers["content-type"]).toBe("application/grpc");
    expect(seen!.headers["te"]).toBe("trailers");
    expect(seen!.headers["x-meta"]).toBe("value-1");
    expect(seen!.headers["grpc-timeout"]).toBe("5S");
    // The repeated header went out as two fields, in order.
    const repeated: string[] = [];
    for (let i = 0; i < seen!.raw.length; i += 2) if (seen!.raw[i] === "x-repeated") repeated.push(seen!.raw[i + 1]);
    expect(repeated).toEqual(["a", "b"]);
    expect(seen!.body.equals(body)).toBe(true);
    expect(connection.activeStreams).toBe(0);
    expect(connection.acceptsStreams).toBe(true);
  });

  it("sends an empty body with END_STREAM on the HEADERS frame", async () => {
    let body: Buffer | undefined;
    const server = await startH2((stream) => {
      void readAll(stream).then((b) => {
        body = b;
        stream.respond({ ":status": 200 }, { endStream: true });
      });
    });
    const proxy = await startRecordingProxy(server.port);
    const connection = connect(proxy.port);
    const outcome = await collect(connection.request("/p.S/Empty", GRPC_HEADERS, Buffer.alloc(0)));
    expect(outcome.failure).toBeUndefined();
    expect(body!.length).toBe(0);
    const headers = proxy.fromClient.find((f) => f.type === FrameType.HEADERS && f.streamId === 1);
    expect(headers!.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
    expect(proxy.fromClient.some((f) => f.type === FrameType.DATA)).toBe(false);
  });

  it("runs 200 concurrent streams on one connection, each getting its own answer", async () => {
    const server = await startH2(echoHandler);
    const connection = connect(server.port);
    const streams = Array.from({ length: 200 }, (_, i) =>
      connection.request("/p.S/Echo", { ...GRPC_HEADERS, "x-call": String(i) }, Buffer.from(`call-${i}-${"x".repeat(i)}`)),
    );
    // Until the server's SETTINGS arrive, at most 100 streams open (the least the RFC asks servers to allow); the rest wait.
    expect(streams.filter((s) => s.id !== 0).length).toBe(100);
    const outcomes = await within(Promise.all(streams.map((s) => collect(s))), 8000, "200 calls");
    expect(new Set(streams.map((s) => s.id)).size).toBe(200);
    expect(streams.every((s) => s.id > 0)).toBe(true);
    outcomes.forEach((outcome, i) => {
      expect(outcome.failure).toBeUndefined();
      expect(outcome.headers![":status"]).toBe(200);
      expect(outcome.data.toString()).toBe(`echo:call-${i}-${"x".repeat(i)}`);
      expect(outcome.trailers!["grpc-status"]).toBe("0");
    });
    expect(server.sessions.length).toBe(1);
    expect(connection.activeStreams).toBe(0);
  });

  it("decodes Huffman-coded, indexed and long response headers across a sequence of calls (HPACK state)", async () => {
    const long = (i: number) => `long-${i}-`.padEnd(130 + i * 7, String.fromCharCode(97 + (i % 26)));
    const expected = (i: number): Record<string, string | string[]> => ({
      "x-constant": "same-value-every-time",
      "x-counter": `n${i}`,
      [`x-name-${i % 5}`]: `v${i % 3}`,
      "x-long": long(i),
      "x-long-fixed": "Q".repeat(300),
      "x-multi": ["one", `two-${i % 2}`],
      "x-mixed-value": `AbCdEf-${i}-!#$%&'*+.^_|~`,
    });
    const server = await startH2((stream, headers) => {
      const i = Number(headers["x-call"]);
      void readAll(stream).then(() => {
        stream.respond({ ":status": 200, "content-type": "application/grpc", ...expected(i) }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": `trailer-${i}`, "x-long-trailer": long(i + 1) }));
        stream.end(Buffer.from(String(i)));
      });
    });
    const proxy = await startRecordingProxy(server.port);
    const connection = connect(proxy.port);
    const check = (outcome: Outcome, i: number) => {
      expect(outcome.failure).toBeUndefined();
      expect(outcome.headers![":status"]).toBe(200);
      expect(outcome.headers!["content-type"]).toBe("application/grpc");
      for (const [name, value] of Object.entries(expected(i))) expect(outcome.headers![name]).toEqual(value);
      expect(outcome.data.toString()).toBe(String(i));
      expect(outcome.trailers).toMatchObject({ "grpc-status": "0", "grpc-message": `trailer-${i}`, "x-long-trailer": long(i + 1) });
    };
    for (let i = 0; i < 30; i++) {
      check(await collect(connection.request("/p.S/H", { ...GRPC_HEADERS, "x-call": String(i) }, Buffer.from("q"))), i);
    }
    // And interleaved: blocks of concurrent calls must still be decoded in arrival order.
    const concurrent = Array.from({ length: 40 }, (_, k) => 30 + k);
    const outcomes = await Promise.all(
      concurrent.map((i) => collect(connection.request("/p.S/H", { ...GRPC_HEADERS, "x-call": String(i) }, Buffer.from("q")))),
    );
    outcomes.forEach((outcome, k) => check(outcome, concurrent[k]));

    // The wire really used the dynamic table: later response header blocks are much smaller than the first.
    const responseBlocks = proxy.fromServer.filter((f) => f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) === 0);
    expect(responseBlocks.length).toBe(70);
    expect(responseBlocks[5].payload.length).toBeLessThan(responseBlocks[0].payload.length / 2);
  });

  it("sends a 3 MiB request body through the upstream's flow-control windows", async () => {
    let serverSaw: string | undefined;
    const server = await startH2((stream) => {
      void readAll(stream).then((body) => {
        serverSaw = sha256(body);
        stream.respond({ ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-length": String(body.length) }));
        stream.end(sha256(body));
      });
    });
    const proxy = await startRecordingProxy(server.port);
    const connection = connect(proxy.port);
    const body = randomBytes(3 * 1024 * 1024 + 123);
    const outcome = await within(collect(connection.request("/p.S/Upload", GRPC_HEADERS, body), { ms: 8000 }), 8000, "the upload");
    expect(outcome.failure).toBeUndefined();
    expect(outcome.trailers!["x-length"]).toBe(String(body.length));
    expect(serverSaw).toBe(sha256(body));
    expect(outcome.data.toString()).toBe(sha256(body));
    // No DATA frame exceeded the default max frame size, and the server had to grant window.
    const data = proxy.fromClient.filter((f) => f.type === FrameType.DATA);
    expect(Math.max(...data.map((f) => f.payload.length))).toBeLessThanOrEqual(DEFAULT_MAX_FRAME_SIZE);
    expect(data.reduce((n, f) => n + f.payload.length, 0)).toBe(body.length);
    expect(proxy.fromServer.filter((f) => f.type === FrameType.WINDOW_UPDATE).length).toBeGreaterThan(0);
  });

  it("receives a 3 MiB response body intact", async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 7);
    const server = await startH2((stream) => {
      void readAll(stream).then(() => {
        stream.respond({ ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(payload);
      });
    });
    const connection = connect(server.port);
    const outcome = await collect(connection.request("/p.S/Download", GRPC_HEADERS, Buffer.from("go")), { ms: 8000 });
    expect(outcome.failure).toBeUndefined();
    expect(outcome.data.length).toBe(payload.length);
    expect(outcome.data.equals(payload)).toBe(true);
    expect(outcome.trailers!["grpc-status"]).toBe("0");
  });

  it("receives 20 MiB on 4 concurrent streams, beyond the 16 MiB connection window", async () => {
    const payloads = Array.from({ length: 4 }, () => randomBytes(5 * 1024 * 1024));
    const server = await startH2((stream, headers) => {
      void readAll(stream).then(() => respond(stream, payloads[Number(headers["x-index"])]));
    }, { maxSessionMemory: 200 }); // MB; Node's default of 10 refuses streams (ENHANCE_YOUR_CALM) with this much buffered
    const connection = connect(server.port);
    const outcomes = await Promise.all(
      payloads.map((_, i) => collect(connection.request("/p.S/Big", { ...GRPC_HEADERS, "x-index": String(i) }, Buffer.from("go")), { ms: 8000 })),
    );
    outcomes.forEach((outcome, i) => {
      expect(outcome.failure).toBeUndefined();
      expect(outcome.rstCode).toBeUndefined();
      expect(outcome.data.length).toBe(payloads[i].length);
      expect(outcome.data.equals(payloads[i])).toBe(true);
      expect(outcome.trailers!["grpc-status"]).toBe("0");
    });
  });

  it("applies backpressure: a paused stream stops an 8 MiB response until resume()", async () => {
    const total = 8 * 1024 * 1024;
    const payload = randomBytes(total);
    const chunkSize = 16 * 1024;
    let written = 0;
    let blocked = false;
    const server = await startH2((stream) => {
      void readAll(stream).then(() => {
        stream.respond({ ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        const pump = () => {
          blocked = false;
          while (written < total) {
            const ok = stream.write(payload.subarray(written, written + chunkSize));
            written += chunkSize;
            if (!ok) {
              blocked = true;
              stream.once("drain", pump);
              return;
            }
          }
          stream.end();
        };
        pump();
      });
    });
    const connection = connect(server.port);
    const stream = connection.request("/p.S/Big", GRPC_HEADERS, Buffer.from("go"));
    let response = false;
    let dataEvents = 0;
    stream.on("response", () => (response = true));
    stream.on("data", () => dataEvents++);
    await until(() => response, "response headers");
    // Wait until the server's writes stall and stay stalled.
    let last = -1;
    let stableSince = Date.now();
    await until(() => {
      if (written !== last) {
        last = written;
        stableSince = Date.now();
      }
      return blocked && Date.now() - stableSince >= 300;
    }, "the server's writes to stall");
    expect(blocked).toBe(true);
    expect(written).toBeLessThan(2 * 1024 * 1024);
    expect(dataEvents).toBe(0);
    expect(stream.closed).toBe(false);

    const outcome = collect(stream, { ms: 8000 });
    stream.resume();
    const result = await outcome;
    expect(result.failure).toBeUndefined();
    expect(written).toBe(total);
    expect(result.data.length).toBe(total);
    expect(result.data.equals(payload)).toBe(true);
    expect(result.trailers!["grpc-status"]).toBe("0");
  });

  it("keeps to SETTINGS_MAX_CONCURRENT_STREAMS: never more than 2 open, all 10 calls complete", async () => {
    let current = 0;
    let max = 0;
    let served = 0;
    const server = await startH2(
      (stream) => {
        // Counted from the stream's arrival until just before its END_STREAM goes out: the
        // client cannot open the next stream before it sees that, so this bounds the
        // concurrency on the wire from below.
        current++;
        max = Math.max(max, current);
        void readAll(stream).then(async (body) => {
          await delay(40);
          current--;
          served++;
          respond(stream, body);
        });
      },
      { settings: { maxConcurrentStreams: 2 } },
    );
    const connection = connect(server.port);
    // A first call, so that the server's SETTINGS have arrived before the burst.
    expect((await collect(connection.request("/p.S/Warm", GRPC_HEADERS, Buffer.from("w")))).failure).toBeUndefined();
    max = 0;
    const streams = Array.from({ length: 10 }, (_, i) => connection.request("/p.S/Slow", GRPC_HEADERS, Buffer.from(`slow-${i}`)));
    expect(connection.activeStreams).toBe(10);
    expect(streams.filter((s) => s.id === 0).length).toBe(8);
    const outcomes = await Promise.all(streams.map((s) => collect(s)));
    outcomes.forEach((outcome, i) => {
      expect(outcome.failure).toBeUndefined();
      expect(outcome.rstCode).toBeUndefined();
      expect(outcome.data.toString()).toBe(`slow-${i}`);
    });
    expect(max).toBe(2);
    expect(served).toBe(11);
    expect(server.sessions.length).toBe(1);
    expect(connection.activeStreams).toBe(0);
  });

  it("close() fails the streams still waiting for a slot as not sent, lets the open one finish, then closes", async () => {
    const server = await startH2(
      (stream) => {
        void readAll(stream).then(async (body) => {
          await delay(50);
          respond(stream, body);
        });
      },
      { settings: { maxConcurrentStreams: 1 } },
    );
    const connection = connect(server.port);
    let closes = 0;
    connection.onClose = () => closes++;
    expect((await collect(connection.request("/p.S/Warm", GRPC_HEADERS, Buffer.from("w")))).failure).toBeUndefined();
    const streams = Array.from({ length: 3 }, (_, i) => connection.request("/p.S/Slow", GRPC_HEADERS, Buffer.from(`slow-${i}`)));
    expect(streams.map((s) => s.id)).toEqual([3, 0, 0]);
    const outcomes = Promise.all(streams.map((s) => collect(s)));
    connection.close();
    const [open, ...queued] = await within(outcomes, 3000, "the three calls");
    expect(open.failure).toBeUndefined();
    expect(open.data.toString()).toBe("slow-0");
    for (const outcome of queued) {
      expect(wasNotSent(expectUnavailable(outcome.failure))).toBe(true);
    }
    await until(() => closes === 1, "onClose");
    expect(connection.activeStreams).toBe(0);
    expect(connection.acceptsStreams).toBe(false);
  });

  it("decodes padded HEADERS and DATA frames", async () => {
    const server = await startH2(
      (stream) => {
        void readAll(stream).then(() => {
          stream.respond({ ":status": 200, "content-type": "application/grpc", "x-padded": "yes" }, { waitForTrailers: true });
          stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "padded" }));
          stream.write(Buffer.from("alpha-"));
          stream.end(Buffer.alloc(40_000, 0x61));
        });
      },
      { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX },
    );
    const proxy = await startRecordingProxy(server.port);
    const connection = connect(proxy.port);
    for (let round = 0; round < 3; round++) {
      const outcome = await collect(connection.request("/p.S/Pad", GRPC_HEADERS, Buffer.from("x")));
      expect(outcome.failure).toBeUndefined();
      expect(outcome.headers).toMatchObject({ ":status": 200, "x-padded": "yes" });
      expect(outcome.data.toString()).toBe("alpha-" + "a".repeat(40_000));
      expect(outcome.trailers).toMatchObject({ "grpc-status": "0", "grpc-message": "padded" });
    }
    const padded = proxy.fromServer.filter((f) => (f.type === FrameType.DATA || f.type === FrameType.HEADERS) && (f.flags & Flag.PADDED) !== 0);
    expect(padded.some((f) => f.type === FrameType.DATA)).toBe(true);
    expect(padded.some((f) => f.type === FrameType.HEADERS)).toBe(true);
  });

  it("reassembles a response header block over CONTINUATION frames (more than 16 KiB)", async () => {
    const big: Record<string, string> = {};
    for (let i = 0; i < 36; i++) big[`x-big-${i}`] = randomBytes(768).toString("base64"); // 1 KiB each
    const server = await startH2(
      (stream) => {
        void readAll(stream).then(() => {
          stream.respond({ ":status": 200, ...big }, { waitForTrailers: true });
          stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
          stream.end(Buffer.from("after-big-headers"));
        });
      },
      { maxSendHeaderBlockLength: 200_000 },
    );
    const proxy = await startRecordingProxy(server.port);
    const connection = connect(proxy.port);
    for (let round = 0; round < 2; round++) {
      const outcome = await collect(connection.request("/p.S/Big", GRPC_HEADERS, Buffer.from("x")));
      expect(outcome.failure).toBeUndefined();
      expect(outcome.headers![":status"]).toBe(200);
      for (const [name, value] of Object.entries(big)) expect(outcome.headers![name]).toBe(value);
      expect(outcome.data.toString()).toBe("after-big-headers");
      expect(outcome.trailers!["grpc-status"]).toBe("0");
    }
    expect(proxy.fromServer.some((f) => f.type === FrameType.CONTINUATION)).toBe(true);
  });

  it("sends request headers larger than one frame as HEADERS + CONTINUATION", async () => {
    const metadata: Record<string, string> = {};
    for (let i = 0; i < 20; i++) metadata[`x-meta-${i}`] = `${i}-`.padEnd(1024, "m");
    let seen: http2.IncomingHttpHeaders | undefined;
    const server = await startH2(
      (stream, headers) => {
        seen = headers;
        echoHandler(stream, headers, []);
      },
      { maxHeaderListPairs: 256, settings: { maxHeaderListSize: 256 * 1024 } },
    );
    const proxy = await startRecordingProxy(server.port);
    const connection = connect(proxy.port);
    const outcome = await collect(connection.request("/p.S/Meta", { ...GRPC_HEADERS, ...metadata }, Buffer.from("body")));
    expect(outcome.failure).toBeUndefined();
    expect(outcome.data.toString()).toBe("echo:body");
    for (const [name, value] of Object.entries(metadata)) expect(seen![name]).toBe(value);
    const continuation = proxy.fromClient.filter((f) => f.type === FrameType.CONTINUATION);
    expect(continuation.length).toBeGreaterThan(0);
    expect(continuation[continuation.length - 1].flags & Flag.END_HEADERS).toBe(Flag.END_HEADERS);
  });

  it("reports a trailers-only response: response flags carry END_STREAM, then end and close, no data", async () => {
    const server = await startH2((stream) => {
      void readAll(stream).then(() => {
        stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "not found" }, { endStream: true });
      });
    });
    const connection = connect(server.port);
    const outcome = await collect(connection.request("/p.S/Missing", GRPC_HEADERS, Buffer.from("x")));
    expect(outcome.flags! & Flag.END_STREAM).toBe(Flag.END_STREAM);
    expect(outcome.headers).toMatchObject({ ":status": 200, "grpc-status": "5", "grpc-message": "not found" });
    expect(outcome.events).toEqual(["response", "end", "close"]);
    expect(outcome.dataEvents).toBe(0);
    expect(outcome.trailers).toBeUndefined();
    expect(outcome.failure).toBeUndefined();
    expect(outcome.rstCode).toBeUndefined();
  });

  it("delivers a trailers-only response's end only after resume()", async () => {
    const server = await startH2((stream) => {
      void readAll(stream).then(() => stream.respond({ ":status": 200, "grpc-status": "0" }, { endStream: true }));
    });
    const connection = connect(server.port);
    const stream = connection.request("/p.S/T", GRPC_HEADERS, Buffer.from("x"));
    const events: string[] = [];
    stream.on("response", () => events.push("response"));
    stream.on("end", () => events.push("end"));
    stream.on("close", () => events.push("close"));
    await until(() => events.includes("response"), "the response");
    await delay(50);
    expect(events).toEqual(["response"]);
    expect(connection.activeStreams).toBe(0);
    stream.resume();
    expect(events).toEqual(["response", "end", "close"]);
  });

  it("fails a REFUSED_STREAM reset as not sent (safe to retry)", async () => {
    const server = await startH2((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const connection = connect(server.port);
    const outcome = await collect(connection.request("/p.S/Refused", GRPC_HEADERS, Buffer.from("x")));
    expect(outcome.rstCode).toBe(Http2ErrorCode.REFUSED_STREAM);
    expect(outcome.events).toEqual(["close"]);
    const failure = expectUnavailable(outcome.failure);
    expect(wasNotSent(failure)).toBe(true);
    // The connection itself is fine.
    expect(connection.acceptsStreams).toBe(true);
  });

  it.each([
    ["CANCEL", http2.constants.NGHTTP2_CANCEL, Http2ErrorCode.CANCEL],
    ["INTERNAL_ERROR", http2.constants.NGHTTP2_INTERNAL_ERROR, Http2ErrorCode.INTERNAL_ERROR],
  ])("reports a %s reset from node's server as rstCode, and the connection stays usable", async (_name, nodeCode, code) => {
    const server = await startH2((stream, headers) => {
      if (headers[":path"] === "/p.S/Reset") stream.close(nodeCode);
      else echoHandler(stream, headers, []);
    });
    const connection = connect(server.port);
    const outcome = await collect(connection.request("/p.S/Reset", GRPC_HEADERS, Buffer.from("x")));
    expect(outcome.rstCode).toBe(code);
    expect(outcome.events).toEqual(["close"]);
    // The upstream may have acted on it: never "not sent".
    expect(outcome.failure === undefined || !wasNotSent(outcome.failure)).toBe(true);
    const next = await collect(connection.request("/p.S/Echo", GRPC_HEADERS, Buffer.from("again")));
    expect(next.failure).toBeUndefined();
    expect(next.data.toString()).toBe("echo:again");
  });

  it.each([
    ["CANCEL", Http2ErrorCode.CANCEL],
    ["INTERNAL_ERROR", Http2ErrorCode.INTERNAL_ERROR],
  ])("reports a %s reset after response headers and data as rstCode, not as an end", async (_name, code) => {
    const { connection, stream, outcome, peer } = await callToRawServer("/p.S/Reset");
    peer.send(headersFrame(1, STATUS_200), dataFrame(1, Buffer.from("partial")));
    await new Promise((resolve) => stream.once("data", resolve));
    peer.send(encodeUint32Frame(FrameType.RST_STREAM, 1, code));
    const result = await outcome;
    expect(result.headers![":status"]).toBe(200);
    expect(result.data.toString()).toBe("partial");
    expect(result.rstCode).toBe(code);
    expect(result.events).toEqual(["response", "data", "close"]);
    expect(result.failure === undefined || !wasNotSent(result.failure)).toBe(true);
    expect(connection.acceptsStreams).toBe(true);
    expect(connection.activeStreams).toBe(0);
  });

  it("cancels a stream with close(): the server sees RST_STREAM CANCEL", async () => {
    let serverRst: number | undefined;
    let serverStreamClosed = false;
    const server = await startH2((stream) => {
      stream.on("close", () => {
        serverRst = stream.rstCode;
        serverStreamClosed = true;
      });
      void readAll(stream).then(() => stream.respond({ ":status": 200 }));
    });
    const connection = connect(server.port);
    const stream = connection.request("/p.S/Cancel", GRPC_HEADERS, Buffer.from("x"));
    const outcome = collect(stream);
    await new Promise((resolve) => stream.once("response", resolve));
    stream.close();
    const result = await outcome;
    expect(result.rstCode).toBe(Http2ErrorCode.CANCEL);
    expect(connection.activeStreams).toBe(0);
    await until(() => serverStreamClosed, "the server's stream to close");
    expect(serverRst).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it("on a server GOAWAY: streams above the last id fail as not sent, the last one completes, no new streams", async () => {
    const arrived = new Map<number, http2.ServerHttp2Stream>();
    const server = await startH2((stream) => {
      arrived.set(stream.id!, stream);
      stream.resume();
    });
    const connection = connect(server.port);
    let closes = 0;
    connection.onClose = () => closes++;
    const streams = [1, 2, 3].map((i) => connection.request("/p.S/G", GRPC_HEADERS, Buffer.from(String(i))));
    expect(streams.map((s) => s.id)).toEqual([1, 3, 5]);
    const pending = Promise.all(streams.map((s) => collect(s)));
    await until(() => arrived.size === 3, "all three streams at the server");
    server.sessions[0].goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    // Stream 1 is still answered after the GOAWAY.
    respond(arrived.get(1)!, "first");
    const outcomes = await pending;
    expect(outcomes[0].failure).toBeUndefined();
    expect(outcomes[0].data.toString()).toBe("first");
    for (const outcome of outcomes.slice(1)) {
      const failure = expectUnavailable(outcome.failure);
      expect(wasNotSent(failure)).toBe(true);
      expect(failure.rawMessage).toMatch(/GOAWAY/);
    }
    expect(connection.acceptsStreams).toBe(false);
    requestThrows(connection);
    await until(() => closes > 0, "the connection to close");
    expect(closes).toBe(1);
  });

  it("keeps a connection alive with PINGs the server answers (keepAliveMs 100, pingTimeoutMs 300)", async () => {
    const server = await startH2((stream) => {
      void readAll(stream).then(async () => {
        await delay(1200);
        respond(stream, "late but fine");
      });
    });
    let pings = 0;
    server.server.on("session", (session: http2.ServerHttp2Session) => session.on("ping", () => pings++));
    const connection = connect(server.port, { keepAliveMs: 100, pingTimeoutMs: 300 });
    const stream = connection.request("/p.S/Slow", GRPC_HEADERS, Buffer.from("slow"));
    // The handler answers once the body is read; write nothing back until then (no frames from the server).
    const outcome = await collect(stream);
    expect(outcome.failure).toBeUndefined();
    expect(outcome.data.toString()).toBe("late but fine");
    expect(pings).toBeGreaterThanOrEqual(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Connection failures
// ---------------------------------------------------------------------------------------------

describe("Http2ClientConnection failures", () => {
  it("fails every stream as not sent when nothing listens on the port", async () => {
    const port = await closedPort();
    const connection = connect(port);
    let closes = 0;
    connection.onClose = () => closes++;
    const streams = [connection.request("/p.S/A", GRPC_HEADERS, Buffer.from("a")), connection.request("/p.S/B", GRPC_HEADERS, Buffer.from("b"))];
    const outcomes = await Promise.all(streams.map((s) => collect(s)));
    for (const outcome of outcomes) {
      expect(outcome.events).toEqual(["close"]);
      const failure = expectUnavailable(outcome.failure);
      expect(wasNotSent(failure)).toBe(true);
    }
    expect(connection.acceptsStreams).toBe(false);
    requestThrows(connection);
    await delay(20);
    expect(closes).toBe(1);
  });

  it("times out a TLS connection whose handshake is never answered, as not sent", async () => {
    const silent = net.createServer((socket) => {
      socket.on("error", () => {});
      cleanups.push(() => void socket.destroy());
    });
    const port = await listen(silent);
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const connection = connect(port, { tls: { serverName: "localhost" }, connectTimeoutMs: 200 });
    const outcome = await collect(connection.request("/p.S/A", GRPC_HEADERS, Buffer.from("a")), { ms: 3000 });
    const failure = expectUnavailable(outcome.failure);
    expect(wasNotSent(failure)).toBe(true);
    expect(failure.rawMessage).toMatch(/timed out/);
    expect(connection.acceptsStreams).toBe(false);
  });

  it("fails a call whose connection drops after the response headers, NOT as not sent", async () => {
    const { connection, stream, outcome, peer } = await callToRawServer("/p.S/Drop");
    peer.send(headersFrame(1, STATUS_200), dataFrame(1, Buffer.from("part")));
    await new Promise((resolve) => stream.once("response", resolve));
    peer.socket.destroy();
    const result = await outcome;
    expect(result.headers![":status"]).toBe(200);
    expect(result.data.toString()).toBe("part");
    expect(result.events).not.toContain("end");
    const failure = expectUnavailable(result.failure);
    expect(wasNotSent(failure)).toBe(false);
    expect(connection.acceptsStreams).toBe(false);
  });

  it("fails a call when node's server socket is destroyed mid-response, NOT as not sent", async () => {
    const sockets: net.Socket[] = [];
    const server = await startH2((stream) => {
      void readAll(stream).then(() => {
        stream.respond({ ":status": 200 });
        stream.write(Buffer.from("some"), () => setTimeout(() => sockets[0].destroy(), 20));
      });
    });
    server.server.on("connection", (socket: net.Socket) => sockets.push(socket));
    const connection = connect(server.port);
    const result = await collect(connection.request("/p.S/Drop", GRPC_HEADERS, Buffer.from("x")));
    expect(result.headers![":status"]).toBe(200);
    const failure = expectUnavailable(result.failure);
    expect(wasNotSent(failure)).toBe(false);
  });

  it("destroy(): open streams fail with UNAVAILABLE and onClose runs once", async () => {
    const server = await startH2((stream) => {
      void readAll(stream).then(() => stream.respond({ ":status": 200 }));
    });
    const connection = connect(server.port);
    let closes = 0;
    connection.onClose = () => closes++;
    const streams = [connection.request("/p.S/A", GRPC_HEADERS, Buffer.from("a")), connection.request("/p.S/B", GRPC_HEADERS, Buffer.from("b"))];
    const outcomes = streams.map((s) => collect(s));
    await Promise.all(streams.map((s) => new Promise((resolve) => s.once("response", resolve))));
    connection.destroy("shutting down for the test");
    for (const outcome of await Promise.all(outcomes)) {
      const failure = expectUnavailable(outcome.failure);
      expect(failure.rawMessage).toContain("shutting down for the test");
      expect(wasNotSent(failure)).toBe(false);
    }
    expect(connection.acceptsStreams).toBe(false);
    expect(connection.activeStreams).toBe(0);
    requestThrows(connection);
    connection.destroy("again");
    expect(closes).toBe(1);
  });

  it("close(): open streams finish normally, then the socket closes and onClose runs once", async () => {
    const release: Array<() => void> = [];
    let sessionClosed = false;
    const server = await startH2((stream) => {
      void readAll(stream).then((body) => release.push(() => respond(stream, body)));
    });
    server.server.on("session", (session: http2.ServerHttp2Session) => session.on("close", () => (sessionClosed = true)));
    const connection = connect(server.port);
    let closes = 0;
    connection.onClose = () => closes++;
    const streams = [connection.request("/p.S/A", GRPC_HEADERS, Buffer.from("a")), connection.request("/p.S/B", GRPC_HEADERS, Buffer.from("b"))];
    const outcomes = Promise.all(streams.map((s) => collect(s)));
    await until(() => release.length === 2, "both calls to reach the server");
    connection.close();
    expect(connection.acceptsStreams).toBe(false);
    requestThrows(connection);
    expect(closes).toBe(0);
    expect(connection.activeStreams).toBe(2);
    for (const go of release) go();
    for (const outcome of await outcomes) {
      expect(outcome.failure).toBeUndefined();
      expect(outcome.events).toEqual(["response", "data", "trailers", "end", "close"]);
    }
    await until(() => closes > 0, "onClose");
    await until(() => sessionClosed, "the server's session to close");
    expect(closes).toBe(1);
  });

  it("close() with no open streams closes at once; an idle connection closes itself after idleTimeoutMs", async () => {
    const server = await startH2(echoHandler);
    const first = connect(server.port);
    let firstCloses = 0;
    first.onClose = () => firstCloses++;
    first.close();
    expect(firstCloses).toBe(1);
    expect(first.acceptsStreams).toBe(false);

    const second = connect(server.port, { keepAliveMs: 50, idleTimeoutMs: 150 });
    let secondCloses = 0;
    second.onClose = () => secondCloses++;
    const outcome = await collect(second.request("/p.S/E", GRPC_HEADERS, Buffer.from("x")));
    expect(outcome.failure).toBeUndefined();
    expect(second.acceptsStreams).toBe(true);
    await until(() => secondCloses > 0, "the idle connection to close");
    expect(second.acceptsStreams).toBe(false);
    requestThrows(second);
  });
});

// ---------------------------------------------------------------------------------------------
// Raw servers: what a well-behaved server never sends
// ---------------------------------------------------------------------------------------------

describe("Http2ClientConnection against a raw server", () => {
  it("sends the preface, its SETTINGS and a connection WINDOW_UPDATE, and ACKs the server's SETTINGS", async () => {
    const raw = await startRaw();
    connect(raw.port);
    const peer = await raw.peer();
    const settings = await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0, "client SETTINGS");
    expect(peer.prefaceOk).toBe(true);
    expect(peer.frames[0].type).toBe(FrameType.SETTINGS);
    const values = new Map<number, number>();
    for (let o = 0; o < settings.payload.length; o += 6) values.set(settings.payload.readUInt16BE(o), settings.payload.readUInt32BE(o + 2));
    expect(values.get(Setting.ENABLE_PUSH)).toBe(0);
    expect(values.get(Setting.INITIAL_WINDOW_SIZE)).toBe(64 * 1024);
    await peer.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 0, "connection WINDOW_UPDATE");
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0 && f.payload.length === 0, "SETTINGS ACK");
  });

  it("on GOAWAY(last stream 1) with streams 1, 3, 5 open and one waiting: 3, 5 and the waiting one fail as not sent, 1 completes", async () => {
    const raw = await startRaw((peer) => peer.sendSettings([[Setting.MAX_CONCURRENT_STREAMS, 3]]));
    const connection = connect(raw.port);
    let closes = 0;
    connection.onClose = () => closes++;
    const peer = await raw.peer();
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, "SETTINGS ACK");
    const streams = [0, 1, 2, 3].map((i) => connection.request("/p.S/G", GRPC_HEADERS, Buffer.from(`body-${i}`)));
    expect(streams.map((s) => s.id)).toEqual([1, 3, 5, 0]);
    const outcomes = streams.map((s) => collect(s));
    await peer.waitFor(isHeadersOn(5), "stream 5");
    peer.send(encodeGoaway(1, Http2ErrorCode.NO_ERROR));
    const failed = await Promise.all(outcomes.slice(1));
    for (const outcome of failed) {
      expect(outcome.events).toEqual(["close"]);
      expect(wasNotSent(expectUnavailable(outcome.failure))).toBe(true);
    }
    expect(connection.acceptsStreams).toBe(false);
    requestThrows(connection);
    expect(closes).toBe(0);
    peer.send(rawResponse(1, Buffer.from("still answered")));
    const first = await outcomes[0];
    expect(first.failure).toBeUndefined();
    expect(first.headers![":status"]).toBe(200);
    expect(first.data.toString()).toBe("still answered");
    expect(first.trailers!["grpc-status"]).toBe("0");
    // With nothing left, the client leaves politely.
    await peer.waitFor((f) => f.type === FrameType.GOAWAY, "the client's GOAWAY");
    await until(() => closes === 1, "onClose");
    // The stream ids never reached by the server were not reused.
    expect(peer.frames.filter((f) => f.type === FrameType.HEADERS).map((f) => f.streamId)).toEqual([1, 3, 5]);
  });

  it("a stream still waiting for a slot (MAX_CONCURRENT_STREAMS) fails as not sent when the connection drops; the open one does not", async () => {
    const raw = await startRaw((peer) => peer.sendSettings([[Setting.MAX_CONCURRENT_STREAMS, 1]]));
    const connection = connect(raw.port);
    const peer = await raw.peer();
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, "SETTINGS ACK");
    const open = connection.request("/p.S/A", GRPC_HEADERS, Buffer.from("a"));
    const waiting = connection.request("/p.S/B", GRPC_HEADERS, Buffer.from("b"));
    const cancelled = connection.request("/p.S/C", GRPC_HEADERS, Buffer.from("c"));
    expect([open.id, waiting.id, cancelled.id]).toEqual([1, 0, 0]);
    expect(connection.activeStreams).toBe(3);
    // Cancelling a stream that never left sends nothing and frees its place in the queue.
    const cancelledOutcome = collect(cancelled);
    cancelled.close();
    expect((await cancelledOutcome).events).toEqual(["close"]);
    expect(cancelled.rstCode).toBe(Http2ErrorCode.CANCEL);
    expect(connection.activeStreams).toBe(2);
    const outcomes = Promise.all([collect(open), collect(waiting)]);
    await peer.waitFor(isHeadersOn(1), "stream 1");
    peer.socket.destroy();
    const [openOutcome, waitingOutcome] = await outcomes;
    expect(wasNotSent(expectUnavailable(openOutcome.failure))).toBe(false);
    expect(wasNotSent(expectUnavailable(waitingOutcome.failure))).toBe(true);
    expect(peer.frames.filter((f) => f.type === FrameType.HEADERS).map((f) => f.streamId)).toEqual([1]);
    expect(peer.frames.some((f) => f.type === FrameType.RST_STREAM)).toBe(false);
  });

  it("answers a PING with a PING ACK carrying the same 8 bytes", async () => {
    const raw = await startRaw();
    connect(raw.port);
    const peer = await raw.peer();
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, "SETTINGS ACK");
    const opaque = Buffer.from([1, 2, 3, 4, 250, 251, 252, 253]);
    peer.send(encodeFrame(FrameType.PING, 0, 0, opaque));
    const ack = await peer.waitFor((f) => f.type === FrameType.PING, "PING ACK");
    expect(ack.flags & Flag.ACK).toBe(Flag.ACK);
    expect(ack.streamId).toBe(0);
    expect(ack.payload.equals(opaque)).toBe(true);
  });

  it("fails open streams when keep-alive PINGs go unanswered (keepAliveMs 100, pingTimeoutMs 300)", async () => {
    const { connection, outcome, peer } = await callToRawServer("/p.S/Hang", { connection: { keepAliveMs: 100, pingTimeoutMs: 300 }, collect: { ms: 3000 } });
    const ping = await peer.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) === 0, "a keep-alive PING");
    expect(ping.payload.length).toBe(8);
    const result = await outcome;
    const failure = expectUnavailable(result.failure);
    expect(failure.rawMessage).toMatch(/PING/);
    expect(connection.acceptsStreams).toBe(false);
  });

  it("ignores PRIORITY and unknown frame types, and skips a 1xx informational response", async () => {
    const { outcome, peer } = await callToRawServer("/p.S/P");
    peer.send(
      encodeFrame(FrameType.PRIORITY, 0, 1, Buffer.from([0, 0, 0, 0, 16])),
      encodeFrame(0xfa, 0xff, 0, Buffer.from("unknown extension frame")),
      headersFrame(1, Buffer.of(0x08, 0x03, 0x31, 0x30, 0x33)), // ":status: 103" (literal, indexed name)
      rawResponse(1, Buffer.from("ok")),
    );
    const result = await outcome;
    expect(result.failure).toBeUndefined();
    expect(result.headers![":status"]).toBe(200);
    expect(result.data.toString()).toBe("ok");
  });

  it("holds data, trailers and end while paused and delivers them in order on resume(); a listener may pause again", async () => {
    const raw = await startRaw();
    const connection = connect(raw.port);
    const stream = connection.request("/p.S/Paused", GRPC_HEADERS, Buffer.from("x"));
    const events: string[] = [];
    stream.on("response", () => events.push("response"));
    stream.on("data", (chunk: Buffer) => {
      events.push(`data:${chunk.toString()}`);
      if (chunk.toString() === "one") stream.pause();
    });
    stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => events.push(`trailers:${String(trailers["grpc-status"])}`));
    stream.on("end", () => events.push("end"));
    stream.on("close", () => events.push("close"));
    const peer = await raw.peer();
    await peer.waitFor(isHeadersOn(1), "the request");
    peer.send(
      headersFrame(1, STATUS_200),
      dataFrame(1, Buffer.from("one")),
      dataFrame(1, Buffer.from("two")),
      dataFrame(1, Buffer.from("three")),
      headersFrame(1, literal("grpc-status", "0"), true),
    );
    // The whole response is in: the connection is done with the stream, the caller is not.
    await until(() => connection.activeStreams === 0, "the response to arrive");
    expect(events).toEqual(["response"]);
    expect(stream.closed).toBe(false);
    stream.resume();
    expect(events).toEqual(["response", "data:one"]);
    stream.resume();
    expect(events).toEqual(["response", "data:one", "data:two", "data:three", "trailers:0", "end", "close"]);
    expect(stream.failure).toBeUndefined();
  });

  it("returns the window taken by padding: 1200 DATA frames of 1 byte + 255 bytes of padding pass a 64 KiB stream window", async () => {
    const { connection, outcome, peer } = await callToRawServer("/p.S/Pad");
    const frames = [headersFrame(1, STATUS_200)];
    // The raw server ignores WINDOW_UPDATE: 1200 × 256 bytes overrun the window unless padding is given back.
    for (let i = 0; i < 1200; i++) {
      frames.push(encodeFrame(FrameType.DATA, Flag.PADDED, 1, Buffer.concat([Buffer.of(254), Buffer.from([97 + (i % 26)]), Buffer.alloc(254)])));
    }
    frames.push(headersFrame(1, literal("grpc-status", "0"), true));
    peer.send(...frames);
    const result = await outcome;
    expect(result.failure).toBeUndefined();
    expect(result.rstCode).toBeUndefined();
    expect(result.data.length).toBe(1200);
    expect(result.data.toString()).toBe(Array.from({ length: 1200 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(""));
    await peer.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 1, "a stream WINDOW_UPDATE");
  });

  it("applies an INITIAL_WINDOW_SIZE change to a stream already sending (up, then down)", async () => {
    let settingsNow: (() => void) | undefined;
    const raw = await startRaw((peer) => {
      // SETTINGS only once asked: the client starts with the default windows.
      settingsNow = () => peer.sendSettings();
    });
    const connection = connect(raw.port);
    const body = randomBytes(200_000);
    const outcome = collect(connection.request("/p.S/Window", GRPC_HEADERS, body));
    const peer = await raw.peer();
    const sentBytes = () => peer.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).reduce((n, f) => n + f.payload.length, 0);
    await until(() => sentBytes() === 65_535, "the default window's worth");
    settingsNow!();
    peer.send(encodeUint32Frame(FrameType.WINDOW_UPDATE, 0, 1_000_000));
    await delay(30);
    expect(sentBytes()).toBe(65_535); // the stream window is still used up
    peer.send(encodeSettings([[Setting.INITIAL_WINDOW_SIZE, 100_000]]));
    await until(() => sentBytes() === 100_000, "the raised window's worth");
    // Down to 50 000: the stream's window is now -50 000, so +60 000 lets 10 000 more through.
    peer.send(encodeSettings([[Setting.INITIAL_WINDOW_SIZE, 50_000]]), encodeUint32Frame(FrameType.WINDOW_UPDATE, 1, 60_000));
    await until(() => sentBytes() === 110_000, "10 000 more bytes");
    await delay(30);
    expect(sentBytes()).toBe(110_000);
    peer.send(encodeUint32Frame(FrameType.WINDOW_UPDATE, 1, 200_000));
    await until(() => sentBytes() === body.length, "the rest of the body");
    const data = Buffer.concat(peer.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).map((f) => f.payload));
    expect(data.equals(body)).toBe(true);
    peer.send(rawResponse(1, Buffer.from("ok")));
    expect((await outcome).data.toString()).toBe("ok");
  });

  it("accepts a HEADERS frame with PADDED and PRIORITY flags and a split CONTINUATION", async () => {
    const { outcome, peer } = await callToRawServer("/p.S/P");
    const block = Buffer.concat([STATUS_200, literal("x-first", "1"), literal("x-second", "two")]);
    const padLength = 7;
    const payload = Buffer.concat([Buffer.of(padLength), Buffer.from([0, 0, 0, 0, 200]), block.subarray(0, 4), Buffer.alloc(padLength)]);
    peer.send(
      encodeFrame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 1, payload),
      encodeFrame(FrameType.CONTINUATION, 0, 1, block.subarray(4, 10)),
      encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(10)),
      encodeFrame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.concat([Buffer.of(3), Buffer.from("body"), Buffer.alloc(3)])),
    );
    const result = await outcome;
    expect(result.failure).toBeUndefined();
    expect(result.headers).toMatchObject({ ":status": 200, "x-first": "1", "x-second": "two" });
    expect(result.data.toString()).toBe("body");
    expect(result.events).toEqual(["response", "data", "end", "close"]);
  });

  const protocolErrors: Array<[string, (peer: RawPeer) => void, number, RegExp]> = [
    [
      "a first frame that is not SETTINGS",
      (peer) => peer.send(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))),
      Http2ErrorCode.PROTOCOL_ERROR,
      /SETTINGS/,
    ],
    [
      "a DATA frame larger than 16384 bytes",
      (peer) => peer.send(headersFrame(1, STATUS_200), dataFrame(1, Buffer.alloc(DEFAULT_MAX_FRAME_SIZE + 1))),
      Http2ErrorCode.FRAME_SIZE_ERROR,
      /frame/,
    ],
    [
      "an indexed header field with index 0",
      (peer) => peer.send(headersFrame(1, Buffer.of(0x88, 0x80))),
      Http2ErrorCode.COMPRESSION_ERROR,
      /header block/,
    ],
    [
      "an indexed header field beyond the table",
      (peer) => peer.send(headersFrame(1, Buffer.of(0x88, 0xbe))), // 62: one past the static table, dynamic table empty
      Http2ErrorCode.COMPRESSION_ERROR,
      /header block/,
    ],
    [
      "a header block cut off inside a string literal",
      (peer) => peer.send(headersFrame(1, Buffer.concat([STATUS_200, literal("x-cut", "abcdefgh").subarray(0, 9)]))),
      Http2ErrorCode.COMPRESSION_ERROR,
      /header block/,
    ],
    [
      "a dynamic table size update above the announced 4096",
      (peer) => peer.send(headersFrame(1, Buffer.of(0x3f, 0xe3, 0x1f, 0x88))), // 31 + 0x63 + (0x1f << 7) = 4098
      Http2ErrorCode.COMPRESSION_ERROR,
      /header block/,
    ],
    [
      "a PUSH_PROMISE",
      (peer) => peer.send(encodeFrame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.of(0x82, 0x86, 0x84)]))),
      Http2ErrorCode.PROTOCOL_ERROR,
      /push/,
    ],
    [
      "a header block interrupted by another frame",
      (peer) => peer.send(encodeFrame(FrameType.HEADERS, 0, 1, STATUS_200), encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))),
      Http2ErrorCode.PROTOCOL_ERROR,
      /interrupted/,
    ],
    [
      "response headers beyond 64 KiB",
      (peer) => {
        const fields: Buffer[] = [STATUS_200];
        for (let i = 0; i < 5; i++) fields.push(literal(`x-huge-${i}`, "h".repeat(14_000)));
        const block = Buffer.concat(fields);
        peer.send(
          encodeFrame(FrameType.HEADERS, 0, 1, block.subarray(0, 16_000)),
          encodeFrame(FrameType.CONTINUATION, 0, 1, block.subarray(16_000, 32_000)),
          encodeFrame(FrameType.CONTINUATION, 0, 1, block.subarray(32_000, 48_000)),
          encodeFrame(FrameType.CONTINUATION, 0, 1, block.subarray(48_000, 64_000)),
          encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(64_000)),
        );
      },
      Http2ErrorCode.ENHANCE_YOUR_CALM,
      /64|header/,
    ],
    [
      "a SETTINGS frame of the wrong size",
      (peer) => peer.send(encodeFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5))),
      Http2ErrorCode.FRAME_SIZE_ERROR,
      /SETTINGS/,
    ],
    [
      "DATA on stream 0",
      (peer) => peer.send(dataFrame(0, Buffer.from("x"))),
      Http2ErrorCode.PROTOCOL_ERROR,
      /stream 0/,
    ],
  ];

  it.each(protocolErrors)("fails the connection on %s, with GOAWAY and the right code", async (what, misbehave, code, message) => {
    const firstFrameMatters = what.startsWith("a first frame");
    const raw = await startRaw((peer) => {
      if (!firstFrameMatters) peer.sendSettings();
    });
    const connection = connect(raw.port);
    let closes = 0;
    connection.onClose = () => closes++;
    const stream = connection.request("/p.S/Bad", GRPC_HEADERS, Buffer.from("x"));
    const other = connection.request("/p.S/Other", GRPC_HEADERS, Buffer.from("y"));
    const outcomes = Promise.all([collect(stream), collect(other)]);
    const peer = await raw.peer();
    await peer.waitFor(isHeadersOn(3), "the requests");
    if (!firstFrameMatters) await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, "SETTINGS ACK");
    misbehave(peer);
    for (const outcome of await outcomes) {
      const failure = expectUnavailable(outcome.failure);
      expect(failure.rawMessage).toMatch(message);
      expect(outcome.events).not.toContain("end");
    }
    expect(connection.acceptsStreams).toBe(false);
    expect(connection.activeStreams).toBe(0);
    requestThrows(connection);
    const goaway = await peer.waitFor((f) => f.type === FrameType.GOAWAY, "the client's GOAWAY");
    expect(goaway.payload.readUInt32BE(4)).toBe(code);
    expect(closes).toBe(1);
  });

  const streamErrors: Array<[string, (peer: RawPeer) => void, number]> = [
    ["DATA before the response headers", (peer) => peer.send(dataFrame(1, Buffer.from("early"))), Http2ErrorCode.PROTOCOL_ERROR],
    [
      "trailers without END_STREAM",
      (peer) => peer.send(headersFrame(1, STATUS_200), headersFrame(1, literal("grpc-status", "0"))),
      Http2ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "more DATA than the stream window allows",
      (peer) => {
        const frames = [headersFrame(1, STATUS_200)];
        // 256 KiB announced; send 272 KiB without any WINDOW_UPDATE from the (paused) client.
        for (let i = 0; i < 17; i++) frames.push(dataFrame(1, Buffer.alloc(16 * 1024, 0x62)));
        peer.send(...frames);
      },
      Http2ErrorCode.FLOW_CONTROL_ERROR,
    ],
  ];

  it.each(streamErrors)("resets only the stream on %s; the connection stays usable", async (_what, misbehave, code) => {
    const { connection, outcome, peer } = await callToRawServer("/p.S/Bad", { collect: { resume: false } });
    misbehave(peer);
    const result = await outcome;
    expect(result.rstCode).toBe(code);
    expectUnavailable(result.failure);
    const rst = await peer.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, "the client's RST_STREAM");
    expect(rst.payload.readUInt32BE(0)).toBe(code);
    expect(connection.acceptsStreams).toBe(true);
    const next = connection.request("/p.S/Next", GRPC_HEADERS, Buffer.from("y"));
    const nextOutcome = collect(next);
    await peer.waitFor(isHeadersOn(3), "the next request");
    peer.send(rawResponse(3, Buffer.from("fine")));
    const nextResult = await nextOutcome;
    expect(nextResult.failure).toBeUndefined();
    expect(nextResult.data.toString()).toBe("fine");
  });

  it("respects a smaller INITIAL_WINDOW_SIZE and a larger MAX_FRAME_SIZE from the server", async () => {
    const raw = await startRaw((peer) =>
      peer.sendSettings([
        [Setting.INITIAL_WINDOW_SIZE, 1000],
        [Setting.MAX_FRAME_SIZE, 32_768],
      ]),
    );
    const connection = connect(raw.port);
    const peer = await raw.peer();
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, "SETTINGS ACK");
    const body = randomBytes(50_000);
    const outcome = collect(connection.request("/p.S/W", GRPC_HEADERS, body));
    await peer.waitFor(isHeadersOn(1), "the request");
    await delay(50);
    const sent = () => peer.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1);
    expect(sent().reduce((n, f) => n + f.payload.length, 0)).toBe(1000);
    peer.send(encodeUint32Frame(FrameType.WINDOW_UPDATE, 1, 40_000));
    await until(() => sent().reduce((n, f) => n + f.payload.length, 0) === 41_000, "the next 40000 bytes");
    expect(Math.max(...sent().map((f) => f.payload.length))).toBe(32_768);
    peer.send(encodeUint32Frame(FrameType.WINDOW_UPDATE, 1, 100_000));
    await until(() => sent().some((f) => (f.flags & Flag.END_STREAM) !== 0), "the end of the body");
    expect(Buffer.concat(sent().map((f) => f.payload)).equals(body)).toBe(true);
    peer.send(rawResponse(1, Buffer.from("got it")));
    expect((await outcome).data.toString()).toBe("got it");
  });

  it("survives any frames a broken upstream sends: calls end, the process does not (property)", async () => {
    const raw = await startRaw();
    const frameArb = fc.record({
      type: fc.integer({ min: 0, max: 10 }),
      flags: fc.integer({ min: 0, max: 255 }),
      streamId: fc.constantFrom(0, 1, 3, 5, 2 ** 31 - 1),
      payload: fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes)),
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 12 }), async (frames) => {
        const connection = connect(raw.port);
        let closes = 0;
        connection.onClose = () => closes++;
        const stream = connection.request("/p.S/Fuzz", GRPC_HEADERS, Buffer.from("fuzz"));
        const outcome = collect(stream, { ms: 3000 });
        await until(() => raw.peers.length > run, "the raw connection");
        const peer = raw.peers[run++];
        peer.send(...frames.map((f) => encodeFrame(f.type, f.flags, f.streamId, f.payload)));
        await delay(5);
        connection.destroy("end of the case");
        const result = await outcome;
        // Whatever the frames did, the call ended with an outcome, and the connection closed once.
        expect(result.failure !== undefined || result.rstCode !== undefined || result.trailers !== undefined || result.headers !== undefined).toBe(true);
        expect(closes).toBe(1);
        expect(connection.acceptsStreams).toBe(false);
      }),
      { numRuns: 80 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

describe("Http2ClientConnection over TLS", () => {
  let dir: string;
  let key: Buffer;
  let cert: Buffer;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "http2-client-tls-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-days",
        "1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    key = readFileSync(join(dir, "key.pem"));
    cert = readFileSync(join(dir, "cert.pem"));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("completes a call against an HTTP/2-only TLS server (ALPN h2, :scheme https)", async () => {
    let scheme: string | string[] | undefined;
    const server = await startH2Secure(
      (stream, headers) => {
        scheme = headers[":scheme"];
        echoHandler(stream, headers, []);
      },
      { key, cert, allowHTTP1: false },
    );
    const connection = connect(server.port, { tls: { ca: cert, serverName: "localhost" } });
    const outcome = await collect(connection.request("/p.S/Tls", GRPC_HEADERS, Buffer.from("secret")));
    expect(outcome.failure).toBeUndefined();
    expect(outcome.headers![":status"]).toBe(200);
    expect(outcome.data.toString()).toBe("echo:secret");
    expect(outcome.trailers!["grpc-status"]).toBe("0");
    expect(scheme).toBe("https");
  });

  it("fails as not sent when the server's certificate is not trusted", async () => {
    const server = await startH2Secure(echoHandler, { key, cert, allowHTTP1: false });
    const connection = connect(server.port, { tls: { serverName: "localhost" } });
    const outcome = await collect(connection.request("/p.S/Tls", GRPC_HEADERS, Buffer.from("x")));
    expect(wasNotSent(expectUnavailable(outcome.failure))).toBe(true);
  });

  /** A plain TLS server (nothing behind it); its sockets are destroyed at cleanup. */
  async function startTlsServer(options: tls.TlsOptions): Promise<number> {
    const sockets = new Set<tls.TLSSocket>();
    const server = tls.createServer(options, (socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
    });
    server.on("tlsClientError", () => {});
    const port = await listen(server);
    closeAtCleanup(server, sockets);
    return port;
  }

  it("fails as not sent, naming ALPN, when the TLS server does not agree to h2", async () => {
    // A TLS server that negotiates no application protocol (clients offering only h2 get none).
    const port = await startTlsServer({ key, cert });
    const connection = connect(port, { tls: { ca: cert, serverName: "localhost" } });
    const outcome = await collect(connection.request("/p.S/Tls", GRPC_HEADERS, Buffer.from("x")));
    const failure = expectUnavailable(outcome.failure);
    expect(wasNotSent(failure)).toBe(true);
    expect(failure.rawMessage).toMatch(/ALPN|HTTP\/2/);
  });

  it("fails as not sent when the TLS server offers only http/1.1 in ALPN", async () => {
    const port = await startTlsServer({ key, cert, ALPNProtocols: ["http/1.1"] });
    const connection = connect(port, { tls: { ca: cert, serverName: "localhost" } });
    const outcome = await collect(connection.request("/p.S/Tls", GRPC_HEADERS, Buffer.from("x")));
    const failure = expectUnavailable(outcome.failure);
    expect(wasNotSent(failure)).toBe(true);
    // Node's TLS server refuses the handshake itself (alert 120, "no application protocol").
    expect(failure.rawMessage).toMatch(/ALPN|HTTP\/2|application protocol/);
  });
});

// ---------------------------------------------------------------------------------------------
// Units: FrameReader, padding, HPACK
// ---------------------------------------------------------------------------------------------

describe("FrameReader", () => {
  const sample: RawFrame[] = [
    { type: FrameType.SETTINGS, flags: 0, streamId: 0, payload: Buffer.from([0, 3, 0, 0, 0, 100]) },
    { type: FrameType.HEADERS, flags: Flag.END_HEADERS, streamId: 1, payload: Buffer.from("header block") },
    { type: FrameType.DATA, flags: 0, streamId: 1, payload: Buffer.alloc(0) },
    { type: FrameType.DATA, flags: Flag.END_STREAM, streamId: 2 ** 31 - 1, payload: randomBytes(300) },
    { type: 0xee, flags: 0xff, streamId: 7, payload: Buffer.from("ext") },
  ];

  function readAllFrames(chunks: Buffer[], max = DEFAULT_MAX_FRAME_SIZE): RawFrame[] {
    const out: RawFrame[] = [];
    const reader = new FrameReader(max, (type, flags, streamId, payload) => out.push({ type, flags, streamId, payload: Buffer.from(payload) }));
    for (const chunk of chunks) reader.push(chunk);
    return out;
  }

  const encodeAll = (frames: RawFrame[]) => Buffer.concat(frames.map((f) => encodeFrame(f.type, f.flags, f.streamId, f.payload)));

  it("delivers frames whole and in order when fed one byte at a time", () => {
    const bytes = encodeAll(sample);
    const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(readAllFrames(chunks)).toEqual(sample);
    expect(readAllFrames([bytes])).toEqual(sample);
  });

  it("ignores the reserved bit of the stream id", () => {
    const frame = encodeFrame(FrameType.DATA, 0, 5, Buffer.from("x"));
    frame[5] |= 0x80;
    expect(readAllFrames([frame])[0].streamId).toBe(5);
  });

  it("accepts a frame of exactly the maximum size and rejects a longer one with FRAME_SIZE_ERROR", () => {
    expect(readAllFrames([encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(100))], 100)[0].payload.length).toBe(100);
    const tooLong = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(101));
    let thrown: unknown;
    try {
      // Only the 9 header bytes are needed to know.
      readAllFrames([tooLong.subarray(0, 4), tooLong.subarray(4, FRAME_HEADER_BYTES)], 100);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Http2ConnectionError);
    expect((thrown as Http2ConnectionError).code).toBe(Http2ErrorCode.FRAME_SIZE_ERROR);
  });

  it("reassembles any frame sequence cut at any points (property)", () => {
    const frameArb = fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      flags: fc.integer({ min: 0, max: 255 }),
      streamId: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      payload: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
    });
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
        const bytes = encodeAll(frames);
        const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let start = 0;
        for (const point of [...points, bytes.length]) {
          chunks.push(bytes.subarray(start, point));
          start = point;
        }
        expect(readAllFrames(chunks, 1024)).toEqual(frames);
      }),
      { numRuns: 300 },
    );
  });
});

describe("unpad", () => {
  it("strips the pad length byte and the padding; rejects padding longer than the frame", () => {
    expect(unpad(0, Buffer.from("abc")).toString()).toBe("abc");
    expect(unpad(Flag.PADDED, Buffer.concat([Buffer.of(2), Buffer.from("abc"), Buffer.alloc(2)])).toString()).toBe("abc");
    expect(unpad(Flag.PADDED, Buffer.of(0)).length).toBe(0);
    for (const bad of [Buffer.alloc(0), Buffer.of(1), Buffer.of(5, 0, 0)]) {
      let thrown: unknown;
      try {
        unpad(Flag.PADDED, bad);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(Http2ConnectionError);
      expect((thrown as Http2ConnectionError).code).toBe(Http2ErrorCode.PROTOCOL_ERROR);
    }
  });
});

describe("HPACK header blocks", () => {
  it("writeInteger matches RFC 7541 C.1", () => {
    const out = Buffer.alloc(8);
    expect(out.subarray(0, writeInteger(out, 0, 10, 5, 0))).toEqual(Buffer.of(0x0a));
    expect(out.subarray(0, writeInteger(out, 0, 1337, 5, 0))).toEqual(Buffer.of(0x1f, 0x9a, 0x0a));
    expect(out.subarray(0, writeInteger(out, 0, 42, 8, 0))).toEqual(Buffer.of(0x2a));
    expect(out.subarray(0, writeInteger(out, 0, 31, 5, 0xe0))).toEqual(Buffer.of(0xff, 0x00));
    expect(out.subarray(0, writeInteger(out, 0, 2 ** 28 - 1, 7, 0))).toEqual(Buffer.of(0x7f, 0x80, 0xff, 0xff, 0x7f));
  });

  it("round-trips request blocks through the response decoder for names and values around the integer prefix boundaries", () => {
    const encoder = new RequestHeaderEncoder("upstream.svc:50051", "http");
    const decoder = new ResponseHeaderDecoder(1 << 24);
    const lengths = [1, 14, 15, 16, 126, 127, 128, 254, 255, 256, 300, 16_383, 16_384, 16_511, 70_000];
    for (const nameLength of [1, 126, 127, 128, 300]) {
      for (const valueLength of lengths) {
        const name = "n".repeat(nameLength - 1) + "x";
        const value = "v".repeat(valueLength);
        const block = encoder.encode("/pkg.Svc/M", { [name]: value, "x-arr": ["1", "2"], "x-empty": "" });
        const headers = decoder.decode(block);
        expect(headers[":method"]).toBe("POST");
        expect(headers[":scheme"]).toBe("http");
        expect(headers[":path"]).toBe("/pkg.Svc/M");
        expect(headers[":authority"]).toBe("upstream.svc:50051");
        expect(headers[name]).toBe(value);
        expect(headers["x-arr"]).toEqual(["1", "2"]);
        expect(headers["x-empty"]).toBe("");
      }
    }
    // Many distinct short values (the encoder's field cache fills and starts over) stay correct.
    for (let i = 0; i < 700; i++) {
      const headers = decoder.decode(encoder.encode("/pkg.Svc/M", { "x-id": `id-${i % 350}`, "x-const": "c", [`x-n${i % 7}`]: String(i) }));
      expect(headers["x-id"]).toBe(`id-${i % 350}`);
      expect(headers["x-const"]).toBe("c");
      expect(headers[`x-n${i % 7}`]).toBe(String(i));
    }
    // The same value under different names stays under each name.
    const same = decoder.decode(encoder.encode("/pkg.Svc/M", { "x-a": "same", "x-b": "same", "x-c": ["same", "other"] }));
    expect([same["x-a"], same["x-b"], same["x-c"]]).toEqual(["same", "same", ["same", "other"]]);
    // Paths longer than the 7-bit prefix, and the https scheme.
    const https = new RequestHeaderEncoder("a", "https").encode("/" + "p".repeat(200), { "x-latin1": "caf\u00e9" });
    const decoded = decoder.decode(https);
    expect(decoded[":scheme"]).toBe("https");
    expect(decoded[":path"]).toBe("/" + "p".repeat(200));
    expect(decoded["x-latin1"]).toBe("caf\u00e9");
  });

  it("decodes RFC 7541 C.4 (Huffman, dynamic table) in sequence on one decoder", () => {
    const decoder = new ResponseHeaderDecoder(64 * 1024);
    expect({ ...decoder.decode(Buffer.from("828684418cf1e3c2e5f23a6ba0ab90f4ff", "hex")) }).toEqual({
      ":method": "GET",
      ":scheme": "http",
      ":path": "/",
      ":authority": "www.example.com",
    });
    expect({ ...decoder.decode(Buffer.from("828684be5886a8eb10649cbf", "hex")) }).toEqual({
      ":method": "GET",
      ":scheme": "http",
      ":path": "/",
      ":authority": "www.example.com",
      "cache-control": "no-cache",
    });
    expect({ ...decoder.decode(Buffer.from("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf", "hex")) }).toEqual({
      ":method": "GET",
      ":scheme": "https",
      ":path": "/index.html",
      ":authority": "www.example.com",
      "custom-key": "custom-value",
    });
  });

  it("keeps the first of a repeated pseudo-header and makes other repeated names arrays", () => {
    const decoder = new ResponseHeaderDecoder(64 * 1024);
    const headers = decoder.decode(Buffer.concat([Buffer.of(0x88, 0x8d), literal("x-r", "1"), literal("x-r", "2"), literal("x-r", "3")]));
    expect(headers[":status"]).toBe("200");
    expect(headers["x-r"]).toEqual(["1", "2", "3"]);
  });

  it("applies dynamic table size updates: after an update to 0, earlier entries are gone", () => {
    const decoder = new ResponseHeaderDecoder(64 * 1024);
    // "literal with incremental indexing, new name" x-k: v → dynamic index 62.
    const indexed = Buffer.concat([Buffer.of(0x40, 3), Buffer.from("x-k"), Buffer.of(1), Buffer.from("v")]);
    expect(decoder.decode(indexed)["x-k"]).toBe("v");
    expect(decoder.decode(Buffer.of(0xbe))["x-k"]).toBe("v");
    expect(() => decoder.decode(Buffer.of(0x20, 0xbe))).toThrow(Http2ConnectionError);
  });

  it("refuses a block above the list limit with PROTOCOL_ERROR but keeps the dynamic table in step", () => {
    const decoder = new ResponseHeaderDecoder(100);
    // x-a: a, added to the dynamic table (index 62), plus a big literal that breaks the limit.
    const refused = Buffer.concat([Buffer.of(0x40, 3), Buffer.from("x-a"), Buffer.of(1), Buffer.from("a"), literal("x-big", "b".repeat(80))]);
    let thrown: unknown;
    try {
      decoder.decode(refused);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Http2ConnectionError);
    expect((thrown as Http2ConnectionError).code).toBe(Http2ErrorCode.PROTOCOL_ERROR);
    // The refused block's entry was still added: index 62 refers to it.
    expect({ ...decoder.decode(Buffer.of(0x88, 0xbe)) }).toEqual({ ":status": "200", "x-a": "a" });
  });
});
