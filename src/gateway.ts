import type * as http2 from "node:http2";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import type { GatewayConfig } from "./config/gateway-config.js";
import { defaultInterceptors } from "./interceptors/default-chain.js";
import { createHealthEndpoints } from "./ops/health-endpoints.js";
import { createHealthService } from "./ops/health-service.js";
import { HealthStatusRegistry, ServingStatus } from "./ops/health-status.js";
import type { Logger } from "./ops/logger.js";
import { Readiness } from "./ops/readiness.js";
import { registerReflection } from "./ops/reflection-service.js";
import type { HttpRequest, HttpResponse } from "./server/http-types.js";
import { nodeHeaderValue } from "./server/fast-path/node-headers-view.js";
import { createRpcDispatcher, type ConnectRefusal, type RpcDispatcher } from "./server/rpc-dispatcher.js";
import { logRefusedCall, type RefusedCall } from "./interceptors/refusal-log.js";
import { rpcProtocolOf } from "./interceptors/rpc-protocol.js";
import { REQUEST_ID_HEADER } from "./interceptors/request-id.js";
import { startUpstreamRoutes, type UpstreamRoutes } from "./upstream/upstream-routes.js";
import type { Http1ExchangeHandler } from "./http1/lean-connections.js";
import { SinglePortServer, type StreamHandler } from "./server/single-port-server.js";
import { answerUnknownProcedure } from "./server/unknown-procedure.js";
import { createWebApp } from "./server/web-app.js";
import { demoServices, registerDemoServices } from "./services/demo-services.js";
import { createCors } from "./web/cors.js";
import { createWebPages } from "./web/web-pages.js";
import { GatewayMetrics } from "./ops/metrics.js";
import { setUpTracing } from "./ops/tracing.js";
import { PEER_HEADER } from "./security/identity.js";
import { createSecurity } from "./security/request-gate.js";

/** A running (or ready to run) gateway: one port, every protocol, health, reflection and graceful shutdown. */
export interface Gateway {
  readonly readiness: Readiness;
  readonly health: HealthStatusRegistry;
  /** Fully-qualified names of every RPC service served. */
  readonly serviceNames: readonly string[];
  /** Bind the configured port (0 picks a free one) and start taking traffic. */
  listen(): Promise<AddressInfo>;
  /** Graceful shutdown: not ready, refuse new connections, drain calls within the grace period, close. */
  shutdown(): Promise<void>;
  /** Calls currently being served. */
  inFlightCalls(): number;
}

