import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../ops/logger.js";
import { accessLogInterceptor } from "./access-log.js";

/** The interceptor chain every call runs through; the first entry is the outermost. */
export function defaultInterceptors(deps: { logger: Logger }): Interceptor[] {
  const chain: Interceptor[] = [];
  // A disabled access log costs nothing per call when it is left out of the chain.
  if (deps.logger.isLevelEnabled("info")) chain.push(accessLogInterceptor(deps.logger));
  return chain;
}
