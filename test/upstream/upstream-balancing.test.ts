/**
 * Several upstream replicas behind one route: how calls spread (round-robin, least-request), one
 * HTTP/2 connection per endpoint, what happens when a replica dies under load and comes back
 * (retries, ejection, health checks), the circuit breaker, and connection ageing.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import type { UpstreamRouteConfig } from "../../src/config/upstream-config.js";
import { createGrpcJsClient, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { startUpstreams, type UpstreamProcess } from "../support/upstream-fleet.js";

type RouteInput = Partial<Omit<UpstreamRouteConfig, "retry" | "healthCheck" | "outlierDetection" | "circuitBreaker" | "connection">> & {
  retry?: Partial<UpstreamRouteConfig["retry"]>;
  healthCheck?: Partial<UpstreamRouteConfig["healthCheck"]>;
  outlierDetection?: Partial<UpstreamRouteConfig["outlierDetection"]>;
  circuitBreaker?: Partial<UpstreamRouteConfig["circuitBreaker"]>;
  connection?: Partial<UpstreamRouteConfig["connection"]>;
};

const started: Array<{ close(): Promise<void> } | UpstreamProcess> = [];
const sessions: Http2SessionManager[] = [];
const grpcClients: GenericGrpcClient[] = [];

afterAll(async () => {
  for (const session of sessions) session.abort();
  for (const client of grpcClients) client.close();
  await Promise.all(started.map((s) => ("close" in s ? s.close() : s.stop())));
});

async function gatewayFor(route: RouteInput & { target: string | string[] }): Promise<StartedGateway> {
  const gw = await startGateway({
    upstreams: { routes: [{ match: "test.upstream.v1.*", descriptors: "reflection", ...route } as never] },
  });
  started.push(gw);
  return gw;
}

function connectClient(gw: StartedGateway): Client<typeof EchoService> {
  const sessionManager = new Http2SessionManager(gw.url);
  sessions.push(sessionManager);
  return createClient(EchoService, createConnectTransport({ baseUrl: gw.url, httpVersion: "2", sessionManager }));
}

function grpcClient(gw: StartedGateway): GenericGrpcClient {
  const client = createGrpcJsClient(`127.0.0.1:${gw.port}`, grpcServiceDefinition(EchoService), "EchoService");
  grpcClients.push(client);
  return client;
}

function tally(endpoints: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const endpoint of endpoints) counts[endpoint] = (counts[endpoint] ?? 0) + 1;
  return counts;
}

describe("three replicas, round-robin", () => {
  let replicas: UpstreamProcess[];
  let gw: StartedGateway;

  beforeAll(async () => {
    replicas = await startUpstreams([{ id: "a" }, { id: "b" }, { id: "c" }]);
    started.push(...replicas);
    gw = await gatewayFor({
      target: replicas.map((r) => r.address),
      loadBalancing: "round_robin",
      healthCheck: { intervalMs: 200, timeoutMs: 500, unhealthyThreshold: 1 },
      outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 1_000 },
      retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 },
      connection: { connectTimeoutMs: 1_000 },
    });
  }, 60_000);

  it("spreads sequential calls exactly evenly, on the transcoding path and the gRPC pass-through", async () => {
    const client = connectClient(gw);
    const viaConnect: string[] = [];
    for (let i = 0; i < 30; i++) viaConnect.push((await client.echo({})).endpoint);
    expect(tally(viaConnect)).toEqual({ a: 10, b: 10, c: 10 });

    const grpcJs = grpcClient(gw);
    const viaGrpc: string[] = [];
    for (let i = 0; i < 30; i++) viaGrpc.push((await grpcUnary(grpcJs, EchoService.method.echo, {})).messages[0].endpoint);
    expect(tally(viaGrpc)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it("shares one HTTP/2 connection per endpoint among concurrent calls of each path", async () => {
    const client = connectClient(gw);
    const grpcJs = grpcClient(gw);
    const [transcoded, passedThrough] = await Promise.all([
      Promise.all(Array.from({ length: 30 }, () => client.echo({ delayMs: 20 }))),
      Promise.all(Array.from({ length: 30 }, () => grpcUnary(grpcJs, EchoService.method.echo, { delayMs: 20 }).then((o) => o.messages[0]))),
    ]);
    const peersOf = (responses: ReadonlyArray<{ endpoint: string; peer: string }>) => {
      const peersByEndpoint = new Map<string, Set<string>>();
      for (const response of responses) {
        const peers = peersByEndpoint.get(response.endpoint) ?? new Set<string>();
        peersByEndpoint.set(response.endpoint, peers.add(response.peer));
      }
      return peersByEndpoint;
    };
    const transcodedPeers = peersOf(transcoded);
    const passthroughPeers = peersOf(passedThrough);
    expect([...transcodedPeers.keys()].sort()).toEqual(["a", "b", "c"]);
    expect([...passthroughPeers.keys()].sort()).toEqual(["a", "b", "c"]);
    for (const endpoint of ["a", "b", "c"]) {
      // Transcoded calls use Node's http2 client, the pass-through the gateway's own: one connection each.
      expect(transcodedPeers.get(endpoint)!.size).toBe(1);
      expect(passthroughPeers.get(endpoint)!.size).toBe(1);
      expect(passthroughPeers.get(endpoint)).not.toEqual(transcodedPeers.get(endpoint));
    }
  });

  it("does not retry a call with side effects that reached a replica that died", async () => {
    const client = connectClient(gw);
    const tag = `append-${Date.now()}`;
    // Three concurrent calls, one per replica (round-robin, nothing else running).
    const calls = Array.from({ length: 3 }, () =>
      client.append({ tag, delayMs: 800 }).then(
        (response) => ({ ok: true as const, endpoint: response.endpoint, count: response.count }),
        (error: unknown) => ({ ok: false as const, error: ConnectError.from(error) }),
      ),
    );
    await sleep(300);
    const b = replicas[1];
    await b.kill();
    const outcomes = await Promise.all(calls);
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed).toHaveLength(1);
    expect(failed[0].ok === false && failed[0].error.code).toBe(Code.Unavailable);
    const succeeded = outcomes.flatMap((o) => (o.ok ? [o] : []));
    expect(succeeded.map((o) => o.endpoint).sort()).toEqual(["a", "c"]);
    // Each survivor ran the call exactly once: nothing was replayed onto it.
    expect(succeeded.map((o) => o.count)).toEqual([1, 1]);
    await b.start();
    await sleep(500);
  });

  // Health checks every 200 ms and passive ejection after 2 failed calls both take a dead replica
  // out of rotation. Which of them sees it first depends on timing: a check that lands between the
  // kill and the second failed call marks it unhealthy before it can be ejected (seen once in a
  // loaded full-suite run). So the first case asserts the health checks' part, and the second
  // runs the same load through a gateway without health checks, where ejection must do it alone.
  it("a replica killed under load: only calls it had started answering fail, health checks take it out, and it is used again once back", async () => {
    const { events } = await killReplicaUnderLoad(gw, replicas[1]);
    expect(events).toContain("upstream endpoint unhealthy");
    expect(events).toContain("upstream endpoint healthy");
  }, 30_000);

  it("the same without health checks: passive ejection takes it out, and it is used again once its ejection is over", async () => {
    const withoutHealthChecks = await gatewayFor({
      target: replicas.map((r) => r.address),
      loadBalancing: "round_robin",
      healthCheck: { enabled: false },
      outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 1_000 },
      retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 },
      connection: { connectTimeoutMs: 1_000 },
    });
    const { events, attemptsWhileDown } = await killReplicaUnderLoad(withoutHealthChecks, replicas[1]);
    expect(events).toContain("upstream endpoint ejected");
    expect(events).not.toContain("upstream endpoint unhealthy");
    // Ejection is what kept calls off it: round-robin alone would have sent it a third of the
    // hundreds of attempts made while it was down (retries hide those failures from the callers).
    // Ejected after 2 failures for 1 s, then again for 2 s if still down: a handful at most.
    expect(attemptsWhileDown).toBeLessThanOrEqual(12);
  }, 30_000);
});

/** The gateway's upstream attempts on `endpoint` so far, whatever their outcome (its /metrics). */
async function attemptsOn(gw: StartedGateway, endpoint: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("gateway_upstream_attempts_total{") && line.includes(`endpoint="${endpoint}"`)) total += Number(line.split(" ").pop());
  }
  return total;
}

