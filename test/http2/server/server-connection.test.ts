import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  CONNECTION_PREFACE,
  encodeFrame,
  encodeSettings,
  encodeUint32Frame,
  Flag,
  FrameReader,
  FrameType,
  Http2ErrorCode,
  MAX_ALLOWED_FRAME_SIZE,
  Setting,
} from "../../../src/http2/frames.js";
import { HpackBlockDecoder, literalField } from "../../../src/http2/hpack.js";
import { Http2ServerConnection, type Http2ServerLimits } from "../../../src/http2/server/server-connection.js";
import type { RequestHead } from "../../../src/http2/server/request-headers.js";
import type { Http2ServerStream } from "../../../src/http2/server/server-stream.js";
import { curl } from "../../support/curl.js";

/*
 * The gateway's own HTTP/2 server connection, served on a real loopback socket and driven by real
 * clients (Node's http2 client, curl, @grpc/grpc-js) and by raw frames for what no client sends.
 */

interface TestServer {
  port: number;
  /** Streams handed to the handler, in order. */
  streams: Http2ServerStream[];
  heads: RequestHead[];
  connections: Http2ServerConnection[];
  problems: string[];
  close(): Promise<void>;
}

const LIMITS: Http2ServerLimits = { maxConcurrentStreams: 100, maxHeaderListBytes: 16 * 1024, idleTimeoutMs: 0 };

/** Routes by path: /echo answers the body back with a trailer, /big sends `?bytes=` bytes, /hang never answers. */
function route(stream: Http2ServerStream, head: RequestHead): void {
  const path = head.headers[":path"]!;
  if (path === "/hang") return;
  if (path === "/trailers-at-once") {
    // Trailers sent right after a body the client's window holds back: they must follow all of it.
    stream.respond({ ":status": 200 });
    stream.write(Buffer.alloc(5000, 1));
    stream.sendTrailers({ "x-trailer": "after the body" });
    return;
  }
  if (path === "/throwing-listener") {
    stream.respond({ ":status": 200 }, { waitForTrailers: true });
    stream.on("wantTrailers", () => {
      throw new Error("a handler's bug");
    });
    stream.end("body");
    return;
  }
  if (path === "/upper-case-names") {
    // Node lower-cases names before sending them; a handler (or an upstream's trailers) may not.
    stream.respond({ ":status": 200, "X-Upper": "v" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "Grpc-Status": "0" }));
    stream.end("body");
    return;
  }
  if (path === "/throwing-data-listener") {
    stream.on("data", () => {
      throw new Error("a handler's bug while reading");
    });
    return;
  }
  if (path.startsWith("/big")) {
    const bytes = Number(new URL(path, "http://x").searchParams.get("bytes"));
    stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const size = Math.min(chunk.length, bytes - sent);
        sent += size;
        if (!stream.write(chunk.subarray(0, size))) {
          stream.once("drain", pump);
          return;
        }
      }
      stream.end();
    };
    pump();
    return;
  }
  const parts: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => parts.push(chunk));
  stream.on("end", () => {
    const body = Buffer.concat(parts);
    const grpcCall = head.headers["content-type"] === "application/grpc";
    stream.respond(
      { ":status": 200, "content-type": grpcCall ? "application/grpc" : "text/plain", "x-request-bytes": body.length },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => stream.sendTrailers(grpcCall ? { "grpc-status": "0" } : { "x-trailer": "done" }));
    stream.end(body);
  });
}

