/**
 * GET /metrics after real calls: the go-grpc-prometheus counters moved with the right labels,
 * on every protocol, and the endpoint answers over HTTP/1.1 and HTTP/2.
 */
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { connectNodeTransports, type TransportMatrix } from "../support/connect-transports.js";
import { curl } from "../support/curl.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary } from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

let gw: StartedGateway;
let matrix: TransportMatrix;

beforeAll(async () => {
  gw = await startGateway();
  matrix = connectNodeTransports(gw.url);
});
afterAll(async () => {
  matrix?.close();
  await gw?.close();
});

/** The value of one sample line, e.g. `grpc_server_handled_total{...}`, with labels in any order. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf("}"));
    const found = new Map(body.split(/,(?=[a-z_]+=")/).map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 2, -1)]));
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

async function scrape(http: "1.1" | "2" = "1.1"): Promise<string> {
  const res = await curl(`${gw.url}/metrics`, { http });
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toContain("text/plain");
  return res.text;
}

const greet = { grpc_service: "demo.v1.GreeterService", grpc_method: "Greet", grpc_type: "unary" };

describe("/metrics", () => {
  it("is served over HTTP/1.1 and HTTP/2 with Node runtime metrics", async () => {
    for (const http of ["1.1", "2"] as const) {
      const text = await scrape(http);
      expect(text).toContain("process_cpu_user_seconds_total");
      expect(text).toContain("nodejs_eventloop_lag_seconds");
    }
  });

  it("counts calls per method, protocol and code, with handling time and in-flight", async () => {
    for (const name of ["connect over HTTP/1.1, json", "grpc over HTTP/2, binary", "grpc-web over HTTP/2, binary"]) {
      const client = createClient(GreeterService, matrix.get(name).transport);
      await client.greet({ name: "Ada" });
      await client.greet({ name: "Ada" });
      await expect(client.greet({ name: "" })).rejects.toThrow();
    }
    const grpcJs = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(GreeterService), "GreeterService");
    const outcome = await grpcUnary(grpcJs, GreeterService.method.greet, { name: "Ada" });
    grpcJs.close();
    expect(outcome.status.code).toBe(0);

    const text = await scrape("2");
    expect(sample(text, "grpc_server_handled_total", { ...greet, protocol: "connect", grpc_code: "OK" })).toBe(2);
    expect(sample(text, "grpc_server_handled_total", { ...greet, protocol: "connect", grpc_code: "InvalidArgument" })).toBe(1);
    expect(sample(text, "grpc_server_handled_total", { ...greet, protocol: "grpc", grpc_code: "OK" })).toBe(3);
    expect(sample(text, "grpc_server_handled_total", { ...greet, protocol: "grpc-web", grpc_code: "OK" })).toBe(2);
    expect(sample(text, "grpc_server_started_total", { ...greet, protocol: "grpc" })).toBe(4);
    expect(sample(text, "grpc_server_handling_seconds_count", { ...greet, protocol: "grpc" })).toBe(4);
    expect(sample(text, "grpc_server_handling_seconds_bucket", { ...greet, protocol: "grpc", le: "+Inf" })).toBe(4);
    expect(sample(text, "grpc_server_in_flight", { ...greet, protocol: "grpc" })).toBe(0);
    expect(sample(text, "grpc_server_msg_received_total", { ...greet, protocol: "connect" })).toBe(3);
  });

  it("counts calls refused before they ran (connect-node's 415 and 405) with code Unknown", async () => {
    const url = `http://127.0.0.1:${gw.port}/demo.v1.CalculatorService/Divide`;
    const wrongType = await fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" });
    const wrongMethod = await fetch(url, { method: "PUT", headers: { "content-type": "application/json" }, body: "{}" });
    expect([wrongType.status, wrongMethod.status]).toEqual([415, 405]);
    const divide = { grpc_service: "demo.v1.CalculatorService", grpc_method: "Divide", grpc_type: "unary", protocol: "connect" };
    const text = await scrape();
    expect(sample(text, "grpc_server_started_total", divide)).toBe(2);
    expect(sample(text, "grpc_server_handled_total", { ...divide, grpc_code: "Unknown" })).toBe(2);
    expect(sample(text, "grpc_server_in_flight", divide)).toBe(0);
  });

  it("counts streamed messages and keeps the gauge up while a stream is open", async () => {
    const client = createClient(CalculatorService, matrix.get("grpc over HTTP/2, binary").transport);
    async function* numbers() {
      for (let i = 1; i <= 3; i++) yield { number: BigInt(i) };
    }
    const running: number[] = [];
    for await (const res of client.accumulate(numbers())) running.push(Number(res.total ?? 0));
    expect(running.length).toBe(3);

    const greeter = createClient(GreeterService, matrix.get("connect over HTTP/2, binary").transport);
    const stream = greeter.greetStream({ name: "Ada", count: 3, intervalMs: 300 })[Symbol.asyncIterator]();
    await stream.next();
    const during = await scrape();
    expect(sample(during, "grpc_server_in_flight", { grpc_service: "demo.v1.GreeterService", grpc_method: "GreetStream", protocol: "connect" })).toBe(1);
    while (!(await stream.next()).done);

    const text = await scrape();
    const acc = { grpc_service: "demo.v1.CalculatorService", grpc_method: "Accumulate", grpc_type: "bidi_stream", protocol: "grpc" };
    expect(sample(text, "grpc_server_msg_received_total", acc)).toBe(3);
    expect(sample(text, "grpc_server_msg_sent_total", acc)).toBe(3);
    expect(sample(text, "grpc_server_handled_total", { ...acc, grpc_code: "OK" })).toBe(1);
    expect(sample(text, "grpc_server_in_flight", { grpc_service: "demo.v1.GreeterService", grpc_method: "GreetStream", protocol: "connect" })).toBe(0);
    expect(sample(text, "grpc_server_msg_sent_total", { grpc_service: "demo.v1.GreeterService", grpc_method: "GreetStream", protocol: "connect" })).toBe(3);
  });
});

describe("/metrics disabled", () => {
  it("is not served, and calls still work", async () => {
    const off = await startGateway({ observability: { metrics: { enabled: false } } });
    try {
      expect((await curl(`${off.url}/metrics`, { http: "1.1" })).status).toBe(404);
      const res = await curl(`${off.url}/demo.v1.GreeterService/Greet`, { http: "1.1", headers: { "content-type": "application/json" }, body: '{"name":"Ada"}' });
      expect(res.status).toBe(200);
    } finally {
      await off.close();
    }
  });
});
