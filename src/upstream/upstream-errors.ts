import { Code, ConnectError } from "@connectrpc/connect";

/** Node error codes that mean the connection to the upstream broke under a call. */
const CONNECTION_LOST = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_STREAM_DESTROYED",
  "ERR_HTTP2_INVALID_STREAM",
]);

const notSent = new WeakSet<object>();

/** Mark an error as raised before any byte of the request reached the upstream (always safe to retry). */
export function markNotSent<E extends object>(error: E): E {
  notSent.add(error);
  return error;
}

/** Whether the request surely never reached the upstream. */
export function wasNotSent(error: unknown): boolean {
  if (typeof error === "object" && error !== null && notSent.has(error)) return true;
  // RST_STREAM REFUSED_STREAM: the server promises it did not process the stream (RFC 9113 §8.7).
  return error instanceof ConnectError && error.code === Code.Unavailable && error.rawMessage.includes("REFUSED_STREAM");
}

function nodeErrorCodes(reason: unknown): string[] {
  const codes: string[] = [];
  for (let e = reason, depth = 0; e instanceof Error && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/**
 * The error of a failed upstream attempt as the client should see it. Statuses the upstream sent
 * pass through untouched; a broken connection (which connect-node's client reports as `aborted`,
 * `internal` or `canceled`, as it would for a client that hung up) is `unavailable`, as gRPC
 * defines for transport failures, unless the call's own signal shows the client did cancel.
 */
export function upstreamError(reason: unknown, endpoint: string, callSignal?: { readonly aborted: boolean }): ConnectError {
  const error = ConnectError.from(reason);
  if (error.isWireError) return error;
  if (error.code === Code.Canceled && callSignal?.aborted !== true) {
    // Nobody cancelled the call: node resets the streams of a connection that died with CANCEL.
    return new ConnectError(`upstream ${endpoint}: connection lost (${error.rawMessage})`, Code.Unavailable, undefined, undefined, reason);
  }
  if (error.code === Code.Aborted || error.code === Code.Internal || error.code === Code.Unknown) {
    const lost = nodeErrorCodes(reason).find((code) => CONNECTION_LOST.has(code));
    if (lost !== undefined || /session|GOAWAY|stream closed/i.test(error.rawMessage)) {
      const wrapped = new ConnectError(`upstream ${endpoint}: connection lost (${lost ?? error.rawMessage})`, Code.Unavailable, undefined, undefined, reason);
      return notSent.has(error) ? markNotSent(wrapped) : wrapped;
    }
  }
  return error;
}