async function startServer(limits: Http2ServerLimits = LIMITS, handler = route): Promise<TestServer> {
  const streams: Http2ServerStream[] = [];
  const heads: RequestHead[] = [];
  const connections: Http2ServerConnection[] = [];
  const problems: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const connection = new Http2ServerConnection(socket, {
      limits,
      onStream: (stream, head) => {
        streams.push(stream);
        heads.push(head);
        handler(stream, head);
      },
      onProblem: (message) => problems.push(message),
    });
    connections.push(connection);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    streams,
    heads,
    connections,
    problems,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    const parts: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => parts.push(chunk));
    stream.on("end", () => resolve({ headers: responseHeaders, trailers, body: Buffer.concat(parts) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

describe("Http2ServerConnection with real clients", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("answers Node's http2 client: headers, body and trailers, and a date as Node adds it", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const answer = await request(session, { ":method": "POST", ":path": "/echo", "x-custom": "a" }, Buffer.from("hello"));
      expect(answer.headers[":status"]).toBe(200);
      expect(answer.headers["content-type"]).toBe("text/plain");
      expect(answer.headers["x-request-bytes"]).toBe("5");
      expect(new Date(answer.headers.date as string).getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(answer.body.toString()).toBe("hello");
      expect(answer.trailers["x-trailer"]).toBe("done");
      const head = server.heads.at(-1)!;
      expect(head.headers[":method"]).toBe("POST");
      expect(head.headers["x-custom"]).toBe("a");
      expect(head.rawHeaders).toContain("x-custom");
    } finally {
      session.close();
    }
  });

  it("serves 300 concurrent streams on one connection, each its own body", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const answers = await Promise.all(
        Array.from({ length: 300 }, (_, i) => request(session, { ":method": "POST", ":path": "/echo" }, Buffer.from(`call ${i}`))),
      );
      answers.forEach((answer, i) => expect(answer.body.toString()).toBe(`call ${i}`));
    } finally {
      session.close();
    }
  });

  it("reads a 3 MiB upload through flow control (windows given back as the handler reads)", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const body = Buffer.alloc(3 * 1024 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = i % 251;
      const answer = await request(session, { ":method": "POST", ":path": "/echo" }, body);
      expect(answer.headers["x-request-bytes"]).toBe(String(body.length));
      expect(answer.body.equals(body)).toBe(true);
    } finally {
      session.close();
    }
  });

  it("sends a 5 MiB response to a client with a 1 KiB stream window, within the client's windows", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`, { settings: { initialWindowSize: 1024 } });
    try {
      const answer = await request(session, { ":path": "/big?bytes=5242880" });
      expect(answer.body.length).toBe(5 * 1024 * 1024);
      expect(answer.body.every((byte) => byte === 7)).toBe(true);
    } finally {
      session.close();
    }
  });

  it("sends trailers given while flow control holds the body back after the whole body", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`, { settings: { initialWindowSize: 1024 } });
    try {
      const answer = await request(session, { ":path": "/trailers-at-once" });
      expect(answer.body.length).toBe(5000);
      expect(answer.trailers["x-trailer"]).toBe("after the body");
    } finally {
      session.close();
    }
  });

  it("resets a stream whose listener throws, and keeps the connection and the process", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const stream = session.request({ ":path": "/throwing-listener" });
      stream.on("error", () => {});
      stream.resume();
      await new Promise<void>((resolve) => stream.on("close", resolve));
      expect(stream.rstCode).toBe(Http2ErrorCode.INTERNAL_ERROR);
      expect(server.problems.some((p) => p.includes("failed in a listener"))).toBe(true);
      const answer = await request(session, { ":method": "POST", ":path": "/echo" }, Buffer.from("still here"));
      expect(answer.body.toString()).toBe("still here");
    } finally {
      session.close();
    }
  });

  it("resets only the stream whose data listener throws while the connection reads its frames", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/throwing-data-listener" });
      stream.on("error", () => {});
      stream.end(Buffer.from("some body"));
      stream.resume();
      await new Promise<void>((resolve) => stream.on("close", resolve));
      expect(stream.rstCode).toBe(Http2ErrorCode.INTERNAL_ERROR);
      const answer = await request(session, { ":method": "POST", ":path": "/echo" }, Buffer.from("still here"));
      expect(answer.body.toString()).toBe("still here");
    } finally {
      session.close();
    }
  });

  it("sends upper-case header and trailer names lower-cased, as Node's respond() does", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const answer = await request(session, { ":path": "/upper-case-names" });
      expect(answer.headers["x-upper"]).toBe("v");
      expect(answer.trailers["grpc-status"]).toBe("0");
      expect(answer.body.toString()).toBe("body");
    } finally {
      session.close();
    }
  });

  it("tells the handler when the client cancels: aborted, then close with the client's code", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const count = server.streams.length;
      const stream = session.request({ ":path": "/hang" });
      await waitFor(() => server.streams.length > count);
      const served = server.streams.at(-1)!;
      const events: string[] = [];
      served.on("aborted", () => events.push("aborted"));
      const closed = new Promise<void>((resolve) => served.on("close", resolve));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await closed;
      expect(events).toEqual(["aborted"]);
      expect(served.rstCode).toBe(Http2ErrorCode.CANCEL);
      expect(served.closed).toBe(true);
    } finally {
      session.close();
    }
  });

  it("answers curl over h2c with prior knowledge", async () => {
    const answer = await curl(`http://127.0.0.1:${server.port}/echo`, { http: "2", body: "from curl" });
    expect(answer.httpVersion).toBe("2");
    expect(answer.status).toBe(200);
    expect(answer.text).toBe("from curl");
    expect(answer.trailers["x-trailer"]).toBe("done");
  });

  it("answers @grpc/grpc-js unary calls", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          "/test.Echo/Unary",
          (value: Buffer) => value,
          (bytes: Buffer) => bytes,
          Buffer.from("ping"),
          (error, value) => (error ? reject(error) : resolve(value!)),
        ),
      );
      expect(reply.toString()).toBe("ping");
    } finally {
      client.close();
    }
  });

  it("closes gracefully: GOAWAY, the open stream finishes, then the socket closes", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    const goaway = new Promise<number>((resolve) => session.on("goaway", (code) => resolve(code)));
    const count = server.streams.length;
    const stream = session.request({ ":method": "POST", ":path": "/echo" });
    stream.write("first half ");
    await waitFor(() => server.streams.length > count);
    server.connections.at(-1)!.close();
    expect(await goaway).toBe(Http2ErrorCode.NO_ERROR);
    const parts: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => parts.push(chunk));
    const ended = new Promise<void>((resolve) => stream.on("end", resolve));
    stream.end("second half");
    await ended;
    expect(Buffer.concat(parts).toString()).toBe("first half second half");
    await new Promise<void>((resolve) => session.on("close", resolve));
  });
});

