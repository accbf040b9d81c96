import { setTimeout as sleep } from "node:timers/promises";
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { UpstreamRouteConfig } from "../config/upstream-config.js";
import type { Logger } from "../ops/logger.js";
import { createBalancer, type Balancer } from "./balancer.js";
import { CircuitBreaker, type ReleaseSlot } from "./circuit-breaker.js";
import { createDnsResolver, DnsDiscovery, type ResolveAddresses } from "./dns-discovery.js";
import { Endpoint } from "./endpoint.js";
import { backoffMs, RetryBudget } from "./retry-budget.js";
import { formatAddress, parseTarget, type EndpointAddress, type UpstreamTarget } from "./target.js";
import { markNotSent, upstreamError, wasNotSent } from "./upstream-errors.js";
import type { UpstreamMetricsHooks } from "../ops/metrics.js";
import { endSpan, startAttemptSpan, withSpan } from "../ops/tracing.js";

/**
 * What the cluster needs of a call's cancellation: an AbortSignal has this shape, and so has the
 * gRPC pass-through's cheaper one (an AbortController per call is measurable there).
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** What one upstream call asks of the cluster. */
export interface UpstreamCallOptions {
  /** `pkg.Service/Method`, for errors and logs. */
  method: string;
  /** The client's cancellation. */
  signal: CancelSignal | undefined;
  /** Time the call may take in total (all attempts and backoff); undefined: no deadline. */
  timeoutMs: number | undefined;
  /** The method may run twice without harm (idempotency_level or configured). */
  idempotent: boolean;
  /** The request can be sent again (it is fully known, not a stream being consumed). */
  replayable: boolean;
  /**
   * The attempt opens its connection itself (the pass-through's own HTTP/2 client) and reports a
   * failure to connect as "not sent": the cluster then skips connecting the endpoint's Node session.
   */
  connectsItself?: boolean;
}

/** One attempt against one endpoint; `timeoutMs` is what is left of the call's deadline. */
export type AttemptFn<T> = (endpoint: Endpoint, timeoutMs: number | undefined) => Promise<T>;

/** A successful attempt, and the hook to call when the call (a stream: its last message) ends. */
export interface Leased<T> {
  value: T;
  endpoint: Endpoint;
  /** Report the call's outcome and give its endpoint and breaker slot back; idempotent. */
  finish(error?: unknown): void;
}

export interface ClusterDependencies {
  logger: Logger;
  maxMessageBytes: number;
  /** Resolver for `dns:///` targets; the default asks the route's configured DNS servers. */
  resolve?: ResolveAddresses;
  metrics?: UpstreamMetricsHooks;
}

/**
 * The upstream side of one route: its endpoints (from DNS or a static list), how calls pick one
 * (balancer), and what keeps calls away from bad ones (health checks, outlier ejection, circuit
 * breaker, retries within a budget).
 */
export class Cluster {
  readonly name: string;
  readonly target: UpstreamTarget;
  private endpoints: Endpoint[] = [];
  private readonly balancer: Balancer;
  private readonly breaker: CircuitBreaker;
  private readonly budget: RetryBudget;
  private readonly discovery: DnsDiscovery | undefined;
  private readonly healthTimers = new Map<Endpoint, NodeJS.Timeout>();
  private readonly tlsFiles: { ca?: Buffer; cert?: Buffer; key?: Buffer; serverName?: string } | undefined;
  private closed = false;

  constructor(
    readonly route: UpstreamRouteConfig,
    private readonly deps: ClusterDependencies,
  ) {
    this.name = route.match;
    this.target = parseTarget(route.target);
    this.balancer = createBalancer(route.loadBalancing);
    this.breaker = new CircuitBreaker(route.match, route.circuitBreaker.maxConcurrentCalls, route.circuitBreaker.maxPendingCalls);
    this.budget = new RetryBudget(route.retry.budgetRatio, route.retry.minRetriesPerSecond);
    this.tlsFiles = route.tls && {
      ca: route.tls.caFile === undefined ? undefined : readFileSync(route.tls.caFile),
      cert: route.tls.certFile === undefined ? undefined : readFileSync(route.tls.certFile),
      key: route.tls.keyFile === undefined ? undefined : readFileSync(route.tls.keyFile),
      serverName: route.tls.serverName ?? (this.target.kind === "dns" ? this.target.host : undefined),
    };
    if (this.target.kind === "dns") {
      const { host, port } = this.target;
      this.discovery = new DnsDiscovery({
        host,
        resolve: deps.resolve ?? createDnsResolver(route.dns.servers, route.dns.timeoutMs),
        refreshIntervalMs: route.dns.refreshIntervalMs,
        onChange: (addresses) => this.setEndpoints(addresses.map((ip) => ({ host: ip, port }))),
        logger: deps.logger,
      });
    }
  }

