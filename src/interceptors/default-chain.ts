import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "../ops/logger.js";
import type { GatewayMetrics } from "../ops/metrics.js";
import { accessLogObserver } from "./access-log.js";
import { observersInterceptor, type CallObserver } from "./call-observer.js";
import { metricsObserver } from "./metrics.js";
import { requestIdObserver } from "./request-id.js";
import { tracingInterceptor } from "./tracing.js";
import { methodsWithRules, validationInterceptor } from "./validation.js";

/**
 * The interceptor chain every call runs through; the first entry is the outermost.
 * Authentication and rate limiting are not here: they run in the request gate
 * (src/security/request-gate.ts), before the request body is read.
 */
export function defaultInterceptors(deps: { logger: Logger; metrics?: GatewayMetrics; services?: readonly DescService[]; tracer?: Tracer }): Interceptor[] {
  const chain: Interceptor[] = [];
  // Outermost, so the access log line and everything after it run inside the server span.
  if (deps.tracer) chain.push(tracingInterceptor(deps.tracer));
  // Request id, access log and metrics only watch calls: as observers, the fast path runs them
  // without connect's per-call objects. A disabled feature is left out and costs nothing.
  const observers: CallObserver[] = [requestIdObserver()];
  if (deps.logger.isLevelEnabled("info")) observers.push(accessLogObserver(deps.logger, { tracing: deps.tracer !== undefined }));
  if (deps.metrics) observers.push(metricsObserver(deps.metrics));
  chain.push(observersInterceptor(observers));
  // Innermost, so a violation is logged and counted like any other invalid_argument.
  const validated = methodsWithRules(deps.services ?? []);
  if (validated.size > 0) chain.push(validationInterceptor(validated, deps.logger));
  return chain;
}