describe("Http2ServerConnection against raw frames", () => {
  let server: TestServer;
  afterEach(() => server?.close());

  it("refuses a wrong connection preface with GOAWAY(PROTOCOL_ERROR)", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false);
    expect((await client.goaway()).code).toBe(Http2ErrorCode.PROTOCOL_ERROR);
    await client.closed();
  });

  it("requires SETTINGS as the client's first frame", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port, Buffer.concat([CONNECTION_PREFACE, encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))]), false);
    expect((await client.goaway()).code).toBe(Http2ErrorCode.PROTOCOL_ERROR);
  });

  it("resets malformed requests with PROTOCOL_ERROR and keeps serving the connection", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    const malformed: [string, string][][] = [
      [[":method", "GET"], [":scheme", "http"]], // no :path
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], ["X-Upper", "1"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], ["connection", "keep-alive"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], ["te", "gzip"]],
      [[":method", "GET"], ["x-a", "1"], [":scheme", "http"], [":path", "/echo"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], [":path", "/echo"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], ["x-space", " leading"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], [":status", "200"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo x"]],
      [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], [":authority", "a\r\nb"]],
    ];
    let id = 1;
    for (const fields of malformed) {
      client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, headerBlock(fields)));
      expect(await client.reset(id)).toBe(Http2ErrorCode.PROTOCOL_ERROR);
      id += 2;
    }
    expect(server.streams).toHaveLength(0);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, headerBlock(GET_ECHO)));
    expect((await client.response(id)).status).toBe("200");
  });

  it("resets a header list over the limit with ENHANCE_YOUR_CALM, keeping HPACK in step", async () => {
    server = await startServer({ ...LIMITS, maxHeaderListBytes: 1024 });
    const client = await RawClient.connect(server.port);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headerBlock([...GET_ECHO, ["x-big", "a".repeat(2000)]])));
    expect(await client.reset(1)).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, headerBlock(GET_ECHO)));
    expect((await client.response(3)).status).toBe("200");
  });

  it("refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS with REFUSED_STREAM", async () => {
    server = await startServer({ ...LIMITS, maxConcurrentStreams: 2 });
    const client = await RawClient.connect(server.port);
    for (const id of [1, 3, 5]) client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, headerBlock(HANG)));
    expect(await client.reset(5)).toBe(Http2ErrorCode.REFUSED_STREAM);
    expect(server.streams.map((s) => s.id)).toEqual([1, 3]);
  });

  it("resets a stream whose DATA overruns its window (FLOW_CONTROL_ERROR)", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock(HANG_POST)));
    // Nobody reads /hang's body, so no window comes back: 65,535 bytes fit, one more does not.
    for (let sent = 0; sent < 65_535; sent += 16_384) {
      client.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(Math.min(16_384, 65_535 - sent))));
    }
    client.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(1)));
    expect(await client.reset(1)).toBe(Http2ErrorCode.FLOW_CONTROL_ERROR);
  });

  it("resets a body longer or shorter than its content-length (PROTOCOL_ERROR)", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock([...POST_ECHO, ["content-length", "3"]])));
    client.send(encodeFrame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from("four")));
    expect(await client.reset(1)).toBe(Http2ErrorCode.PROTOCOL_ERROR);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 3, headerBlock([...POST_ECHO, ["content-length", "3"]])));
    client.send(encodeFrame(FrameType.DATA, Flag.END_STREAM, 3, Buffer.from("tw")));
    expect(await client.reset(3)).toBe(Http2ErrorCode.PROTOCOL_ERROR);
  });

  it("resets DATA after the request's END_STREAM with STREAM_CLOSED", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    client.send(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headerBlock(HANG)));
    client.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.from("late")));
    expect(await client.reset(1)).toBe(Http2ErrorCode.STREAM_CLOSED);
  });

  it.each([
    ["HEADERS on an even stream id", () => encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 2, headerBlock(GET_ECHO)), Http2ErrorCode.PROTOCOL_ERROR],
    ["DATA on stream 0", () => encodeFrame(FrameType.DATA, 0, 0, Buffer.from("x")), Http2ErrorCode.PROTOCOL_ERROR],
    ["DATA on an idle stream", () => encodeFrame(FrameType.DATA, 0, 9, Buffer.from("x")), Http2ErrorCode.PROTOCOL_ERROR],
    ["a frame over 16,384 bytes", () => encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(16_385)), Http2ErrorCode.FRAME_SIZE_ERROR],
    ["a PING of 7 bytes", () => encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(7)), Http2ErrorCode.FRAME_SIZE_ERROR],
    ["a connection window above 2^31-1", () => encodeUint32Frame(FrameType.WINDOW_UPDATE, 0, 2 ** 31 - 1), Http2ErrorCode.FLOW_CONTROL_ERROR],
    ["SETTINGS_MAX_FRAME_SIZE out of range", () => encodeSettings([[Setting.MAX_FRAME_SIZE, MAX_ALLOWED_FRAME_SIZE + 1]]), Http2ErrorCode.PROTOCOL_ERROR],
    ["a header block interrupted by a PING", () => Buffer.concat([encodeFrame(FrameType.HEADERS, 0, 1, headerBlock(GET_ECHO)), encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))]), Http2ErrorCode.PROTOCOL_ERROR],
    ["a CONTINUATION without HEADERS", () => encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, headerBlock(GET_ECHO)), Http2ErrorCode.PROTOCOL_ERROR],
    ["an HPACK index out of range", () => encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.of(0xff, 0x7f)), Http2ErrorCode.COMPRESSION_ERROR],
    ["a table size update above 4,096", () => encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.of(0x3f, 0xe2, 0x1f)), Http2ErrorCode.COMPRESSION_ERROR],
    ["a PUSH_PROMISE from the client", () => encodeFrame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.alloc(4)), Http2ErrorCode.PROTOCOL_ERROR],
  ])("ends the connection on %s (GOAWAY with the right code)", async (_name, frame, code) => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    client.send(frame());
    expect((await client.goaway()).code).toBe(code);
    await client.closed();
  });

  it("ends a connection that sends endless empty CONTINUATION frames (ENHANCE_YOUR_CALM)", async () => {
    server = await startServer({ ...LIMITS, maxHeaderListBytes: 1024 });
    const client = await RawClient.connect(server.port);
    const empty = encodeFrame(FrameType.CONTINUATION, 0, 1);
    client.send(Buffer.concat([encodeFrame(FrameType.HEADERS, 0, 1, headerBlock(GET_ECHO)), ...Array.from({ length: 5000 }, () => empty)]));
    expect((await client.goaway()).code).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM);
  });

  it("answers PING and SETTINGS with ACKs, and accepts CONTINUATION and padding", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    client.send(encodeFrame(FrameType.PING, 0, 0, Buffer.from("12345678")));
    expect((await client.frame((f) => f.type === FrameType.PING)).payload.toString()).toBe("12345678");
    const block = headerBlock(POST_ECHO);
    const padded = Buffer.concat([Buffer.of(3), block.subarray(0, 4), Buffer.alloc(3)]);
    client.send(encodeFrame(FrameType.HEADERS, Flag.PADDED, 1, padded));
    client.send(encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(4)));
    client.send(encodeFrame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.concat([Buffer.of(2), Buffer.from("body"), Buffer.alloc(2)])));
    const answer = await client.response(1);
    expect(answer.status).toBe("200");
    expect(answer.body.toString()).toBe("body");
  });

  it("closes a connection that resets streams faster than nghttp2 allows (rapid reset)", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    const frames: Buffer[] = [];
    for (let i = 0; i < 1100; i++) {
      const id = 1 + 2 * i;
      frames.push(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, headerBlock(HANG)));
      frames.push(encodeUint32Frame(FrameType.RST_STREAM, id, Http2ErrorCode.CANCEL));
    }
    client.send(Buffer.concat(frames));
    expect((await client.goaway()).code).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.streams.length).toBeLessThan(1100);
  });

  it("closes a connection that floods PINGs without reading the answers", async () => {
    server = await startServer();
    const client = await RawClient.connect(server.port);
    client.socket.pause();
    const ping = encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8));
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
    // Far more ACKs than the kernel's socket buffers hold, so they pile up in the server.
    for (let i = 0; i < 60 && !client.socket.destroyed; i++) {
      if (!client.socket.write(batch)) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(() => server.problems.some((p) => p.includes("does not read")), 10_000);
    client.socket.resume();
    expect((await client.goaway()).code).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM);
  });
});

