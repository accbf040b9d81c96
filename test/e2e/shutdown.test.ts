import * as net from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway-process.js";
import { rawConnect } from "../support/raw-http.js";

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

describe("graceful shutdown of the real process", () => {
  let gateway: GatewayProcess | undefined;
  afterEach(() => {
    gateway?.child.kill("SIGKILL");
  });

  it.each([
    ["gRPC over HTTP/2", (url: string) => createGrpcTransport({ baseUrl: url })],
    ["Connect over HTTP/1.1", (url: string) => createConnectTransport({ baseUrl: url, httpVersion: "1.1" })],
  ])("lets a stream in flight finish on SIGTERM, refuses new connections and exits 0 (%s)", async (_name, transport) => {
    gateway = await startGatewayProcess({ GATEWAY_SHUTDOWN_GRACE_MS: "10000" });
    const client = createClient(GreeterService, transport(gateway.url));
    const received: number[] = [];
    let signalled = false;
    for await (const message of client.greetStream({ name: "drain", count: 6, intervalMs: 150 })) {
      received.push(message.sequence);
      if (!signalled) {
        signalled = true;
        gateway.child.kill("SIGTERM");
        await expect.poll(() => connectionRefused(gateway!.port), { timeout: 2_000 }).toBe(true);
      }
    }
    expect(received).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await gateway.exited).toBe(0);
    const messages = gateway.logs.map((entry) => entry.msg);
    expect(messages).toEqual(expect.arrayContaining(["shutdown requested", "draining", "stopped"]));
    const call = gateway.logs.find((entry) => entry.msg === "rpc");
    expect(call).toMatchObject({ method: "demo.v1.GreeterService/GreetStream", code: "ok" });
  });

  it("closes an idle keep-alive HTTP/1.1 connection (a lean one) at once on SIGTERM and exits 0", async () => {
    gateway = await startGatewayProcess({ GATEWAY_SHUTDOWN_GRACE_MS: "10000" });
    const connection = await rawConnect(gateway.port);
    const body = JSON.stringify({ name: "lean" });
    await connection.write(
      `POST /demo.v1.GreeterService/Greet HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    await expect.poll(() => connection.received().toString("latin1"), { timeout: 2_000 }).toContain("Hello, lean!");
    const signalledAt = Date.now();
    gateway.child.kill("SIGTERM");
    const outcome = await connection.closed(5_000);
    expect(outcome.closedByServer).toBe(true);
    expect(await gateway.exited).toBe(0);
    // Well inside the 10 s grace period: the idle connection did not hold the drain up.
    expect(Date.now() - signalledAt).toBeLessThan(5_000);
    // The access log line of the lean call names the client's address, as for any other call.
    const call = gateway.logs.find((entry) => entry.msg === "rpc");
    expect(call).toMatchObject({ method: "demo.v1.GreeterService/Greet", protocol: "connect", code: "ok", peer: "127.0.0.1" });
  });

  it("cancels calls that outlive the grace period, then exits 0", async () => {
    gateway = await startGatewayProcess({ GATEWAY_SHUTDOWN_GRACE_MS: "300" });
    const client = createClient(GreeterService, createGrpcTransport({ baseUrl: gateway.url }));
    const received: number[] = [];
    const outcome = (async () => {
      for await (const message of client.greetStream({ name: "slow", count: 100, intervalMs: 100 })) {
        received.push(message.sequence);
        if (received.length === 1) gateway!.child.kill("SIGTERM");
      }
    })().then(
      () => "completed",
      (error: unknown) => String(error),
    );
    expect(await outcome).toMatch(/unavailable|shutting down/i);
    expect(received.length).toBeGreaterThan(1);
    expect(received.length).toBeLessThan(100);
    expect(await gateway.exited).toBe(0);
  });

  it("exits non-zero with every configuration problem listed", async () => {
    await expect(startGatewayProcess({ GATEWAY_PORT: "x", GATEWAY_LOG_LEVEL: "loud" })).rejects.toThrow(
      /exited with 2[\s\S]*GATEWAY_PORT[\s\S]*log\.level/,
    );
  });
});
