import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { CallSeries, GatewayMetrics } from "../ops/metrics.js";
import { rpcProtocolOf } from "./rpc-protocol.js";
import { observeStream } from "./stream-outcome.js";

/** Counts every call (started, handled by code, messages), its handling time and the calls in flight. */
export function metricsInterceptor(metrics: GatewayMetrics): Interceptor {
  return (next) => async (req) => {
    const startedAt = performance.now();
    const series = metrics.seriesFor(req.method, rpcProtocolOf(req.header.get("content-type")));
    series.started++;
    series.inFlight++;
    const done = (error: unknown) => series.finish(error === undefined ? 0 : ConnectError.from(error).code, (performance.now() - startedAt) / 1000);
    if (req.stream) req = { ...req, message: countMessages(req.message, series) };
    else series.received++;
    let res;
    try {
      res = await next(req);
    } catch (error) {
      done(error);
      throw error;
    }
    if (!res.stream) {
      series.sent++;
      done(undefined);
      return res;
    }
    return { ...res, message: observeStream(res.message, done, () => series.sent++) };
  };
}

async function* countMessages<T>(messages: AsyncIterable<T>, series: CallSeries): AsyncGenerator<T> {
  for await (const message of messages) {
    series.received++;
    yield message;
  }
}

