import { Writable } from "node:stream";
import { parseConfig } from "../../src/config/load-config.js";
import type { GatewayConfigInput } from "../../src/config/gateway-config.js";
import { createGateway, type Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/ops/logger.js";

/** A gateway started in this process on 127.0.0.1 and a free port, with its log lines captured. */
export interface StartedGateway {
  gateway: Gateway;
  port: number;
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** Parsed JSON log lines written so far. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Start a real gateway on port 0 for an end-to-end test. */
export async function startGateway(overrides: GatewayConfigInput = {}): Promise<StartedGateway> {
  // GATEWAY_LEAN_HTTP2=false runs a suite against Node's HTTP/2 server instead of the own one (the "node-http2" project in vitest.config.ts).
  const leanHttp2 = process.env.GATEWAY_LEAN_HTTP2 === "false" ? { fastPath: { leanHttp2: false, ...overrides.fastPath } } : {};
  const config = parseConfig({ host: "127.0.0.1", ...overrides, ...leanHttp2, port: 0 });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const gateway = createGateway(config, createLogger("info", sink));
  const address = await gateway.listen();
  return {
    gateway,
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    logs,
    close: () => gateway.shutdown(),
  };
}
