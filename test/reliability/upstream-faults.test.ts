/**
 * Faults on the upstream side: an upstream killed mid-stream, one that hangs, one that accepts
 * connections and never speaks, one that resets every connection, and DNS that returns nothing.
 * The client always gets a clear code within its deadline, no call stays in flight, and the
 * gateway recovers by itself once the upstream is back.
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { TestDnsServer } from "../support/upstream-dns.js";
import { UpstreamProcess } from "../support/upstream-fleet.js";

let dir: string;
let image: string;
let upstream: UpstreamProcess;
let dns: TestDnsServer;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gateway-upstream-faults-"));
  const [builtImage, started, dnsServer] = await Promise.all([
    buildUpstreamImage(dir),
    new UpstreamProcess({ id: "a" }).start(),
    new TestDnsServer().start(),
  ]);
  image = builtImage;
  upstream = started;
  dns = dnsServer;
}, 60_000);

afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
  await upstream?.stop();
  await dns?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Route = Record<string, unknown>;
async function gatewayTo(route: Route): Promise<StartedGateway> {
  const gw = await startGateway({
    upstreams: {
      images: [image],
      routes: [{ match: "test.upstream.v1.EchoService", healthCheck: { enabled: false }, ...route }],
    },
  } as never);
  cleanup.push(() => gw.close());
  return gw;
}

function clients(gw: StartedGateway): { grpc: Client<typeof EchoService>; connect: Client<typeof EchoService> } {
  const sessionManager = new Http2SessionManager(gw.url);
  cleanup.push(() => sessionManager.abort());
  return {
    grpc: createClient(EchoService, createGrpcTransport({ baseUrl: gw.url, sessionManager })),
    connect: createClient(EchoService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" })),
  };
}

/** The code a call failed with and how long it took; "ok" when it did not fail. */
async function outcome(call: () => Promise<unknown>): Promise<{ code: Code | "ok"; ms: number; message: string }> {
  const started = Date.now();
  try {
    await call();
    return { code: "ok", ms: Date.now() - started, message: "" };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, ms: Date.now() - started, message: e.message };
  }
}

/** Start the shared upstream again if an earlier test killed it. */
async function ensureUpstream(): Promise<void> {
  const child = upstream.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) await upstream.start();
}

async function eventually(call: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await outcome(call)).code === "ok") return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function noCallLeft(gw: StartedGateway): Promise<void> {
  for (let i = 0; i < 50 && gw.gateway.inFlightCalls() > 0; i++) await new Promise((r) => setTimeout(r, 100));
  expect(gw.gateway.inFlightCalls()).toBe(0);
}

/** A TCP server on loopback that does something hostile with every connection. */
async function hostileServer(onSocket: (socket: net.Socket) => void): Promise<{ address: string }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

describe("a real upstream that fails", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await gatewayTo({ target: upstream.address });
  });

  for (const passthrough of [true, false]) {
    it(`killed mid-stream (${passthrough ? "pass-through" : "transcoded"}): unavailable at once, then recovers by itself`, async () => {
      await ensureUpstream();
      const local = passthrough ? gw : await gatewayTo({ target: upstream.address, passthrough: false });
      const { grpc, connect } = clients(local);
      const client = passthrough ? grpc : connect;
      let received = 0;
      const result = await outcome(async () => {
        for await (const _ of client.count({ count: 100, intervalMs: 50 }, { timeoutMs: 8_000 })) {
          if (++received === 3) void upstream.kill();
        }
      });
      await noCallLeft(local);
      await upstream.start();
      const recovered = await eventually(() => client.echo({ text: "back" }, { timeoutMs: 2_000 }), 8_000);
      expect(received).toBeGreaterThanOrEqual(3);
      expect(recovered).toBe(true);
      // src/upstream/README.md: "upstream connection lost mid-call → unavailable" (the client did not cancel).
      expect(result.code, result.message).toBe(Code.Unavailable);
      expect(result.ms).toBeLessThan(5_000);
    }, 30_000);
  }

  it("hangs: deadline_exceeded within the client's deadline, the upstream call is cancelled", async () => {
    await ensureUpstream();
    const { grpc, connect } = clients(gw);
    for (const client of [grpc, connect]) {
      const result = await outcome(() => client.echo({ text: "slow", delayMs: 30_000 }, { timeoutMs: 700 }));
      expect(result.code, result.message).toBe(Code.DeadlineExceeded);
      expect(result.ms).toBeLessThan(700 + 1_000);
    }
    await noCallLeft(gw);
    expect((await grpc.echo({ text: "still fine" }, { timeoutMs: 2_000 })).text).toBe("still fine");
  });
});

describe("upstreams that misbehave at the connection level", () => {
  it("accepts connections and never speaks: a clear code within the client's deadline", async () => {
    const blackHole = await hostileServer(() => undefined);
    const gw = await gatewayTo({ target: blackHole.address, connection: { connectTimeoutMs: 5_000 } });
    const { grpc, connect } = clients(gw);
    for (const client of [grpc, connect]) {
      const result = await outcome(() => client.echo({ text: "x" }, { timeoutMs: 1_000 }));
      expect([Code.DeadlineExceeded, Code.Unavailable], result.message).toContain(result.code);
      expect(result.ms).toBeLessThan(1_000 + 1_000);
    }
    await noCallLeft(gw);
  });

  it("resets every connection: unavailable quickly, retries bounded, no call left", async () => {
    let connections = 0;
    const resetting = await hostileServer((socket) => {
      connections++;
      socket.resetAndDestroy();
    });
    const gw = await gatewayTo({ target: resetting.address });
    const { grpc, connect } = clients(gw);
    for (const client of [grpc, connect]) {
      const result = await outcome(() => client.echo({ text: "x" }, { timeoutMs: 5_000 }));
      expect(result.code, result.message).toBe(Code.Unavailable);
      expect(result.ms).toBeLessThan(3_000);
    }
    expect(connections).toBeLessThanOrEqual(2 * 3 + 2);
    await noCallLeft(gw);
  });

  it("DNS returns nothing: unavailable within the deadline, and traffic flows once the name resolves", async () => {
    const name = "faults.upstream.test";
    dns.set(name, []);
    await ensureUpstream();
    const gw = await gatewayTo({ target: `dns:///${name}:${upstream.port}`, dns: { servers: [dns.server], refreshIntervalMs: 200 } });
    const { grpc, connect } = clients(gw);
    for (const client of [grpc, connect]) {
      const result = await outcome(() => client.echo({ text: "x" }, { timeoutMs: 2_000 }));
      expect(result.code, result.message).toBe(Code.Unavailable);
      expect(result.ms).toBeLessThan(2_000 + 500);
    }
    dns.set(name, ["127.0.0.1"]);
    expect(await eventually(() => grpc.echo({ text: "resolved" }, { timeoutMs: 2_000 }), 8_000)).toBe(true);
    await noCallLeft(gw);
  });
});
