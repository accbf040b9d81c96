import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { http1Get, http2Get } from "../support/http-clients.js";
import { startChunkingRelay } from "../support/tcp-chunker.js";

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
