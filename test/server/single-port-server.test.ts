import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { http1Get, http2Get } from "../support/http-clients.js";
import { startChunkingRelay } from "../support/tcp-chunker.js";
import { rawConnect, readAnswerAfterDrain, type RawConnection } from "../support/raw-http.js";
import { SinglePortServer } from "../../src/server/single-port-server.js";
import type { HttpHandler } from "../../src/server/http-types.js";
import { createLogger } from "../../src/ops/logger.js";

describe("one cleartext port for HTTP/1.1 and HTTP/2", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway({ limits: { headersTimeoutMs: 300 } });
  });
  afterAll(() => gw.close());

  it("serves HTTP/1.1 and h2c with prior knowledge on the same port", async () => {
    const one = await http1Get(gw.port, "/healthz");
    expect(one.status).toBe(200);
    expect(JSON.parse(one.body)).toEqual({ status: "alive" });
    const two = await http2Get(`http://127.0.0.1:${gw.port}`, "/readyz");
    expect(two.status).toBe(200);
    expect(JSON.parse(two.body)).toEqual({ status: "ready" });
  });

  it("waits for the whole preface when the first bytes arrive one at a time", async () => {
    const relay = await startChunkingRelay(gw.port, 30, 3);
    try {
      const two = await http2Get(`http://127.0.0.1:${relay.port}`, "/healthz");
      expect(two.status).toBe(200);
      const one = await http1Get(relay.port, "/healthz");
      expect(one.status).toBe(200);
    } finally {
      await relay.close();
    }
  });

  it("closes a connection that sends nothing within the headers timeout", async () => {
    const socket = net.connect(gw.port, "127.0.0.1");
    const startedAt = Date.now();
    await new Promise((resolve) => socket.on("close", resolve));
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(250);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });

  it("closes a connection whose first bytes only start the preface and then stall", async () => {
    const socket = net.connect(gw.port, "127.0.0.1", () => socket.write("PRI * HTTP/2"));
    await new Promise((resolve) => socket.on("close", resolve));
    // And the port still serves afterwards.
    expect((await http1Get(gw.port, "/healthz")).status).toBe(200);
  });

  it("answers 404 as JSON for unknown plain paths on both HTTP versions", async () => {
    const one = await http1Get(gw.port, "/no-such-page");
    expect(one.status).toBe(404);
    expect(one.headers["content-type"]).toMatch(/application\/json/);
    const two = await http2Get(`http://127.0.0.1:${gw.port}`, "/no-such-page");
    expect(two.status).toBe(404);
  });
});

