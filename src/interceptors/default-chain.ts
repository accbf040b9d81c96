import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../ops/logger.js";
import { accessLogInterceptor } from "./access-log.js";

/** The interceptor chain every call runs through; the first entry is the outermost. */
export function defaultInterceptors(deps: { logger: Logger }): Interceptor[] {
  return [accessLogInterceptor(deps.logger)];
}
