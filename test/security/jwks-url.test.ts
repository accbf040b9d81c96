/** JWKS fetched from a URL (an identity provider's jwks_uri), served here by a local HTTP server. */
import { readFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { AUDIENCE, createSecurityFixtures, ISSUER, type SecurityFixtures } from "./fixtures.js";

let fx: SecurityFixtures;
let jwksServer: http.Server;
let gw: StartedGateway;
let fetches = 0;

beforeAll(async () => {
  fx = await createSecurityFixtures();
  const jwks = readFileSync(fx.jwksFile);
  jwksServer = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" }).end(jwks);
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  gw = await startGateway({ security: { jwt: { jwksUrl, issuer: ISSUER, audience: AUDIENCE } } });
});
afterAll(async () => {
  await gw?.close();
  await new Promise((resolve) => jwksServer?.close(resolve));
  fx?.remove();
});

describe("JWKS from a URL", () => {
  it("verifies tokens with the fetched keys, refuses forged ones, and does not refetch per call", async () => {
    const client = createClient(GreeterService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }));
    for (let i = 0; i < 3; i++) {
      const token = await fx.token({ sub: `user-${i}` });
      expect((await client.greet({ name: "Ada" }, { headers: { authorization: `Bearer ${token}` } })).greeting).toContain("Ada");
    }
    await expect(client.greet({ name: "Ada" }, { headers: { authorization: `Bearer ${await fx.forged()}` } })).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
    expect(fetches).toBe(1);
  });
});
