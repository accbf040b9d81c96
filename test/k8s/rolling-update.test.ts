import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as https from "node:https";
import type { LookupFunction } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway-process.js";
import { grpcBidiLockStep, grpcServerStream, grpcServiceDefinition, grpcUnary, type GenericGrpcClient } from "../support/grpc-js-client.js";
import { freePort, ingressNginxConfig, startNginx, type Endpoints, type RunningNginx } from "../support/k8s-ingress-nginx.js";
import { findOne, renderAllVariants, requireTool } from "../support/k8s-overlays.js";
import { effectiveConfig, gatewayPod, localProcessEnv } from "../support/k8s-pod.js";

// A rolling-update rehearsal without a cluster. Two gateway processes play two pods; Debian's
// nginx plays ingress-nginx, configured from the rendered Ingress objects (gRPC host with
// grpc_pass over h2c, api host with proxy_pass over HTTP/1.1, TLS at the edge). Under load of
// every call shape over both hosts, one pod is terminated the way Kubernetes does it, with the
// timings from the manifest: the pod turns Terminating, its endpoint leaves the proxy's
// upstreams shortly after while the preStop sleep keeps it serving, then SIGTERM starts the
// gateway's drain (stop accepting, finish what is in flight, exit 0). Not one call may fail.
// Then a stale endpoint (a pod gone before the controller noticed): the proxy meets refused
// connections and retries them on the other pod, again without a failed call. Finally the pod
// starts again, passes its readiness probe, gets its endpoint back and takes traffic.
//
// Not rehearsed: SIGTERM reaching a pod that a proxy still sends calls to (a preStop sleep
// shorter than the endpoint propagation). The gateway then closes idle keep-alive connections
// and sends GOAWAY while the proxy may be writing a new request on them; nginx does not retry a
// POST it has already sent, so an occasional call fails with 502. That race is what the preStop
// sleep is there to prevent.

const variant = renderAllVariants().find((v) => v.name === "prod with components/ingress")!;
const pod = gatewayPod(variant.objects);
const ingresses = variant.objects.filter((o) => o.kind === "Ingress");
const service = findOne(variant.objects, "Service", "connect-gateway");
const hostOf = (backendProtocol: string) =>
  (ingresses.find((i) => ((i.metadata.annotations ?? {}) as Record<string, string>)["nginx.ingress.kubernetes.io/backend-protocol"] === backendProtocol)!
    .spec as { rules: Array<{ host: string }> }).rules[0].host;
const grpcHost = hostOf("GRPC");
const apiHost = hostOf("HTTP");
/** How long after the pod turns Terminating its endpoint leaves the proxy: inside the preStop sleep. */
const endpointRemovalLagMs = 1_000;

interface Failure {
  kind: string;
  atMs: number;
  error: string;
}

