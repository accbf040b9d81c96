/**
 * With an OTLP endpoint configured, a real gateway process exports its spans over OTLP/HTTP
 * (here to a stand-in collector); they are flushed on SIGTERM.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { startGatewayProcess } from "../support/gateway-process.js";

const received: Array<{ path: string; contentType: string | undefined; body: Buffer }> = [];
let collector: http.Server;

beforeAll(async () => {
  collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", contentType: req.headers["content-type"], body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
});
afterAll(() => new Promise((resolve) => collector.close(resolve)));

describe("OTLP/HTTP export", () => {
  it("sends the server span of a call to the configured endpoint", async () => {
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
    const gw = await startGatewayProcess({ GATEWAY_OTLP_TRACES_ENDPOINT: endpoint });
    const client = createClient(GreeterService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }));
    await client.greet({ name: "Ada" });
    gw.child.kill("SIGTERM");
    expect(await gw.exited).toBe(0);
    expect(received.length).toBeGreaterThan(0);
    expect(received[0].path).toBe("/v1/traces");
    // OTLP protobuf or JSON: either way the span name is in the payload as text.
    expect(Buffer.concat(received.map((r) => r.body)).toString("latin1")).toContain("demo.v1.GreeterService/Greet");
  });

  it("exports nothing when not configured", async () => {
    received.length = 0;
    const gw = await startGatewayProcess({});
    const client = createClient(GreeterService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }));
    await client.greet({ name: "Ada" });
    gw.child.kill("SIGTERM");
    await gw.exited;
    expect(received).toEqual([]);
  });
});
