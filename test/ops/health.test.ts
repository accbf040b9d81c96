import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { http1Get } from "../support/http-clients.js";

describe("grpc.health.v1 and the HTTP probes", () => {
  let gw: StartedGateway;
  let health: ReturnType<typeof createClient<typeof Health>>;
  beforeAll(async () => {
    gw = await startGateway();
    health = createClient(Health, createGrpcTransport({ baseUrl: gw.url }));
  });
  afterAll(() => gw.close());

  it("reports the server and every served service as SERVING once listening", async () => {
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
    expect((await health.check({ service: "demo.v1.GreeterService" })).status).toBe(Status.SERVING);
    const { statuses } = await health.list({});
    expect(Object.keys(statuses)).toEqual(
      expect.arrayContaining(["", "demo.v1.GreeterService", "demo.v1.CalculatorService", "grpc.health.v1.Health"]),
    );
    for (const entry of Object.values(statuses)) expect(entry.status).toBe(Status.SERVING);
  });

  it("answers NOT_FOUND for an unknown service", async () => {
    const error = await health.check({ service: "no.such.Service" }).catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
  });

  it("streams status changes to watchers, and SERVICE_UNKNOWN for unknown services", async () => {
    const controller = new AbortController();
    const seen: Status[] = [];
    const watching = (async () => {
      for await (const message of health.watch({ service: "demo.v1.CalculatorService" }, { signal: controller.signal })) {
        seen.push(message.status);
        if (seen.length === 3) controller.abort();
      }
    })().catch((e: unknown) => {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    });
    await expect.poll(() => seen.length).toBe(1);
    gw.gateway.health.set("demo.v1.CalculatorService", Status.NOT_SERVING);
    gw.gateway.health.set("demo.v1.CalculatorService", Status.SERVING);
    await watching;
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING]);

    // connect-es only cancels the HTTP stream through the signal, not through iterator.return().
    const stopUnknown = new AbortController();
    const unknown = health.watch({ service: "later.Service" }, { signal: stopUnknown.signal })[Symbol.asyncIterator]();
    expect((await unknown.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
    stopUnknown.abort();
    // Cancelled watches end on the server too: nothing stays in flight.
    await expect.poll(() => gw.gateway.inFlightCalls(), { timeout: 2_000 }).toBe(0);
  });

  it("serves /healthz and /readyz", async () => {
    expect(await http1Get(gw.port, "/healthz")).toMatchObject({ status: 200 });
    const ready = await http1Get(gw.port, "/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: "ready" });
  });
});

describe("readiness while draining", () => {
  it("turns /readyz and gRPC health to not-ready when shutdown begins", async () => {
    const gw = await startGateway({ shutdown: { graceMs: 2_000 } });
    const health = createClient(Health, createGrpcTransport({ baseUrl: gw.url }));
    const seen: Status[] = [];
    const watching = (async () => {
      for await (const message of health.watch({ service: "" })) seen.push(message.status);
    })().catch(() => undefined);
    await expect.poll(() => seen.length).toBe(1);
    const shutdown = gw.close();
    await expect.poll(() => seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(gw.gateway.readiness.phase).toBe("draining");
    await shutdown;
    await watching;
  });
});