describe("rolling update behind an ingress-nginx-style proxy", () => {
  const dir = mkdtempSync(join(tmpdir(), "k8s-rollout-"));
  const scratch = mkdtempSync(join(tmpdir(), "k8s-rollout-config-"));
  let nginx: RunningNginx | undefined;
  const gateways: GatewayProcess[] = [];
  /** Every gateway process started, for the cleanup. */
  const started: GatewayProcess[] = [];
  let certFile = "";
  let keyFile = "";
  let edgePort = 0;
  let ports: number[] = [];

  const endpoints = (addresses: number[]): Endpoints => {
    const list = addresses.map((p) => `127.0.0.1:${p}`);
    return new Map(((service.spec as { ports: Array<{ name: string }> }).ports).map((p) => [`${String(service.metadata.name)}/${p.name}`, list]));
  };
  const nginxConfig = (ready: number[]) =>
    ingressNginxConfig({ ingresses, services: [service], endpoints: endpoints(ready), listenPort: edgePort, certFile, keyFile, dir });

  const startPod = async (port: number) => {
    const gw = await startGatewayProcess({ ...localProcessEnv(pod, scratch), GATEWAY_PORT: String(port) });
    started.push(gw);
    // The startup and readiness probes: the endpoint is added only once /readyz says 200.
    const probe = pod.container.readinessProbe.httpGet.path as string;
    for (let i = 0; ; i++) {
      const res = await fetch(`http://127.0.0.1:${port}${probe}`).catch(() => undefined);
      if (res?.status === 200) break;
      if (i > 100) throw new Error(`${probe} never turned 200`);
      await sleep(50);
    }
    return gw;
  };

  beforeAll(async () => {
    requireTool("openssl", "Debian package openssl");
    certFile = join(dir, "edge.pem");
    keyFile = join(dir, "edge-key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${apiHost}`,
      "-addext", `subjectAltName=DNS:${grpcHost},DNS:${apiHost}`, "-keyout", keyFile, "-out", certFile,
    ], { stdio: "ignore" });
    edgePort = await freePort();
    ports = [await freePort(), await freePort()];
    // gateways[i] listens on ports[i].
    gateways.push(...(await Promise.all(ports.map((port) => startPod(port)))));
    nginx = await startNginx(dir, nginxConfig(ports), edgePort);
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    for (const gw of started) if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  it("terminating a pod under load fails no call, and the restarted pod takes traffic", async () => {
    const cert = readFileSync(certFile);
    const config = effectiveConfig(pod, scratch);
    const lookup: LookupFunction = (_hostname, options, callback) => {
      // Every edge host name is this machine's nginx.
      if ((options as { all?: boolean }).all) (callback as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: "127.0.0.1", family: 4 }]);
      else callback(null, "127.0.0.1", 4);
    };
    // New connections for every HTTP/1.1 call: endpoint changes reload nginx here (ingress-nginx
    // applies them without a reload), and a reload closes idle client keep-alive connections —
    // a race between this test's client and nginx that says nothing about the gateway.
    const agent = new https.Agent({ keepAlive: false, ca: cert, lookup });
    const nodeOptions = { agent, ca: cert, lookup };
    const baseUrl = `https://${apiHost}:${edgePort}`;
    const connect = createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions });
    const grpcWeb = createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions });
    const grpcClient = (definition: grpc.ServiceDefinition, name: string) => {
      const Client = grpc.makeGenericClientConstructor(definition, name);
      return new Client(`127.0.0.1:${edgePort}`, grpc.credentials.createSsl(cert), {
        "grpc.ssl_target_name_override": grpcHost,
        "grpc.default_authority": grpcHost,
      }) as unknown as GenericGrpcClient;
    };
    const grpcCalculator = grpcClient(grpcServiceDefinition(CalculatorService), "CalculatorService");
    const grpcGreeter = grpcClient(grpcServiceDefinition(GreeterService), "GreeterService");

    const startedAt = performance.now();
    const failures: Failure[] = [];
    const counts: Record<string, number> = {};
    let running = true;
    const record = async (kind: string, call: () => Promise<void>) => {
      try {
        await call();
        counts[kind] = (counts[kind] ?? 0) + 1;
      } catch (error) {
        failures.push({ kind, atMs: Math.round(performance.now() - startedAt), error: error instanceof Error ? error.message : String(error) });
      }
    };
    const loop = async (kind: string, call: () => Promise<void>, pauseMs: number) => {
      while (running) {
        await record(kind, call);
        await sleep(pauseMs);
      }
    };
    const grpcOk = (outcome: { status: grpc.StatusObject }) => {
      if (outcome.status.code !== grpc.status.OK) throw new Error(`gRPC ${grpc.status[outcome.status.code]}: ${outcome.status.details}`);
    };

    // Long server streams first: nginx's round robin puts every other one on each pod, so some
    // are open on the terminated pod when SIGTERM arrives and must finish within the drain.
    const longStreamMessages = Math.ceil(((pod.preStopSeconds + 3) * 1000) / 250);
    const longStreams = Array.from({ length: 4 }, () =>
      record("gRPC long server stream", async () => {
        const outcome = await grpcServerStream(grpcGreeter, GreeterService.method.greetStream, { name: "long", count: longStreamMessages, intervalMs: 250 }, { guardMs: 30_000 });
        grpcOk(outcome);
        if (outcome.messages.length !== longStreamMessages) throw new Error(`${outcome.messages.length} of ${longStreamMessages} messages`);
      }),
    );
    await sleep(200);

    const calculator = createClient(CalculatorService, grpcWeb);
    const greeter = createClient(GreeterService, connect);
    const loops = [
      ...[1, 2, 3].map((n) =>
        loop("gRPC unary", async () => {
          const outcome = await grpcUnary(grpcCalculator, CalculatorService.method.divide, { dividend: n * 10, divisor: 4 });
          grpcOk(outcome);
          if (outcome.messages[0]?.quotient !== (n * 10) / 4) throw new Error("wrong quotient");
        }, 5),
      ),
      loop("gRPC server stream", async () => {
        const outcome = await grpcServerStream(grpcGreeter, GreeterService.method.greetStream, { name: "s", count: 4, intervalMs: 100 });
        grpcOk(outcome);
        if (outcome.messages.length !== 4) throw new Error(`${outcome.messages.length} of 4 messages`);
      }, 20),
      loop("gRPC bidi stream", async () => {
        const outcome = await grpcBidiLockStep(grpcCalculator, CalculatorService.method.accumulate, [{ number: 1n }, { number: 2n }, { number: 3n }]);
        grpcOk(outcome);
        if (outcome.messages.map((m) => Number(m.total)).join() !== "1,3,6") throw new Error("wrong running totals");
      }, 20),
      ...[1, 2].map(() =>
        loop("Connect unary (JSON, HTTP/1.1)", async () => {
          const res = await greeter.greet({ name: "Ada" });
          if (res.greeting !== "Hello, Ada!") throw new Error(`unexpected greeting ${res.greeting}`);
        }, 10),
      ),
      loop("Connect server stream (HTTP/1.1)", async () => {
        let received = 0;
        for await (const _ of greeter.greetStream({ name: "s", count: 3, intervalMs: 100 })) received++;
        if (received !== 3) throw new Error(`${received} of 3 messages`);
      }, 20),
      loop("gRPC-web unary (HTTP/1.1)", async () => {
        const res = await calculator.divide({ dividend: 9, divisor: 3 });
        if (res.quotient !== 3) throw new Error("wrong quotient");
      }, 10),
    ];

    const [podA, podB] = gateways;
    const rpcLines = (gw: GatewayProcess, from = 0) => gw.logs.slice(from).filter((l) => l.msg === "rpc");
    // Calls nginx tried on more than one upstream address: "upstream=127.0.0.1:1, 127.0.0.1:2".
    const retriedCalls = () => nginx!.accessLog().filter((l) => /upstream=\S+, /.test(l)).length;
    await sleep(1_500);
    expect(rpcLines(podA).length, "pod A served calls before the rollout").toBeGreaterThan(10);
    expect(rpcLines(podB).length, "pod B served calls before the rollout").toBeGreaterThan(10);

    // Pod B turns Terminating: the preStop sleep starts, and its endpoint leaves the proxy shortly after.
    const terminatingAt = performance.now();
    const servedBeforeTerminating = rpcLines(podB).length;
    await sleep(endpointRemovalLagMs);
    // Until the endpoint is gone, calls still arrive, and the pod (still in preStop) serves them.
    expect(rpcLines(podB).length, "served while Terminating").toBeGreaterThan(servedBeforeTerminating);
    await nginx!.reload(nginxConfig([ports[0]]));
    const retriesBefore = retriedCalls();
    await sleep(pod.preStopSeconds * 1000 - (performance.now() - terminatingAt));
    podB.child.kill("SIGTERM");
    const sigtermAt = performance.now();
    const sigtermLogIndex = podB.logs.length;
    const exitCode = await podB.exited;
    const drainMs = performance.now() - sigtermAt;
    expect(exitCode).toBe(0);
    // The kubelet would SIGKILL after terminationGracePeriodSeconds, counted from the start.
    expect((performance.now() - terminatingAt) / 1000).toBeLessThan(pod.terminationGracePeriodSeconds);
    expect(drainMs).toBeLessThan(config.shutdown.graceMs);
    const drained = rpcLines(podB, sigtermLogIndex);
    expect(drained.some((l) => l.method === "demo.v1.GreeterService/GreetStream" && l.code === "ok"), "a long stream finished during the drain").toBe(true);
    expect(podB.logs.some((l) => l.msg === "stopped")).toBe(true);
    // The endpoint left before SIGTERM: the proxy never met a closed pod, so it never retried.
    expect(retriedCalls()).toBe(retriesBefore);

    // A stale endpoint: the pod is gone but still in the proxy's upstreams.
    await nginx!.reload(nginxConfig(ports));
    await sleep(1_000);
    await nginx!.reload(nginxConfig([ports[0]]));
    expect(retriedCalls(), "nginx retried the refused connections on the other pod").toBeGreaterThan(retriesBefore);

    // The replacement pod: same address, probed ready, then its endpoint comes back.
    const podB2 = await startPod(ports[1]);
    await nginx!.reload(nginxConfig(ports));
    await sleep(2_000);
    running = false;
    await Promise.all([...loops, ...longStreams]);
    grpcCalculator.close();
    grpcGreeter.close();
    agent.destroy();

    const byProtocol = (gw: GatewayProcess) => new Set(rpcLines(gw).map((l) => l.protocol));
    expect(failures, JSON.stringify(failures.slice(0, 5), null, 2)).toEqual([]);
    for (const kind of ["gRPC unary", "gRPC server stream", "gRPC bidi stream", "Connect unary (JSON, HTTP/1.1)", "Connect server stream (HTTP/1.1)", "gRPC-web unary (HTTP/1.1)"]) {
      expect(counts[kind] ?? 0, kind).toBeGreaterThan(3);
    }
    expect(counts["gRPC long server stream"]).toBe(4);
    expect(rpcLines(podB2).length, "the restarted pod took traffic").toBeGreaterThan(10);
    expect([...byProtocol(podB2)].sort()).toEqual(["connect", "grpc", "grpc-web"]);
    // And nginx passed no upstream error on to a client.
    expect(nginx!.accessLog().filter((l) => / 5\d\d upstream=/.test(l))).toEqual([]);
    podB2.child.kill("SIGTERM");
    podA.child.kill("SIGTERM");
    await Promise.all([podB2.exited, podA.exited]);
  }, 60_000);
});
