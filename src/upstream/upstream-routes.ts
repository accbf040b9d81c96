import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import type { DescService, FileRegistry } from "@bufbuild/protobuf";
import type * as http2 from "node:http2";
import type { GatewayConfig } from "../config/gateway-config.js";
import type { UpstreamRouteConfig } from "../config/upstream-config.js";
import type { Logger } from "../ops/logger.js";
import { Cluster } from "./cluster.js";
import { fetchByReflection, GATEWAY_OWNED_SERVICES, loadImages, matchSpecificity } from "./descriptors.js";
import type { ResolveAddresses } from "./dns-discovery.js";
import { createForwardingService } from "./forwarding-service.js";
import { GrpcPassthrough, type PassthroughTarget } from "./grpc-passthrough.js";
import { HeaderPolicy } from "./header-policy.js";
import type { UpstreamMetricsHooks } from "../ops/metrics.js";
import { ClusterTransport, isIdempotent } from "./upstream-transport.js";

/** Services the gateway forwards to upstream servers instead of implementing them. */
export interface UpstreamRoutes {
  /** Every routed service, so health and reflection list them. */
  readonly services: readonly DescService[];
  /** Register a forwarding implementation for each routed service. */
  register(router: ConnectRouter): void;
  /** Raw HTTP/2 pass-through for calls that need no conversion; false leaves the stream to the router. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  /** Stop discovery, health checks and upstream connections. */
  close(): Promise<void>;
  /** The upstream side of each configured route, by its `match` (for tests and diagnostics). */
  readonly clusters: ReadonlyMap<string, Cluster>;
}

/** Seams for tests; production passes none. */
export interface UpstreamDependencies {
  /** Resolves `dns:///` targets instead of each route's configured DNS servers. */
  resolve?: ResolveAddresses;
  /** Counters for attempts, retries, ejections and breaker rejections (src/ops/metrics.ts). */
  metrics?: UpstreamMetricsHooks;
}

interface RoutedService {
  service: DescService;
  cluster: Cluster;
}

/** Load descriptors and start discovery for the configured routes (none configured: nothing to do). */
export async function startUpstreamRoutes(config: GatewayConfig, logger: Logger, deps: UpstreamDependencies = {}): Promise<UpstreamRoutes> {
  const section = config.upstreams;
  const clusters = new Map<string, Cluster>();
  for (const route of section.routes) {
    clusters.set(route.match, new Cluster(route, { logger, maxMessageBytes: config.limits.maxMessageBytes, resolve: deps.resolve, metrics: deps.metrics }));
  }
  let routed: RoutedService[];
  try {
    await Promise.all([...clusters.values()].map((cluster) => cluster.start()));
    routed = await resolveServices(section.routes, clusters, section.images, section.startupTimeoutMs, logger);
  } catch (error) {
    for (const cluster of clusters.values()) cluster.close();
    throw error;
  }

  const passthroughTargets = new Map<string, PassthroughTarget>();
  const implementations: Array<{ service: DescService; implementation: ServiceImpl<DescService> }> = [];
  const transports = new Map<Cluster, ClusterTransport>();
  for (const { service, cluster } of routed) {
    const route = cluster.route;
    let transport = transports.get(cluster);
    if (transport === undefined) transports.set(cluster, (transport = new ClusterTransport(cluster, config.limits.maxMessageBytes)));
    const headers = new HeaderPolicy(route.forwardHeaders);
    implementations.push({
      service,
      implementation: createForwardingService(service, { transport, headers, maxTimeoutMs: route.timeoutMs }),
    });
    if (route.passthrough && route.protocol === "grpc") {
      const idempotentMethods = new Set(route.retry.idempotentMethods);
      for (const method of service.methods) {
        passthroughTargets.set(`/${service.typeName}/${method.name}`, {
          cluster,
          method,
          idempotent: isIdempotent(method, idempotentMethods),
          headers,
          routeMaxTimeoutMs: route.timeoutMs,
          ownClient: route.connection.passthroughClient === "gateway",
        });
      }
    }
  }
  const passthrough = new GrpcPassthrough(passthroughTargets, {
    logger,
    maxMessageBytes: config.limits.maxMessageBytes,
    maxClientTimeoutMs: config.limits.maxTimeoutMs,
  });
  if (routed.length > 0) {
    logger.info(
      {
        routes: [...clusters.values()].map((cluster) => ({
          match: cluster.name,
          target: cluster.target.text,
          endpoints: cluster.knownEndpoints.length,
          services: routed.filter((r) => r.cluster === cluster).map((r) => r.service.typeName),
        })),
      },
      "upstream routes ready",
    );
  }

  return {
    services: routed.map((r) => r.service),
    clusters,
    register(router) {
      const taken = new Set(router.handlers.map((handler) => handler.requestPath));
      for (const { service, implementation } of implementations) {
        if (service.methods.some((method) => taken.has(`/${service.typeName}/${method.name}`))) {
          // A local implementation wins; forwarding would shadow it silently.
          logger.error({ service: service.typeName }, "routed service is also served locally; the route is ignored");
          continue;
        }
        router.service(service, implementation);
      }
    },
    handleStream: (stream, headers) => passthroughTargets.size > 0 && passthrough.handleStream(stream, headers),
    async close() {
      for (const cluster of clusters.values()) cluster.close();
    },
  };
}