  /** Resolve the endpoints (the first DNS answer) and start health checks. */
  async start(): Promise<void> {
    if (this.target.kind === "static") this.setEndpoints(this.target.addresses);
    else await this.discovery!.start();
  }

  /** Every endpoint currently known, for reflection at start-up and for tests. */
  get knownEndpoints(): readonly Endpoint[] {
    return this.endpoints;
  }

  /** Stop discovery and health checks and close every connection (open calls are cancelled). */
  close(): void {
    this.closed = true;
    this.discovery?.close();
    for (const timer of this.healthTimers.values()) clearTimeout(timer);
    this.healthTimers.clear();
    for (const endpoint of this.endpoints) endpoint.sessions.abort();
  }

  /**
   * Run a call against the cluster: admit it through the circuit breaker, pick an endpoint, and
   * retry on another one when that is safe (nothing was sent; or the method is idempotent, the
   * request replayable and the status `unavailable`) and the retry budget allows.
   */
  async invoke<T>(options: UpstreamCallOptions, attempt: AttemptFn<T>): Promise<Leased<T>> {
    const startedAt = Date.now();
    const deadline = options.timeoutMs === undefined ? undefined : startedAt + options.timeoutMs;
    let release: ReleaseSlot;
    const metrics = this.deps.metrics;
    try {
      const slot = this.breaker.acquire(options.signal);
      release = slot instanceof Promise ? await slot : slot;
    } catch (error) {
      if (!options.signal?.aborted) metrics?.breakerRejection(this.name);
      throw error;
    }
    this.budget.recordCall();
    const tried = new Set<Endpoint>();
    const policy = this.route.retry;
    for (let attemptNumber = 1; ; attemptNumber++) {
      const endpoint = this.pick(tried);
      if (endpoint === undefined) {
        release();
        this.discovery?.refreshSoon();
        throw this.noEndpointError();
      }
      tried.add(endpoint);
      if (attemptNumber > 1) metrics?.retry(this.name);
      endpoint.inFlight++;
      let started = false;
      try {
        if (options.connectsItself !== true && !endpoint.sessions.isConnected) {
          const failure = await endpoint.sessions.connect();
          if (failure !== undefined) throw markNotSent(ConnectError.from(failure, Code.Unavailable));
        }
        const remaining = deadline === undefined ? undefined : deadline - Date.now();
        if (remaining !== undefined && remaining <= 0) throw this.deadlineError(options, attemptNumber);
        started = true;
        const span = startAttemptSpan(options.method, endpoint.address, attemptNumber);
        let value: T;
        try {
          value = await withSpan(span, () => attempt(endpoint, remaining));
        } catch (error) {
          if (span !== undefined) endSpan(span, ConnectError.from(error).code, ConnectError.from(error).rawMessage);
          throw error;
        }
        let finished = false;
        return {
          value,
          endpoint,
          finish: (error?: unknown) => {
            if (finished) return;
            finished = true;
            endpoint.inFlight--;
            const failure = error === undefined ? undefined : upstreamError(error, endpoint.address, options.signal);
            metrics?.attempt(this.name, endpoint.address, failure?.code ?? 0);
            endSpan(span, failure?.code ?? 0, failure?.rawMessage);
            this.record(endpoint, failure, options.signal);
            release();
          },
        };
      } catch (reason) {
        endpoint.inFlight--;
        const error = upstreamError(reason, endpoint.address, options.signal);
        // Once the attempt ran, a request stream may have been consumed: "not sent" (REFUSED_STREAM)
        // then only helps when the request can be sent again.
        const notSent = (wasNotSent(error) || wasNotSent(reason)) && (!started || options.replayable);
        metrics?.attempt(this.name, endpoint.address, error.code);
        this.record(endpoint, error, options.signal, notSent);
        if (options.signal?.aborted) {
          release();
          throw error;
        }
        const retry =
          attemptNumber < policy.maxAttempts &&
          (notSent || (options.idempotent && options.replayable && error.code === Code.Unavailable)) &&
          // Nothing reached the upstream: a retry adds no load there, so it costs no budget.
          (notSent || this.budget.tryRetry());
        if (!retry) {
          release();
          throw notSent ? this.unreachableError(endpoint, error) : error;
        }
        // Every endpoint we know failed to connect: the pods may have moved; ask DNS before retrying.
        if (notSent && this.discovery && this.endpoints.every((e) => tried.has(e) || !e.isAvailable(Date.now()))) {
          await this.discovery.refreshNow();
        }
        const pause = backoffMs(policy, attemptNumber);
        if (deadline !== undefined && Date.now() + pause >= deadline) {
          release();
          throw this.deadlineError(options, attemptNumber);
        }
        if (pause > 0) {
          try {
            await sleep(pause, undefined, { signal: abortSignalOf(options.signal) });
          } catch {
            release();
            throw ConnectError.from(options.signal?.reason ?? error, Code.Canceled);
          }
        }
      }
    }
  }

