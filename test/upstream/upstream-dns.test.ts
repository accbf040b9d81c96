/**
 * DNS discovery against a real DNS server on loopback: a `dns:///name:port` route follows the
 * name's A records as they change (pods added and removed), without a restart, and re-resolves
 * at once when every known endpoint fails.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { TestDnsServer } from "../support/upstream-dns.js";
import { UpstreamProcess } from "../support/upstream-fleet.js";

const NAME = "echo.upstream.test";
let dns: TestDnsServer;
let b: UpstreamProcess;
let c: UpstreamProcess;
const gateways: StartedGateway[] = [];
const sessions: Http2SessionManager[] = [];

beforeAll(async () => {
  dns = await new TestDnsServer().start();
  // Two "pods" on the same port, as behind a headless Service: 127.0.0.2 and 127.0.0.3 (both loopback).
  b = await new UpstreamProcess({ id: "b", host: "127.0.0.2" }).start();
  c = await new UpstreamProcess({ id: "c", host: "127.0.0.3", port: b.port }).start();
}, 60_000);

afterAll(async () => {
  for (const session of sessions) session.abort();
  await Promise.all(gateways.map((gw) => gw.close()));
  await Promise.all([b?.stop(), c?.stop()]);
  await dns?.close();
});

async function gatewayFollowing(refreshIntervalMs: number): Promise<Client<typeof EchoService>> {
  const gw = await startGateway({
    upstreams: {
      routes: [
        {
          match: "test.upstream.v1.EchoService",
          target: `dns:///${NAME}:${b.port}`,
          descriptors: "reflection",
          dns: { servers: [dns.server], refreshIntervalMs },
        },
      ],
    },
  });
  gateways.push(gw);
  const sessionManager = new Http2SessionManager(gw.url);
  sessions.push(sessionManager);
  return createClient(EchoService, createConnectTransport({ baseUrl: gw.url, httpVersion: "2", sessionManager }));
}

async function endpointsOf(client: Client<typeof EchoService>, calls: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < calls; i++) seen.add((await client.echo({})).endpoint);
  return seen;
}

/** Call until the set of endpoints answering `calls` calls in a row equals `expected`. */
async function until(client: Client<typeof EchoService>, expected: string[], timeoutMs: number): Promise<Set<string>> {
  const deadline = Date.now() + timeoutMs;
  let seen = await endpointsOf(client, 6);
  while ([...seen].sort().join() !== expected.join() && Date.now() < deadline) {
    await sleep(100);
    seen = await endpointsOf(client, 6);
  }
  return seen;
}

it("follows the name's answers as they change, without a restart", async () => {
  dns.set(NAME, ["127.0.0.2"]);
  const client = await gatewayFollowing(200);
  expect(await endpointsOf(client, 6)).toEqual(new Set(["b"]));

  dns.set(NAME, ["127.0.0.2", "127.0.0.3"]);
  expect(await until(client, ["b", "c"], 5_000)).toEqual(new Set(["b", "c"]));

  dns.set(NAME, ["127.0.0.3"]);
  expect(await until(client, ["c"], 5_000)).toEqual(new Set(["c"]));
  expect(dns.queries.get(NAME)).toBeGreaterThan(3);
});

it("re-resolves at once when every known endpoint fails, so the call still succeeds", async () => {
  dns.set(NAME, ["127.0.0.2"]);
  // Periodic refresh far away: only the failure can make the gateway look again.
  const client = await gatewayFollowing(60_000);
  expect(await endpointsOf(client, 3)).toEqual(new Set(["b"]));
  dns.set(NAME, ["127.0.0.3"]);
  await b.kill();
  await sleep(300);
  const response = await client.echo({});
  expect(response.endpoint).toBe("c");
});
