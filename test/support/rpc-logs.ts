import type { StartedGateway } from "./start-gateway.js";

/** One access-log line as the gateway writes it for every call. */
export interface RpcLogLine {
  method: string;
  protocol: string;
  httpMethod: string;
  code: string;
  durationMs: number;
}

/**
 * Marks the gateway's log so a test can read the access-log lines its own calls produced.
 * The access log is written before the response's end leaves the server, so by the time a
 * client has seen a call finish its line is there.
 */
export function logCursor(gw: StartedGateway): { rpcLines(): RpcLogLine[] } {
  const start = gw.logs.length;
  return {
    rpcLines: () => gw.logs.slice(start).filter((l) => l.msg === "rpc") as unknown as RpcLogLine[],
  };
}
