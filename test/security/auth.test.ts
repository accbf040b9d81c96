/**
 * Authentication and per-method rules, each tried with real clients that fail to get in:
 * no key, wrong key, expired / forged / wrong-audience / wrong-issuer JWT, missing scope.
 * Every refusal is Unauthenticated or PermissionDenied with no detail of why.
 */
import * as http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { connectNodeTransports, type TransportMatrix } from "../support/connect-transports.js";
import { curl } from "../support/curl.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary } from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { API_KEY, AUDIENCE, CALC_API_KEY, createSecurityFixtures, ISSUER, type SecurityFixtures } from "./fixtures.js";

let gw: StartedGateway;
let fx: SecurityFixtures;
let matrix: TransportMatrix;

beforeAll(async () => {
  fx = await createSecurityFixtures();
  gw = await startGateway({
    security: {
      apiKeys: { file: fx.apiKeysFile },
      jwt: { jwksFile: fx.jwksFile, issuer: ISSUER, audience: AUDIENCE },
      defaultAccess: "authenticated",
      rules: [
        { match: "grpc.health.v1.Health/*", access: "public" },
        { match: "demo.v1.GreeterService", access: "authenticated" },
        { match: "demo.v1.CalculatorService/*", scopes: ["calc"] },
      ],
    },
  });
  matrix = connectNodeTransports(gw.url);
});
afterAll(async () => {
  matrix?.close();
  await gw?.close();
  fx?.remove();
});

const PROTOCOLS = ["connect over HTTP/1.1, json", "connect over HTTP/2, binary", "grpc over HTTP/2, binary", "grpc-web over HTTP/1.1, binary"];

async function greetCode(transportName: string, headers: Record<string, string>): Promise<{ code: Code | "ok"; message?: string }> {
  const client = createClient(GreeterService, matrix.get(transportName).transport);
  try {
    await client.greet({ name: "Ada" }, { headers });
    return { code: "ok" };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, message: e.rawMessage };
  }
}

describe("API keys", () => {
  for (const name of PROTOCOLS) {
    it(`${name}: no key → unauthenticated, wrong key → unauthenticated, right key → ok`, async () => {
      expect(await greetCode(name, {})).toEqual({ code: Code.Unauthenticated, message: "unauthenticated" });
      expect(await greetCode(name, { "x-api-key": "k_live_wrong" })).toEqual({ code: Code.Unauthenticated, message: "unauthenticated" });
      expect(await greetCode(name, { "x-api-key": API_KEY })).toEqual({ code: "ok" });
    });
  }

  it("grpc-js: no key and wrong key refused with UNAUTHENTICATED, key accepted", async () => {
    const client = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(GreeterService), "GreeterService");
    try {
      const none = await grpcUnary(client, GreeterService.method.greet, { name: "Ada" });
      expect(none.status.code).toBe(Code.Unauthenticated);
      expect(none.status.details).toBe("unauthenticated");
      const wrong = await grpcUnary(client, GreeterService.method.greet, { name: "Ada" }, { metadata: { "x-api-key": "nope" } });
      expect(wrong.status.code).toBe(Code.Unauthenticated);
      const right = await grpcUnary(client, GreeterService.method.greet, { name: "Ada" }, { metadata: { "x-api-key": API_KEY } });
      expect(right.status.code).toBe(0);
    } finally {
      client.close();
    }
  });

  it("curl (Connect JSON over HTTP/1.1): 401 with no detail", async () => {
    const res = await curl(`${gw.url}/demo.v1.GreeterService/Greet`, {
      http: "1.1",
      headers: { "content-type": "application/json" },
      body: '{"name":"Ada"}',
    });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text)).toEqual({ code: "unauthenticated", message: "unauthenticated" });
  });

  it("a key without the scope is refused with permission_denied; the scoped key passes", async () => {
    const client = createClient(CalculatorService, matrix.get("grpc over HTTP/2, binary").transport);
    await expect(client.divide({ dividend: 1, divisor: 2 }, { headers: { "x-api-key": API_KEY } })).rejects.toMatchObject({
      code: Code.PermissionDenied,
      rawMessage: "permission denied",
    });
    await expect(client.divide({ dividend: 1, divisor: 2 })).rejects.toMatchObject({ code: Code.Unauthenticated });
    const ok = await client.divide({ dividend: 1, divisor: 2 }, { headers: { "x-api-key": CALC_API_KEY } });
    expect(ok.quotient).toBe(0.5);
  });
});