/**
 * Eight callers (Connect and gRPC pass-through) loop against `gw` while `b` is killed for a second
 * and started again: asserts that only calls `b` had started answering failed, that nothing went
 * to `b` while it was down, and that it served again once back. Returns the gateway's log
 * messages about `b` from the kill on, and its attempts on `b` while `b` was down.
 */
async function killReplicaUnderLoad(gw: StartedGateway, b: UpstreamProcess): Promise<{ events: string[]; attemptsWhileDown: number }> {
  const connect = connectClient(gw);
  const grpcJs = grpcClient(gw);
  const failures: string[] = [];
  // A call is committed once its response headers have arrived (gRPC's retry design, A6): if
  // the replica dies after that and before the trailers, the call fails and may not be retried.
  // Only the few calls in flight on the killed replica at that moment can end so.
  const failedAfterCommit: string[] = [];
  const servedBy: Array<{ at: number; endpoint: string }> = [];
  let running = true;
  const loop = async (call: () => Promise<string>) => {
    while (running) {
      try {
        servedBy.push({ at: Date.now(), endpoint: await call() });
      } catch (error) {
        (error instanceof CommittedFailure ? failedAfterCommit : failures).push(String(error));
      }
    }
  };
  const loops = [
    ...Array.from({ length: 4 }, () =>
      loop(async () => {
        try {
          return (await connect.echo({ delayMs: 5 })).endpoint;
        } catch (error) {
          // Connect's client does not say whether headers had arrived: an unavailable may be committed.
          if (ConnectError.from(error).code === Code.Unavailable) throw new CommittedFailure(String(error));
          throw error;
        }
      }),
    ),
    ...Array.from({ length: 4 }, () =>
      loop(async () => {
        const outcome = await grpcUnary(grpcJs, EchoService.method.echo, { delayMs: 5 });
        if (outcome.status.code === grpc.status.OK) return outcome.messages[0].endpoint;
        const failure = `${outcome.status.code}: ${outcome.status.details}`;
        if (outcome.status.code === grpc.status.UNAVAILABLE && outcome.headers !== undefined) throw new CommittedFailure(failure);
        throw new Error(failure);
      }),
    ),
  ];
  let logStart: number;
  let killedAt: number;
  let restartedAt: number;
  let attemptsWhileDown: number;
  try {
    await sleep(500);
    logStart = gw.logs.length;
    const attemptsBefore = await attemptsOn(gw, b.address);
    await b.kill();
    killedAt = Date.now();
    await sleep(1_000);
    attemptsWhileDown = (await attemptsOn(gw, b.address)) - attemptsBefore;
    // Taken before the restart: b serves as soon as it listens, which may be before start() resolves.
    restartedAt = Date.now();
    await b.start();
    // Back in rotation once its health check passes and its ejection (1 s) is over.
    const until = Date.now() + 8_000;
    while (Date.now() < until && !servedBy.some((s) => s.at > restartedAt && s.endpoint === "b")) await sleep(100);
    await sleep(300);
  } finally {
    // Whatever failed above, the callers stop and the next test finds the replica running.
    running = false;
    await Promise.all(loops);
    const gone = b.child === undefined || b.child.exitCode !== null || b.child.signalCode !== null;
    // Its own failure, if any, shows in the next test; the error that got us here stays the one thrown.
    if (gone) await b.start().catch(() => undefined);
  }

  expect(failures).toEqual([]);
  // 8 calls in flight, round-robin over 3 replicas: at most 3 were on the killed one.
  expect(failedAfterCommit.length).toBeLessThanOrEqual(3);
  const during = servedBy.filter((s) => s.at > killedAt + 200 && s.at < restartedAt);
  expect(during.length).toBeGreaterThan(50);
  expect(during.filter((s) => s.endpoint === "b")).toEqual([]);
  expect(servedBy.filter((s) => s.at > restartedAt && s.endpoint === "b").length).toBeGreaterThan(0);
  const events = gw.logs.slice(logStart).filter((l) => l.endpoint === b.address).map((l) => String(l.msg));
  return { events, attemptsWhileDown };
}