describe("HTTP/2: an answer given before the request body was read", () => {
  // A 415 (unsupported content type) is answered before the body is read, by connect-node.
  const earlyAnswered = {
    ":method": "POST",
    ":path": "/demo.v1.GreeterService/Greet",
    "content-type": "text/plain",
  };
  let gw: StartedGateway;
  let session: http2.ClientHttp2Session;
  beforeAll(async () => {
    gw = await startGateway();
    session = http2.connect(gw.url);
  });
  afterAll(async () => {
    session.close();
    await gw.close();
  });

  /** Opens an early-answered stream, its body not sent yet; resolves once the whole answer arrived. */
  function openEarlyAnswered(): Promise<{ stream: http2.ClientHttp2Stream; status: number }> {
    return new Promise((resolve, reject) => {
      const stream = session.request(earlyAnswered);
      let status = 0;
      stream.on("response", (headers) => (status = Number(headers[":status"])));
      stream.on("end", () => resolve({ stream, status }));
      stream.on("error", reject);
      stream.resume();
    });
  }

  it("is not reset while the client is still sending: it finishes its upload, and the stream ends cleanly", async () => {
    const { stream, status } = await openEarlyAnswered();
    expect(status).toBe(415);
    // Node's own behaviour was to reset the stream one tick after the answer, and nghttp2 sent
    // that reset ahead of the answer now and then: the answer was lost.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stream.closed, "stream still open for the rest of the upload").toBe(false);
    const closed = new Promise<number | undefined>((resolve) => stream.on("close", () => resolve(stream.rstCode)));
    stream.end('{"name":"x"}');
    expect(await closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("closes the stream with NO_ERROR once the grace period is over if the upload goes on", async () => {
    const startedAt = Date.now();
    const { stream, status } = await openEarlyAnswered();
    expect(status).toBe(415);
    stream.write("still sending…");
    const rstCode = await new Promise<number | undefined>((resolve) => stream.on("close", () => resolve(stream.rstCode)));
    expect(rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });
});

describe("TLS with ALPN on the same port", () => {
  let gw: StartedGateway;
  let cert: Buffer;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gateway-tls-"));
    const certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", keyFile, "-out", certFile,
    ], { stdio: "ignore" });
    cert = readFileSync(certFile);
    gw = await startGateway({ tls: { certFile, keyFile } });
  });
  afterAll(async () => {
    await gw?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("negotiates h2 by ALPN", async () => {
    const res = await http2Get(`https://127.0.0.1:${gw.port}`, "/healthz", { ca: cert });
    expect(res.status).toBe(200);
  });

  it("negotiates http/1.1 by ALPN", async () => {
    const res = await new Promise<{ status: number; protocol: string | false | null }>((resolve, reject) => {
      const options: https.RequestOptions & { ALPNProtocols: string[] } = {
        host: "127.0.0.1", port: gw.port, path: "/readyz", ca: cert, ALPNProtocols: ["http/1.1"], agent: false,
      };
      const req = https.get(
        options,
        (response) => {
          response.resume();
          resolve({ status: response.statusCode ?? 0, protocol: (response.socket as import("node:tls").TLSSocket).alpnProtocol });
        },
      );
      req.on("error", reject);
    });
    expect(res).toEqual({ status: 200, protocol: "http/1.1" });
  });
});

describe("SinglePortServer: the drain on node:http connections", () => {
  const limits = { maxHeaderBytes: 16384, headersTimeoutMs: 5000, idleTimeoutMs: 30000, maxConcurrentStreams: 100 };
  const request = "GET /big HTTP/1.1\r\nHost: test\r\n\r\n";

  /** A SinglePortServer without lean connections: node:http serves every HTTP/1.1 request. */
  async function startPlainServer(onRequest: HttpHandler, tls?: { cert: Buffer; key: Buffer }): Promise<{ server: SinglePortServer; port: number }> {
    const server = new SinglePortServer({ onRequest, logger: createLogger("silent"), limits, tls });
    const { port } = await server.listen(0, "127.0.0.1");
    return { server, port };
  }

  /** Waits until the server closes `connection`, checks its last answer said Connection: close, and returns all it received. */
  async function closedAfterConnectionClose(connection: RawConnection): Promise<string> {
    const outcome = await connection.closed(2000);
    expect(outcome.closedByServer).toBe(true);
    const text = outcome.received.toString("latin1");
    expect(text.toLowerCase()).toContain("\r\nconnection: close\r\n");
    return text;
  }

  it("sends the whole of a large answer the client has not read yet when the drain begins, then closes", async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const { server, port } = await startPlainServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": big.length });
      res.end(big);
    });
    try {
      const { head, totalBytes, closedByServer } = await readAnswerAfterDrain(port, request, () => server.stopAccepting());
      expect(closedByServer).toBe(true);
      expect(head).toContain(`content-length: ${big.length}`);
      expect(totalBytes).toBe(head.length + big.length);
      expect(server.openConnections()).toBe(0);
    } finally {
      server.destroyAll();
    }
  });

  it("closes an idle keep-alive connection at once; a request still arriving or running is answered with Connection: close, then closed", async () => {
    let slowStarted: () => void = () => undefined;
    const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
    const { server, port } = await startPlainServer((req, res) => {
      if (req.url !== "/slow") return res.end("done");
      slowStarted();
      setTimeout(() => res.end("slow done"), 200);
    });
    try {
      const idle = await rawConnect(port);
      await idle.write("GET /a HTTP/1.1\r\nHost: test\r\n\r\n");
      const halfSent = await rawConnect(port);
      await halfSent.write("GET /b HTTP/1.1\r\nHost: te");
      const busy = await rawConnect(port);
      await busy.write("GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
      await slowRunning;
      for (let wait = 0; wait < 100 && !idle.received().includes("done"); wait++) await new Promise((resolve) => setTimeout(resolve, 10));
      server.stopAccepting();
      expect((await idle.closed(1000)).closedByServer).toBe(true);
      await halfSent.write("st\r\n\r\n");
      for (const [connection, body] of [[halfSent, "done"], [busy, "slow done"]] as const) {
        const answer = await closedAfterConnectionClose(connection);
        expect(answer, body).toMatch(/^HTTP\/1\.1 200 /);
        expect(answer.endsWith(`\r\n\r\n${body}`)).toBe(true);
      }
      expect(server.openConnections()).toBe(0);
    } finally {
      server.destroyAll();
    }
  });

  for (const count of [2, 4]) {
    it(`answers ${count} requests pipelined before the drain, in order, then closes`, async () => {
      let slowStarted: () => void = () => undefined;
      const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
      let closedAnswers = 0;
      const { server, port } = await startPlainServer((req, res) => {
        res.on("close", () => closedAnswers++);
        if (req.url !== "/slow") return res.end(`answer ${req.url}`);
        slowStarted();
        setTimeout(() => res.end("answer /slow"), 200);
      });
      try {
        const connection = await rawConnect(port);
        const paths = ["/slow", ...Array.from({ length: count - 1 }, (_, i) => `/next${i}`)];
        await connection.write(paths.map((path) => `GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`).join(""));
        await slowRunning;
        await new Promise((resolve) => setTimeout(resolve, 20));
        server.stopAccepting();
        const outcome = await connection.closed(2000);
        expect(outcome.closedByServer).toBe(true);
        const text = outcome.received.toString("latin1");
        expect(text.match(/HTTP\/1\.1 200 /g)).toHaveLength(count);
        const positions = paths.map((path) => text.indexOf(`answer ${path}`));
        expect(positions.every((at) => at >= 0)).toBe(true);
        expect(positions).toEqual([...positions].sort((a, b) => a - b));
        // Every answer counts as done (the gateway waits for each "close" when it drains).
        for (let wait = 0; wait < 50 && closedAnswers < count; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(closedAnswers).toBe(count);
      } finally {
        server.destroyAll();
      }
    });
  }

  it("does not run a request pipelined behind an answer already going out with Connection: close", async () => {
    const ran: string[] = [];
    let firstStarted: () => void = () => undefined;
    const firstRunning = new Promise<void>((resolve) => (firstStarted = resolve));
    const { server, port } = await startPlainServer((req, res) => {
      ran.push(req.url ?? "");
      if (req.url !== "/first") return res.end(`answer ${req.url}`);
      // The head goes out at once; the body after a while.
      res.writeHead(200, { "content-length": 12 });
      res.write("answer ");
      firstStarted();
      setTimeout(() => res.end("first"), 300);
    });
    try {
      const connection = await rawConnect(port);
      // Half a head before the drain (a connection that has sent nothing yet is closed at once).
      await connection.write("GET /first HTTP/1.1\r\nHost: te");
      await new Promise((resolve) => setTimeout(resolve, 50));
      server.stopAccepting();
      await connection.write("st\r\n\r\n");
      await firstRunning;
      await connection.write("GET /second HTTP/1.1\r\nHost: test\r\n\r\n");
      const text = await closedAfterConnectionClose(connection);
      expect(text.endsWith("answer first")).toBe(true);
      expect(ran).toEqual(["/first"]);
    } finally {
      server.destroyAll();
    }
  });

  it("answers a request whose body is still arriving when the drain begins with Connection: close, then closes", async () => {
    const { server, port } = await startPlainServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => res.end(`got ${Buffer.concat(chunks).toString()}`));
    });
    try {
      const connection = await rawConnect(port);
      await connection.write("POST /upload HTTP/1.1\r\nHost: test\r\ncontent-length: 10\r\n\r\nhello");
      await new Promise((resolve) => setTimeout(resolve, 50));
      server.stopAccepting();
      await connection.write("world");
      const text = await closedAfterConnectionClose(connection);
      expect(text.endsWith("got helloworld")).toBe(true);
    } finally {
      server.destroyAll();
    }
  });

  it("over TLS too (http2's close() closes the idle HTTP/1.1 connections): a large answer not yet read arrives whole", async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const dir = mkdtempSync(join(tmpdir(), "gateway-tls-drain-"));
    const certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
    const { server, port } = await startPlainServer(
      (_req, res) => {
        res.writeHead(200, { "content-length": big.length });
        res.end(big);
      },
      { cert: readFileSync(certFile), key: readFileSync(keyFile) },
    );
    try {
      const socket = tls.connect({ host: "127.0.0.1", port, ALPNProtocols: ["http/1.1"], rejectUnauthorized: false });
      await new Promise<void>((resolve) => socket.once("secureConnect", () => resolve()));
      socket.pause();
      socket.write(request);
      await new Promise((resolve) => setTimeout(resolve, 200));
      server.stopAccepting();
      let total = 0;
      let head = "";
      socket.on("data", (chunk: Buffer) => {
        if (total === 0) head = chunk.toString("latin1", 0, chunk.indexOf("\r\n\r\n") + 4);
        total += chunk.length;
      });
      const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
      socket.resume();
      expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(false), 5000))])).toBe(true);
      expect(head).toContain(`content-length: ${big.length}`);
      expect(total).toBe(head.length + big.length);
      expect(server.openConnections()).toBe(0);
    } finally {
      server.destroyAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
