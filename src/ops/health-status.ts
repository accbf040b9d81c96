import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

type StatusListener = (status: ServingStatus) => void;

/**
 * Serving status per service name, as grpc.health.v1 reports it.
 * The empty name "" stands for the whole server.
 */
export class HealthStatusRegistry {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Map<string, Set<StatusListener>>();

  /** Set one service's status and tell its watchers if it changed. */
  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const listener of this.listeners.get(service) ?? []) listener(status);
  }

  /** Set every known service, and the server as a whole, to one status. */
  setAll(status: ServingStatus): void {
    for (const service of [...this.statuses.keys()]) this.set(service, status);
  }

  /** The status of a service, or undefined if the service is unknown. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** A snapshot of every known service and its status. */
  entries(): [string, ServingStatus][] {
    return [...this.statuses.entries()];
  }

  /** Call listener on every change of one service's status; returns the unsubscribe function. */
  watch(service: string, listener: StatusListener): () => void {
    let set = this.listeners.get(service);
    if (!set) this.listeners.set(service, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(service);
    };
  }
}
