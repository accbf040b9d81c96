/**
 * CORS for pages served from another origin, seen on the wire with curl over both HTTP
 * versions: preflights are answered for allowed origins only, actual responses carry the
 * allow and expose headers for allowed origins only, and nothing changes without a config.
 */
import { cors as connectCors } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curl, type CurlHttpVersion } from "../support/curl.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

const ALLOWED = "http://app.example.test:5173";
const OTHER = "http://evil.example.test";
const GREET = "/demo.v1.GreeterService/Greet";
const GREET_BODY = JSON.stringify({ name: "Ada" });

function preflight(gw: StartedGateway, origin: string, http: CurlHttpVersion = "1.1") {
  return curl(`${gw.url}${GREET}`, {
    http,
    // curl's helper types GET and POST only; -X OPTIONS is what a preflight needs.
    method: "OPTIONS" as never,
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,connect-protocol-version,authorization",
    },
  });
}

function connectPost(gw: StartedGateway, origin: string | undefined, http: CurlHttpVersion) {
  return curl(`${gw.url}${GREET}`, {
    http,
    headers: { "content-type": "application/json", ...(origin && { origin }) },
    body: GREET_BODY,
  });
}

describe("with an allow-list", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway({ web: { cors: { allowedOrigins: [ALLOWED], exposedHeaders: ["x-request-id"], maxAgeSeconds: 600 } } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  for (const http of ["1.1", "2"] as const) {
    it(`answers an allowed origin's preflight (HTTP/${http})`, async () => {
      const res = await preflight(gw, ALLOWED, http);
      expect(res.status).toBe(204);
      expect(res.headers["access-control-allow-origin"]).toBe(ALLOWED);
      expect(res.headers["access-control-allow-methods"]).toBe(connectCors.allowedMethods.join(", "));
      const allowHeaders = res.headers["access-control-allow-headers"].toLowerCase().split(", ");
      for (const name of [...connectCors.allowedHeaders, "authorization"]) expect(allowHeaders).toContain(name.toLowerCase());
      expect(res.headers["access-control-max-age"]).toBe("600");
      expect(res.headers.vary).toContain("Origin");
      // No RPC ran: a preflight is not a call.
      expect(gw.logs.filter((l) => l.msg === "rpc" && l.httpMethod === "OPTIONS")).toEqual([]);
    });

    it(`refuses another origin's preflight without CORS headers (HTTP/${http})`, async () => {
      const res = await preflight(gw, OTHER, http);
      expect(res.status).toBe(403);
      expect(Object.keys(res.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
    });

    it(`lets an allowed origin read the response and the protocol headers (HTTP/${http})`, async () => {
      const res = await connectPost(gw, ALLOWED, http);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toMatchObject({ greeting: "Hello, Ada!" });
      expect(res.headers["access-control-allow-origin"]).toBe(ALLOWED);
      const exposed = res.headers["access-control-expose-headers"].toLowerCase().split(", ");
      for (const name of [...connectCors.exposedHeaders, "x-request-id"]) expect(exposed).toContain(name.toLowerCase());
    });

    it(`serves another origin's request but gives the browser nothing to let the page read it (HTTP/${http})`, async () => {
      const res = await connectPost(gw, OTHER, http);
      expect(res.status).toBe(200);
      expect(res.headers["access-control-allow-origin"]).toBeUndefined();
      expect(res.headers["access-control-expose-headers"]).toBeUndefined();
    });
  }

  it("adds the headers to an error response and to gRPC-web over HTTP/2", async () => {
    const error = await curl(`${gw.url}/demo.v1.CalculatorService/Divide`, {
      http: "1.1",
      headers: { "content-type": "application/json", origin: ALLOWED },
      body: JSON.stringify({ dividend: 1, divisor: 0 }),
    });
    expect(error.status).toBe(400);
    expect(error.headers["access-control-allow-origin"]).toBe(ALLOWED);

    // An empty GreetRequest: gRPC-web framing with a zero-length message.
    const grpcWeb = await curl(`${gw.url}${GREET}`, {
      http: "2",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", origin: ALLOWED },
      body: Buffer.from([0, 0, 0, 0, 0]),
    });
    expect(grpcWeb.status).toBe(200);
    expect(grpcWeb.headers["access-control-allow-origin"]).toBe(ALLOWED);
  });

  it("changes nothing for requests without an Origin (curl, servers, same-origin GETs)", async () => {
    const res = await connectPost(gw, undefined, "2");
    expect(res.status).toBe(200);
    expect(Object.keys(res.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
  });
});

describe("without an allow-list (the default)", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("sends no CORS headers to anyone", async () => {
    const res = await connectPost(gw, ALLOWED, "1.1");
    expect(res.status).toBe(200);
    expect(Object.keys(res.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
    const pre = await preflight(gw, ALLOWED);
    expect(pre.headers["access-control-allow-origin"]).toBeUndefined();
  });
});

describe('with "*"', () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway({ web: { cors: { allowedOrigins: "*" } } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("echoes whichever origin asks, and varies on it", async () => {
    const res = await preflight(gw, OTHER);
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(OTHER);
    expect(res.headers.vary).toContain("Origin");
  });
});