describe("least-request", () => {
  it("favours the fast replica; round-robin would give each a third", async () => {
    const replicas = await startUpstreams([{ id: "fast" }, { id: "slow1", delayMs: 100 }, { id: "slow2", delayMs: 100 }]);
    started.push(...replicas);
    const gw = await gatewayFor({ target: replicas.map((r) => r.address), loadBalancing: "least_request" });
    const client = connectClient(gw);
    const endpoints: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = 0; i < 30; i++) endpoints.push((await client.echo({})).endpoint);
      }),
    );
    const counts = tally(endpoints);
    expect(counts.fast / endpoints.length, JSON.stringify(counts)).toBeGreaterThan(0.5);
  }, 60_000);
});

describe("circuit breaker and errors naming the route", () => {
  let replica: UpstreamProcess;
  beforeAll(async () => {
    [replica] = await startUpstreams([{ id: "solo" }]);
    started.push(replica);
  }, 30_000);

  it("beyond maxConcurrentCalls + maxPendingCalls, calls fail fast with unavailable", async () => {
    const gw = await gatewayFor({ target: replica.address, circuitBreaker: { maxConcurrentCalls: 2, maxPendingCalls: 1 } });
    const client = connectClient(gw);
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, () => {
        const startedAt = Date.now();
        return client.echo({ delayMs: 300 }).then(
          () => ({ ok: true, ms: Date.now() - startedAt, error: undefined }),
          (e: unknown) => ({ ok: false, ms: Date.now() - startedAt, error: ConnectError.from(e) }),
        );
      }),
    );
    expect(outcomes.filter((o) => o.ok)).toHaveLength(3);
    const rejected = outcomes.filter((o) => !o.ok);
    expect(rejected).toHaveLength(3);
    for (const outcome of rejected) {
      expect(outcome.error?.code).toBe(Code.Unavailable);
      expect(outcome.error?.rawMessage).toMatch(/test\.upstream\.v1\.\*.*circuit breaker/);
      expect(outcome.ms).toBeLessThan(200);
    }
  });

  it("no reachable endpoint: unavailable, with a message naming the route", async () => {
    const gw = await gatewayFor({
      target: replica.address,
      healthCheck: { intervalMs: 100, unhealthyThreshold: 1 },
    });
    const client = connectClient(gw);
    await client.echo({});
    await replica.kill();
    const firstError = await client.echo({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(firstError?.code).toBe(Code.Unavailable);
    expect(firstError?.rawMessage).toContain("route test.upstream.v1.*");
    await sleep(400);
    const laterError = await client.echo({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(laterError?.code).toBe(Code.Unavailable);
    expect(laterError?.rawMessage).toMatch(/route test\.upstream\.v1\.\* \(.*\): no healthy upstream endpoint/);
    const viaGrpc = await grpcUnary(grpcClient(gw), EchoService.method.echo, {});
    expect(viaGrpc.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(viaGrpc.status.details).toContain("route test.upstream.v1.*");
    await replica.start();
  });

  it("replaces a connection older than maxConnectionAgeMs, so calls reach new connections", async () => {
    const gw = await gatewayFor({ target: replica.address, connection: { maxConnectionAgeMs: 300 } });
    const client = connectClient(gw);
    const peers = new Set<string>();
    for (let i = 0; i < 12; i++) {
      peers.add((await client.echo({})).peer);
      await sleep(100);
    }
    expect(peers.size).toBeGreaterThanOrEqual(3);
  });
});

/** A call that failed after its response headers arrived: committed, so not retried (see the test above). */
class CommittedFailure extends Error {}