/**
 * Every routed service and its route. A service matched by several routes goes to the most
 * specific one (the exact name before the longest package prefix). A route naming a service
 * exactly that no descriptor source knows is a start-up error: the gateway would otherwise
 * answer `unimplemented` for a route its operator believes works.
 */
async function resolveServices(
  routes: readonly UpstreamRouteConfig[],
  clusters: ReadonlyMap<string, Cluster>,
  images: readonly string[],
  startupTimeoutMs: number,
  logger: Logger,
): Promise<RoutedService[]> {
  const bestRoute = (serviceName: string): UpstreamRouteConfig | undefined => {
    let best: UpstreamRouteConfig | undefined;
    let bestScore = -1;
    for (const route of routes) {
      const score = matchSpecificity(route.match, serviceName);
      if (score > bestScore) [best, bestScore] = [route, score];
    }
    return best;
  };
  const routed = new Map<string, RoutedService>();
  const take = (registry: FileRegistry, names: Iterable<string>, from: (route: UpstreamRouteConfig) => boolean) => {
    for (const name of names) {
      const route = bestRoute(name);
      if (route === undefined || !from(route) || GATEWAY_OWNED_SERVICES.has(name) || routed.has(name)) continue;
      const service = registry.getService(name);
      if (service !== undefined) routed.set(name, { service, cluster: clusters.get(route.match)! });
    }
  };

  if (routes.some((route) => route.descriptors === "image")) {
    const registry = await loadImages(images);
    const names: string[] = [];
    for (const type of registry) if (type.kind === "service") names.push(type.typeName);
    take(registry, names, (route) => route.descriptors === "image");
  }
  await Promise.all(
    routes
      .filter((route) => route.descriptors === "reflection")
      .map(async (route) => {
        const cluster = clusters.get(route.match)!;
        const { registry, serviceNames } = await reflectWithRetry(cluster, startupTimeoutMs, logger);
        take(registry, serviceNames, (r) => r === route);
      }),
  );

  for (const route of routes) {
    const count = [...routed.values()].filter((r) => r.cluster.route === route).length;
    if (count > 0) continue;
    const where = route.descriptors === "image" ? `the images (${images.join(", ")})` : `the reflection of ${route.target}`;
    if (!route.match.endsWith(".*")) {
      throw new ConnectError(`upstream route ${route.match}: no such service in ${where}`, Code.FailedPrecondition);
    }
    logger.warn({ route: route.match }, `upstream route matches no service in ${where}`);
  }
  return [...routed.values()];
}

/** Server reflection from any endpoint of the cluster, retried while the upstream may still be starting. */
async function reflectWithRetry(cluster: Cluster, startupTimeoutMs: number, logger: Logger) {
  const deadline = Date.now() + startupTimeoutMs;
  const wanted = (name: string) => matchSpecificity(cluster.name, name) >= 0;
  let lastError: unknown = new ConnectError("no endpoint known", Code.Unavailable);
  for (let round = 0; Date.now() < deadline; round++) {
    for (const endpoint of cluster.knownEndpoints) {
      try {
        const remaining = Math.max(1, deadline - Date.now());
        return await fetchByReflection(endpoint.transport, wanted, Math.min(remaining, 5_000), endpoint.address);
      } catch (error) {
        lastError = error;
        const code = ConnectError.from(error).code;
        // A reachable upstream without reflection will not grow it by waiting.
        if (code === Code.Unimplemented || code === Code.FailedPrecondition) break;
        logger.debug({ route: cluster.name, endpoint: endpoint.address, err: error }, "upstream reflection failed; retrying");
      }
    }
    if (ConnectError.from(lastError).code === Code.Unimplemented || ConnectError.from(lastError).code === Code.FailedPrecondition) break;
    await sleep(Math.min(1_000, 100 * 2 ** round));
  }
  throw new ConnectError(
    `upstream route ${cluster.name}: cannot read descriptors by server reflection from ${cluster.target.text}`,
    Code.FailedPrecondition,
    undefined,
    undefined,
    lastError,
  );
}