  /** The next endpoint: available ones not tried by this call first, then any available one. */
  private pick(tried: ReadonlySet<Endpoint>): Endpoint | undefined {
    const now = Date.now();
    const available = this.endpoints.filter((endpoint) => endpoint.isAvailable(now));
    if (tried.size > 0) {
      const fresh = available.filter((endpoint) => !tried.has(endpoint));
      if (fresh.length > 0) return this.balancer.pick(fresh);
    }
    return this.balancer.pick(available);
  }

  /** Passive outlier detection: consecutive failures eject an endpoint for a growing interval. */
  private record(endpoint: Endpoint, error: ConnectError | undefined, signal: CancelSignal | undefined, notSent = false): void {
    // A client that went away says nothing about the endpoint.
    if (signal?.aborted) return;
    const now = Date.now();
    const outlier = this.route.outlierDetection;
    const transportFailure = error !== undefined && (notSent || error.code === Code.Unavailable);
    if (!transportFailure) {
      // Any status the upstream itself produced shows the endpoint is alive.
      endpoint.served++;
      endpoint.consecutiveFailures = 0;
      if (endpoint.ejections > 0 && now - endpoint.lastEjectionEndedAt >= outlier.baseEjectionMs) {
        endpoint.ejections--;
        endpoint.lastEjectionEndedAt = now;
      }
      return;
    }
    endpoint.consecutiveFailures++;
    this.discovery?.refreshSoon();
    if (outlier.consecutiveFailures === 0 || endpoint.consecutiveFailures < outlier.consecutiveFailures) return;
    if (endpoint.isEjected(now)) return;
    const ejected = this.endpoints.filter((e) => e.isEjected(now)).length;
    if (ejected > 0 && ((ejected + 1) / this.endpoints.length) * 100 > outlier.maxEjectionPercent) return;
    endpoint.ejections++;
    const duration = Math.min(outlier.maxEjectionMs, outlier.baseEjectionMs * 2 ** (endpoint.ejections - 1));
    endpoint.ejectedUntil = now + duration;
    endpoint.lastEjectionEndedAt = endpoint.ejectedUntil;
    endpoint.consecutiveFailures = 0;
    this.deps.metrics?.ejection(this.name, endpoint.address);
    this.deps.logger.warn(
      { route: this.name, endpoint: endpoint.address, ejectionMs: duration, ejections: endpoint.ejections, err: error.rawMessage },
      "upstream endpoint ejected",
    );
  }