/** Assemble the gateway from a validated configuration. */
export function createGateway(config: GatewayConfig, logger: Logger): Gateway {
  const health = new HealthStatusRegistry();
  const readiness = new Readiness(health);
  const shutdownController = new AbortController();
  const drainController = new AbortController();

  const served: DescService[] = [...demoServices, Health];
  let upstream: UpstreamRoutes | undefined;
  const routes = (router: ConnectRouter) => {
    registerDemoServices(router);
    upstream?.register(router);
    router.service(Health, createHealthService(health, drainController.signal));
    if (config.reflection.enabled) served.push(...registerReflection(router, served));
  };

  const metrics = config.observability.metrics.enabled ? new GatewayMetrics(config.observability.metrics) : undefined;
  const security = createSecurity(config.security, { logger, metrics });
  const tracing = setUpTracing(config.observability.tracing);
  const plainRoutes = createHealthEndpoints(readiness);
  if (metrics) plainRoutes["/metrics"] = metrics.handler();
  const webApp = createWebApp(plainRoutes);
  const webPages = createWebPages({ config: config.web, services: () => served, upstreamServices: () => upstream?.services ?? [] });
  const cors = createCors(config.web.cors);
  // A request refused before the interceptors ran: the access log's line for it.
  const logRefusedRequest = (req: HttpRequest, call: Omit<RefusedCall, "httpMethod" | "header">) =>
    logRefusedCall(logger, { ...call, httpMethod: req.method ?? "", header: (name) => nodeHeaderValue(req.headers, name) });
  const notRpc = (req: HttpRequest, res: HttpResponse) => {
    const requestId = answerUnknownProcedure(req, res);
    if (requestId !== undefined) {
      logRefusedRequest(req, {
        requestId,
        method: (req.url ?? "/").split("?", 1)[0],
        code: Code.Unimplemented,
        reason: "unknown procedure",
        httpStatus: res.statusCode === 200 ? undefined : res.statusCode,
      });
      return;
    }
    if (webPages?.(req, res)) return;
    if (req.httpVersionMajor === 1) {
      webApp(req as IncomingMessage, res as unknown as ServerResponse);
      return;
    }
    // express cannot serve HTTP/2 requests; the ops endpoints are plain handlers that can.
    const path = (req.url ?? "/").split("?", 1)[0];
    const handler = req.method === "GET" ? plainRoutes[path] : undefined;
    if (handler) handler(req, res);
    else {
      res.statusCode = 404;
      res.end();
    }
  };

  // Built in listen(), once the upstream routes (and their descriptors) are known.
  let rpc: RpcDispatcher | undefined;
  const createDispatcher = () => createRpcDispatcher({
    routes,
    fallback: notRpc,
    onRefused: ({ req, res, method, status }) => {
      metrics?.seriesFor(method, rpcProtocolOf(nodeHeaderValue(req.headers, "content-type"))).refused(Code.Unknown);
      const requestId = logRefusedRequest(req, {
        method: `${method.parent.typeName}/${method.name}`,
        code: Code.Unknown,
        reason: refusalReason(req, status),
        httpStatus: status,
      });
      res.setHeader(REQUEST_ID_HEADER, requestId);
    },
    fastPath: config.fastPath.enabled,
    logger,
    router: {
      interceptors: defaultInterceptors({ logger, metrics, services: served, tracer: tracing?.tracer }),
      requestGate: security.gate,
      // gzip is what gRPC and Connect clients commonly offer; brotli for browsers using Connect.
      acceptCompression: [compressionGzip, compressionBrotli],
      readMaxBytes: config.limits.maxMessageBytes,
      writeMaxBytes: config.limits.maxMessageBytes,
      // connect treats 0 as "no deadline may be set"; our 0 means "no maximum".
      maxTimeoutMs: config.limits.maxTimeoutMs === 0 ? undefined : config.limits.maxTimeoutMs,
      shutdownSignal: shutdownController.signal,
    },
  });

  let inFlight = 0;
  let drained: (() => void) | undefined;
  // One listener for every call: "close" fires once per stream or response.
  const untrack = () => {
    inFlight--;
    if (inFlight === 0) drained?.();
  };
  const track = (call: { on(event: "close", listener: () => void): unknown }) => {
    inFlight++;
    call.on("close", untrack);
  };
  const onRequest = (req: HttpRequest, res: HttpResponse) => {
    track(res);
    // Always overwritten: a client cannot choose the address it is logged and rate limited by.
    req.headers[PEER_HEADER] = req.socket.remoteAddress;
    if (cors?.handle(req, res)) return;
    rpc!.handleRequest(req, res);
  };
  const onStream: StreamHandler = (stream, headers, rawHeaders) => {
    if (cors?.needsRequestApi(headers)) return false;
    headers[PEER_HEADER] = peerAddressOf(stream.session);
    // The gRPC pass-through skips the router's request gate, so with a gate its calls take the router's forwarding path.
    const passthrough = security.gate === undefined && upstream!.handleStream(stream, headers);
    if (!passthrough && !rpc!.handleStream(stream, headers, rawHeaders)) return false;
    track(stream);
    return true;
  };

  const onHttp1Exchange: Http1ExchangeHandler = (exchange) => {
    // While draining, node:http answers, with Connection: close (SinglePortServer sees to it).
    if (!readiness.isReady || cors?.needsRequestApi(exchange.headers)) return false;
    exchange.headers[PEER_HEADER] = exchange.remoteAddress;
    if (!rpc!.handleHttp1Exchange(exchange)) return false;
    track(exchange);
    return true;
  };

  const server = new SinglePortServer({
    onRequest,
    onStream,
    // Without the fast path every request would be handed over to node:http: no use parsing twice.
    onHttp1Exchange: config.fastPath.enabled && config.fastPath.leanHttp1 ? onHttp1Exchange : undefined,
    leanHttp2: config.fastPath.enabled && config.fastPath.leanHttp2,
    logger,
    limits: config.limits,
    tls: config.tls && {
      cert: readFileSync(config.tls.certFile),
      key: readFileSync(config.tls.keyFile),
      clientCa: config.security.clientCertificates && readFileSync(config.security.clientCertificates.caFile),
    },
  });


  let shuttingDown: Promise<void> | undefined;
  return {
    readiness,
    health,
    get serviceNames() {
      return served.map((s) => s.typeName);
    },
    async listen() {
      upstream = await startUpstreamRoutes(config, logger, { metrics: metrics?.upstream });
      if (metrics) {
        const clusters = upstream.clusters;
        metrics.addUpstreamState(function* () {
          const now = Date.now();
          for (const cluster of clusters.values()) {
            for (const e of cluster.knownEndpoints) {
              yield { route: cluster.name, endpoint: e.address, healthy: e.healthy, ejected: e.isEjected(now), inFlight: e.inFlight };
            }
          }
        });
      }
      served.push(...upstream.services);
      rpc = createDispatcher();
      for (const service of served) health.set(service.typeName, ServingStatus.NOT_SERVING);
      health.set("", ServingStatus.NOT_SERVING);
      const address = await server.listen(config.port, config.host);
      readiness.markReady();
      logger.info({ address: address.address, port: address.port, tls: Boolean(config.tls) }, "listening");
      logger.flush();
      return address;
    },
    inFlightCalls: () => inFlight,
    shutdown() {
      shuttingDown ??= (async () => {
        logger.info({ inFlight, graceMs: config.shutdown.graceMs }, "draining");
        readiness.markDraining();
        drainController.abort();
        server.stopAccepting();
        if (inFlight > 0) {
          const allDone = new Promise<void>((resolve) => (drained = resolve));
          await Promise.race([allDone, sleep(config.shutdown.graceMs, undefined, { ref: false })]);
        }
        if (inFlight > 0) {
          logger.warn({ inFlight }, "grace period over: cancelling the remaining calls");
          shutdownController.abort(new ConnectError("the server is shutting down", Code.Unavailable));
          await sleep(250);
        }
        server.destroyAll();
        await upstream?.close();
        await security.close();
        await tracing?.shutdown();
        logger.info("stopped");
      })();
      return shuttingDown;
    },
  };
}

/** Why connect-node refused a call before it ran, for the access log. */
function refusalReason(req: HttpRequest, status: ConnectRefusal["status"]): string {
  if (status === 405) return `HTTP method ${req.method} not allowed`;
  if (status === 505) return "a call streaming both ways needs HTTP/2";
  if (req.method === "GET") {
    const encoding = new URLSearchParams((req.url ?? "").split("?")[1] ?? "").get("encoding") ?? "";
    return `unsupported Connect GET encoding ${JSON.stringify(encoding)}`;
  }
  return `unsupported content-type ${JSON.stringify(req.headers["content-type"] ?? "")}`;
}

/** Where a session keeps its client's address: http2's socket proxy is too slow to ask per stream. */
const PEER_ADDRESS = Symbol("peer address");

/** The client address of an HTTP/2 connection, read once per connection. */
function peerAddressOf(session: (http2.Http2Session & { [PEER_ADDRESS]?: string }) | undefined): string | undefined {
  if (session === undefined) return undefined;
  return (session[PEER_ADDRESS] ??= session.socket?.remoteAddress);
}
