/**
 * mTLS on the one TLS port: a client without a certificate (or with one from another CA) is
 * refused; with a certificate, HTTP/1.1 and HTTP/2 (ALPN) both work, RPCs too.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

const OPENSSL = "/usr/bin/openssl";

interface Pki {
  /** Where the files are. */
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: Buffer;
  client: { cert: Buffer; key: Buffer };
  stranger: { cert: Buffer; key: Buffer };
}

/** A CA, a server certificate, a client certificate from the CA and one from an unrelated CA. */
function createPki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "gateway-mtls-"));
  const f = (name: string) => join(dir, name);
  const run = (args: string[]) => execFileSync(OPENSSL, args, { stdio: "ignore" });
  const ca = (name: string) => run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", f(`${name}.key`), "-out", f(`${name}.pem`)]);
  const leaf = (name: string, caName: string, ext: string[]) => {
    run(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`)]);
    run(["x509", "-req", "-in", f(`${name}.csr`), "-CA", f(`${caName}.pem`), "-CAkey", f(`${caName}.key`), "-CAcreateserial", "-days", "1", "-out", f(`${name}.pem`), ...ext]);
  };
  ca("ca");
  ca("other-ca");
  const serverExt = f("server.ext");
  execFileSync("sh", ["-c", `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ${serverExt}`]);
  leaf("server", "ca", ["-extfile", serverExt]);
  leaf("client", "ca", []);
  leaf("stranger", "other-ca", []);
  const read = (name: string) => readFileSync(f(name));
  return {
    dir,
    caFile: f("ca.pem"),
    certFile: f("server.pem"),
    keyFile: f("server.key"),
    ca: read("ca.pem"),
    client: { cert: read("client.pem"), key: read("client.key") },
    stranger: { cert: read("stranger.pem"), key: read("stranger.key") },
  };
}

function h1Get(port: number, options: https.RequestOptions): Promise<{ status: number; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const requestOptions: https.RequestOptions & { ALPNProtocols: string[] } = { host: "127.0.0.1", port, path: "/healthz", agent: false, ALPNProtocols: ["http/1.1"], ...options };
    const req = https.request(requestOptions, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, alpn: (res.socket as unknown as { alpnProtocol: string | false }).alpnProtocol }));
    });
    req.on("error", reject);
    req.on("close", () => reject(new Error("connection closed without a response")));
    req.end();
  });
}

function h2Get(port: number, options: http2.SecureClientSessionOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, options);
    session.on("error", reject);
    session.on("close", () => reject(new Error("session closed without a response")));
    const stream = session.request({ ":path": "/healthz" });
    stream.on("error", reject);
    stream.on("close", () => reject(new Error("stream closed without a response")));
    stream.on("response", (headers) => {
      stream.resume();
      stream.on("end", () => {
        session.close();
        resolve(Number(headers[":status"]));
      });
    });
    stream.end();
  });
}

let pki: Pki;
let gw: StartedGateway;

beforeAll(async () => {
  pki = createPki();
  gw = await startGateway({ tls: { certFile: pki.certFile, keyFile: pki.keyFile }, security: { clientCertificates: { caFile: pki.caFile } } });
}, 30_000);
afterAll(async () => {
  await gw?.close();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe("client certificates required", () => {
  it("refuses a client without a certificate, over HTTP/1.1 and HTTP/2", async () => {
    await expect(h1Get(gw.port, { ca: pki.ca })).rejects.toThrow();
    await expect(h2Get(gw.port, { ca: pki.ca })).rejects.toThrow();
  });

  it("refuses a certificate from another CA", async () => {
    await expect(h1Get(gw.port, { ca: pki.ca, ...pki.stranger })).rejects.toThrow();
    await expect(h2Get(gw.port, { ca: pki.ca, ...pki.stranger })).rejects.toThrow();
  });

  it("with a certificate, HTTP/1.1 and HTTP/2 work on the same port (ALPN)", async () => {
    expect(await h1Get(gw.port, { ca: pki.ca, ...pki.client })).toEqual({ status: 200, alpn: "http/1.1" });
    expect(await h2Get(gw.port, { ca: pki.ca, ...pki.client })).toBe(200);
  });

  it("RPCs over Connect/HTTP/1.1 and gRPC/HTTP/2 with a certificate", async () => {
    const baseUrl = `https://127.0.0.1:${gw.port}`;
    const tls = { ca: pki.ca, cert: pki.client.cert, key: pki.client.key };
    const connect = createClient(GreeterService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ...tls, agent: false } }));
    expect((await connect.greet({ name: "Ada" })).greeting).toContain("Ada");
    const grpc = createClient(GreeterService, createGrpcTransport({ baseUrl, nodeOptions: tls }));
    expect((await grpc.greet({ name: "Ada" })).greeting).toContain("Ada");
  });
});