const GET_ECHO: [string, string][] = [[":method", "GET"], [":scheme", "http"], [":path", "/echo"], [":authority", "x"]];
const POST_ECHO: [string, string][] = [[":method", "POST"], [":scheme", "http"], [":path", "/echo"], [":authority", "x"]];
const HANG: [string, string][] = [[":method", "GET"], [":scheme", "http"], [":path", "/hang"], [":authority", "x"]];
const HANG_POST: [string, string][] = [[":method", "POST"], [":scheme", "http"], [":path", "/hang"], [":authority", "x"]];

/** A header block of literal fields, as any encoder may send them (names as given, unchecked). */
function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.map(([name, value]) => literalField(0, name, value)));
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A client made of raw frames: sends what it is told, records every frame the server sends. */
class RawClient {
  readonly frames: Frame[] = [];
  private readonly decoder = new HpackBlockDecoder();
  private readonly waiters = new Set<() => void>();
  private ended = false;

  private constructor(readonly socket: net.Socket) {
    const reader = new FrameReader(2 ** 24 - 1, (type, flags, streamId, payload) => {
      this.frames.push({ type, flags, streamId, payload: Buffer.from(payload) });
      this.wake();
    });
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  /** Connect and send `opening` (by default the preface and an empty SETTINGS, then an ACK of the server's). */
  static async connect(port: number, opening?: Buffer, ackSettings = true): Promise<RawClient> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    const client = new RawClient(socket);
    socket.write(opening ?? Buffer.concat([CONNECTION_PREFACE, encodeSettings([])]));
    if (ackSettings && opening === undefined) {
      await client.frame((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
      socket.write(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
    }
    return client;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first frame (received so far or later) that matches. */
  async frame(match: (frame: Frame) => boolean, timeoutMs = 5_000): Promise<Frame> {
    let found: Frame | undefined;
    await this.until(() => (found = this.frames.find(match)) !== undefined, timeoutMs);
    return found!;
  }

  async reset(streamId: number): Promise<number> {
    return (await this.frame((f) => f.type === FrameType.RST_STREAM && f.streamId === streamId)).payload.readUInt32BE(0);
  }

  async goaway(): Promise<{ lastStreamId: number; code: number }> {
    const frame = await this.frame((f) => f.type === FrameType.GOAWAY);
    return { lastStreamId: frame.payload.readUInt32BE(0), code: frame.payload.readUInt32BE(4) };
  }

  /** The response on `streamId` once its END_STREAM arrived: status and body. */
  async response(streamId: number): Promise<{ status: string; body: Buffer }> {
    await this.frame((f) => f.streamId === streamId && (f.flags & Flag.END_STREAM) !== 0 && (f.type === FrameType.DATA || f.type === FrameType.HEADERS));
    let status = "";
    const body: Buffer[] = [];
    for (const frame of this.frames) {
      if (frame.type === FrameType.HEADERS) {
        // Every block is decoded in order, as HPACK requires.
        this.decoder.decode(frame.payload, (name, value) => {
          if (frame.streamId === streamId && name === ":status") status = value;
        });
      } else if (frame.type === FrameType.DATA && frame.streamId === streamId) {
        body.push(frame.payload);
      }
    }
    return { status, body: Buffer.concat(body) };
  }

  closed(): Promise<void> {
    return this.until(() => this.ended, 5_000);
  }

  private until(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out; frames seen: ${this.frames.map((f) => `${f.type}/${f.streamId}`).join(" ")}`));
      }, timeoutMs);
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