describe("JWT bearer tokens", () => {
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it("a valid token is accepted on every protocol", async () => {
    const token = await fx.token();
    for (const name of PROTOCOLS) expect(await greetCode(name, bearer(token))).toEqual({ code: "ok" });
  });

  it("expired, forged, wrong-audience, wrong-issuer and garbage tokens are refused alike", async () => {
    const tokens = {
      expired: await fx.token({}, { expiresIn: Math.floor(Date.now() / 1000) - 3600 }),
      forged: await fx.forged(),
      wrongAudience: await fx.token({}, { audience: "someone-else" }),
      wrongIssuer: await fx.token({}, { issuer: "https://evil.test" }),
      garbage: "not.a.jwt",
    };
    for (const [what, token] of Object.entries(tokens)) {
      for (const name of ["connect over HTTP/1.1, json", "grpc over HTTP/2, binary"]) {
        expect(await greetCode(name, bearer(token)), `${what} over ${name}`).toEqual({ code: Code.Unauthenticated, message: "unauthenticated" });
      }
    }
  });

  it("scopes come from the scope claim: missing scope → permission_denied", async () => {
    const client = createClient(CalculatorService, matrix.get("connect over HTTP/2, binary").transport);
    const without = await fx.token({ scope: "read write" });
    await expect(client.divide({ dividend: 4, divisor: 2 }, { headers: bearer(without) })).rejects.toMatchObject({ code: Code.PermissionDenied });
    const withScope = await fx.token({ scope: "read calc" });
    expect((await client.divide({ dividend: 4, divisor: 2 }, { headers: bearer(withScope) })).quotient).toBe(2);
  });

  it("logs the caller's identity and the refusal reason, never the credential", async () => {
    const token = await fx.token({ sub: "alice" });
    await greetCode("connect over HTTP/1.1, json", bearer(token));
    await greetCode("connect over HTTP/1.1, json", { "x-api-key": "k_secret_wrong" });
    await new Promise((r) => setTimeout(r, 50));
    const text = JSON.stringify(gw.logs);
    expect(text).not.toContain(token);
    expect(text).not.toContain("k_secret_wrong");
    expect(gw.logs.some((l) => l.principal === "jwt:alice" && l.code === "ok")).toBe(true);
    expect(gw.logs.some((l) => l.refused === "unauthenticated" && l.code === "unauthenticated")).toBe(true);
  });
});

describe("public methods and the gate's position", () => {
  it("health is public: no credential needed", async () => {
    const client = createClient(Health, matrix.get("grpc over HTTP/2, binary").transport);
    const res = await client.check({ service: "" });
    expect(res.status).toBeGreaterThan(0);
  });

  it("refuses before the request body is read: the answer arrives while the upload is still open", async () => {
    const session = http2.connect(gw.url);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/demo.v1.GreeterService/Greet",
        "content-type": "application/grpc",
        te: "trailers",
      });
      // No body sent and the stream left open: a gateway that waited for the body would hang here.
      const status = await new Promise<unknown>((resolve, reject) => {
        // A trailers-only answer carries the status in the headers; otherwise it is in the trailers.
        stream.once("response", (headers) => headers["grpc-status"] !== undefined && resolve(headers["grpc-status"]));
        stream.once("trailers", (trailers) => resolve(trailers["grpc-status"]));
        stream.on("data", () => undefined);
        stream.once("error", reject);
        setTimeout(() => reject(new Error("no answer while the upload was open")), 5_000);
      });
      expect(status).toBe(String(Code.Unauthenticated));
      expect(stream.writableEnded).toBe(false);
      stream.close();
    } finally {
      session.close();
    }
  });
});
