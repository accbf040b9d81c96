import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { HealthStatusRegistry, ServingStatus } from "./health-status.js";

/** grpc.health.v1 caps List at 100 services; more is RESOURCE_EXHAUSTED. */
const MAX_LISTED_SERVICES = 100;

/**
 * grpc.health.v1.Health (Check, List, Watch) backed by a status registry.
 * When `drainSignal` aborts, open Watch streams end after their last status, so they do not
 * hold a graceful shutdown open for its whole grace period.
 */
export function createHealthService(registry: HealthStatusRegistry, drainSignal?: AbortSignal): ServiceImpl<typeof Health> {
  return {
    check(request: HealthCheckRequest) {
      const status = registry.get(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
      }
      return { status };
    },
    list() {
      const entries = registry.entries();
      if (entries.length > MAX_LISTED_SERVICES) {
        throw new ConnectError(`more than ${MAX_LISTED_SERVICES} services`, Code.ResourceExhausted);
      }
      return { statuses: Object.fromEntries(entries.map(([name, status]) => [name, { status }])) };
    },
    async *watch(request: HealthCheckRequest, context: HandlerContext) {
      const stop = drainSignal ? AbortSignal.any([context.signal, drainSignal]) : context.signal;
      yield* watchStatus(registry, request.service, stop);
    },
  };
}

async function* watchStatus(
  registry: HealthStatusRegistry,
  service: string,
  signal: AbortSignal,
): AsyncGenerator<HealthCheckResponse> {
  const pending: ServingStatus[] = [registry.get(service) ?? ServingStatus.SERVICE_UNKNOWN];
  let wake: (() => void) | undefined;
  const unsubscribe = registry.watch(service, (status) => {
    pending.push(status);
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  try {
    for (;;) {
      while (pending.length > 0) {
        yield create(HealthCheckResponseSchema, { status: pending.shift() });
      }
      if (signal.aborted) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