  private setEndpoints(addresses: readonly EndpointAddress[]): void {
    if (this.closed) return;
    const wanted = new Map(addresses.map((address) => [formatAddress(address), address]));
    const kept: Endpoint[] = [];
    for (const endpoint of this.endpoints) {
      if (wanted.has(endpoint.address)) {
        kept.push(endpoint);
        wanted.delete(endpoint.address);
      } else {
        endpoint.removed = true;
        clearTimeout(this.healthTimers.get(endpoint));
        this.healthTimers.delete(endpoint);
        // Calls already on it may finish; new calls cannot pick it.
        endpoint.sessions.drain();
      }
    }
    for (const [text, address] of wanted) {
      const secure = this.tlsFiles !== undefined;
      const endpoint = new Endpoint({
        address: text,
        baseUrl: `${secure ? "https" : "http"}://${text}`,
        tls: this.tlsFiles,
        protocol: this.route.protocol,
        maxMessageBytes: this.deps.maxMessageBytes,
        connectTimeoutMs: this.route.connection.connectTimeoutMs,
        maxConnectionAgeMs: this.route.connection.maxConnectionAgeMs,
        keepAliveMs: this.route.connection.keepAliveMs,
      });
      kept.push(endpoint);
      if (this.route.healthCheck.enabled) this.scheduleHealthCheck(endpoint, 0);
    }
    this.endpoints = kept;
  }

  private scheduleHealthCheck(endpoint: Endpoint, delayMs: number): void {
    if (this.closed || endpoint.removed) return;
    const timer = setTimeout(() => {
      void this.checkHealth(endpoint).finally(() => {
        // ±10% jitter, so checks of many endpoints do not run in step.
        const interval = this.route.healthCheck.intervalMs * (0.9 + Math.random() * 0.2);
        this.scheduleHealthCheck(endpoint, interval);
      });
    }, delayMs);
    timer.unref();
    this.healthTimers.set(endpoint, timer);
  }

  /** One grpc.health.v1 Check; an upstream without the health service counts as healthy. */
  private async checkHealth(endpoint: Endpoint): Promise<void> {
    const check = this.route.healthCheck;
    let passed: boolean;
    let reason: string | undefined;
    try {
      const response = await createClient(Health, endpoint.transport).check({ service: check.service }, { timeoutMs: check.timeoutMs });
      passed = response.status === HealthCheckResponse_ServingStatus.SERVING;
      reason = passed ? undefined : HealthCheckResponse_ServingStatus[response.status];
    } catch (error) {
      const connectError = ConnectError.from(error);
      passed = connectError.code === Code.Unimplemented;
      reason = connectError.rawMessage;
    }
    if (this.closed || endpoint.removed) return;
    if (passed) {
      endpoint.healthFailures = 0;
      endpoint.healthPasses++;
      if (!endpoint.healthy && endpoint.healthPasses >= check.healthyThreshold) {
        endpoint.healthy = true;
        this.deps.logger.info({ route: this.name, endpoint: endpoint.address }, "upstream endpoint healthy");
      }
    } else {
      endpoint.healthPasses = 0;
      endpoint.healthFailures++;
      if (endpoint.healthy && endpoint.healthFailures >= check.unhealthyThreshold) {
        endpoint.healthy = false;
        this.deps.logger.warn({ route: this.name, endpoint: endpoint.address, reason }, "upstream endpoint unhealthy");
        this.discovery?.refreshSoon();
      }
    }
  }

  private noEndpointError(): ConnectError {
    const now = Date.now();
    const total = this.endpoints.length;
    const unhealthy = this.endpoints.filter((e) => !e.healthy).length;
    const ejected = this.endpoints.filter((e) => e.isEjected(now)).length;
    const detail = total === 0 ? "no endpoints known" : `${total} known, ${unhealthy} failing health checks, ${ejected} ejected`;
    return new ConnectError(`route ${this.name} (${this.target.text}): no healthy upstream endpoint (${detail})`, Code.Unavailable);
  }

  private unreachableError(endpoint: Endpoint, cause: ConnectError): ConnectError {
    return new ConnectError(
      `route ${this.name} (${this.target.text}): upstream ${endpoint.address} unreachable: ${cause.rawMessage}`,
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );
  }

  private deadlineError(options: UpstreamCallOptions, attempts: number): ConnectError {
    return new ConnectError(
      `route ${this.name}: deadline of ${options.timeoutMs} ms exceeded calling ${options.method} (${attempts} attempt${attempts === 1 ? "" : "s"})`,
      Code.DeadlineExceeded,
    );
  }
}

/** A real AbortSignal following `signal` (node's timers need one), for the rare backoff pause. */
function abortSignalOf(signal: CancelSignal | undefined): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  if (signal.aborted) return AbortSignal.abort(signal.reason);
  const controller = new AbortController();
  signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  return controller.signal;
}
