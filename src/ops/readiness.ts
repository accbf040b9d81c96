import { HealthStatusRegistry, ServingStatus } from "./health-status.js";

/** Lifecycle phase of the process: only "ready" takes traffic. */
export type ReadinessPhase = "starting" | "ready" | "draining";

/** Tracks whether the gateway should receive traffic, and keeps gRPC health in step with it. */
export class Readiness {
  private current: ReadinessPhase = "starting";

  constructor(private readonly health: HealthStatusRegistry) {}

  get phase(): ReadinessPhase {
    return this.current;
  }

  /** True only between start-up and the beginning of shutdown. */
  get isReady(): boolean {
    return this.current === "ready";
  }

  /** Start-up finished: every registered service is SERVING. */
  markReady(): void {
    this.current = "ready";
    this.health.setAll(ServingStatus.SERVING);
  }

  /** Shutdown began: every service reports NOT_SERVING, so balancers stop sending calls. */
  markDraining(): void {
    this.current = "draining";
    this.health.setAll(ServingStatus.NOT_SERVING);
  }
}
