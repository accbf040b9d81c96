import { Code, ConnectError } from "@connectrpc/connect";

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** Milliseconds encoded in a grpc-timeout header; undefined when absent, ConnectError when malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = GRPC_TIMEOUT.exec(value);
  if (match === null) throw new ConnectError(`protocol error: invalid grpc-timeout ${JSON.stringify(value)}`, Code.InvalidArgument);
  return Number(match[1]) * UNIT_MS[match[2]];
}

/** A grpc-timeout header value for `ms` (at most 8 digits, as the spec requires). */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  if (whole < 100_000_000) return `${whole}m`;
  const seconds = Math.ceil(whole / 1000);
  if (seconds < 100_000_000) return `${seconds}S`;
  return `${Math.min(99_999_999, Math.ceil(seconds / 3600))}H`;
}

/**
 * The time an upstream call may take: the client's remaining deadline, capped by the route's
 * maximum (0: none); undefined when neither limits it. A deadline already spent is an error.
 */
export function upstreamTimeoutMs(clientRemainingMs: number | undefined, routeMaxMs: number): number | undefined {
  let timeout = clientRemainingMs;
  if (routeMaxMs > 0 && (timeout === undefined || timeout > routeMaxMs)) timeout = routeMaxMs;
  if (timeout !== undefined && timeout <= 0) throw new ConnectError("the deadline was exceeded before the upstream call", Code.DeadlineExceeded);
  return timeout;
}
