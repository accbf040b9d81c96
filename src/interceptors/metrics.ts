import type { GatewayMetrics } from "../ops/metrics.js";
import type { CallObserver } from "./call-observer.js";

/** Counts every call (started, handled by code, messages), its handling time and the calls in flight. */
export function metricsObserver(metrics: GatewayMetrics): CallObserver {
  return {
    callStarted(call) {
      const series = metrics.seriesFor(call.method, call.protocol);
      series.started++;
      series.inFlight++;
    },
    messageReceived(call) {
      metrics.seriesFor(call.method, call.protocol).received++;
    },
    messageSent(call) {
      metrics.seriesFor(call.method, call.protocol).sent++;
    },
    callEnded(call, error) {
      metrics.seriesFor(call.method, call.protocol).finish(error === undefined ? 0 : error.code, (performance.now() - call.startedAt) / 1000);
    },
  };
}
