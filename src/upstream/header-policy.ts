import type * as http2 from "node:http2";

/**
 * Which metadata crosses the gateway, in one place.
 *
 * Requests: only headers on the route's allow-list go upstream (`forwardHeaders` in the config;
 * exact names, `prefix-*` patterns, or `*` for everything). Hop-by-hop and protocol headers never
 * do: the gateway's own connection to the upstream sets them. Credentials (`authorization`,
 * `proxy-authorization`, `cookie`) go only when named exactly: `*` never forwards them.
 *
 * Responses: every upstream header and trailer comes back to the client except hop-by-hop and
 * protocol headers, which the gateway writes for the client's own protocol.
 */

/** Headers that describe one HTTP connection or hop, never the call (RFC 9110 §7.6.1, RFC 9113 §8.2.2). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "http2-settings",
  "expect",
  "content-length",
  "forwarded",
  "via",
  // The gateway's own record of the client address (src/security/identity.ts).
  "x-gateway-peer",
]);

/** Headers the RPC protocols own; each side of the gateway writes its own. */
const PROTOCOL = new Set([
  "content-type",
  "content-encoding",
  "accept-encoding",
  "user-agent",
  "date",
  "server",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
]);

/** Credentials: forwarded only when a route names them explicitly. */
const AUTH = new Set(["authorization", "proxy-authorization", "cookie", "x-api-key"]);

function neverCrosses(name: string): boolean {
  return name.charCodeAt(0) === 58 /* ":" */ || HOP_BY_HOP.has(name) || PROTOCOL.has(name) || name.startsWith("connect-") || name.startsWith("trailer-");
}

/** A route's request-header allow-list, compiled once; decisions are cached per header name. */
export class HeaderPolicy {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly all: boolean;
  private readonly decisions = new Map<string, boolean>();

  constructor(patterns: readonly string[]) {
    let all = false;
    for (const pattern of patterns) {
      if (pattern === "*") all = true;
      else if (pattern.endsWith("*")) this.prefixes.push(pattern.slice(0, -1));
      else this.exact.add(pattern);
    }
    this.all = all;
  }

  /** Whether request header `name` (lower case) is forwarded upstream. */
  allows(name: string): boolean {
    let decision = this.decisions.get(name);
    if (decision === undefined) {
      decision = this.decide(name);
      // Bounded: a client sending endless distinct names must not grow the cache without limit.
      if (this.decisions.size < 1024) this.decisions.set(name, decision);
    }
    return decision;
  }

  private decide(name: string): boolean {
    if (neverCrosses(name)) return false;
    if (this.exact.has(name)) return true;
    if (AUTH.has(name)) return false;
    return this.all || this.prefixes.some((prefix) => name.startsWith(prefix));
  }

  /** The allowed subset of a call's request headers (connect's Headers view). */
  forwardFrom(headers: Headers): Headers | undefined {
    let out: Headers | undefined;
    headers.forEach((value, name) => {
      if (this.allows(name)) (out ??= new Headers()).append(name, value);
    });
    return out;
  }

  /** Copy the allowed request headers of a raw HTTP/2 stream into `into`. */
  forwardNode(headers: http2.IncomingHttpHeaders, into: http2.OutgoingHttpHeaders): void {
    for (const name in headers) {
      if (this.allows(name)) into[name] = headers[name];
    }
  }
}

/** Whether an upstream response header or trailer goes back to the client. */
export function returnsToClient(name: string): boolean {
  return !neverCrosses(name);
}

/** Append the upstream response headers (or trailers) the client may see to `into`. */
export function relayResponseMetadata(from: Headers, into: Headers): void {
  from.forEach((value, name) => {
    if (returnsToClient(name)) into.append(name, value);
  });
}

/** Copy the upstream response headers (or trailers) the client may see from a raw HTTP/2 header block. */
export function relayNodeResponseMetadata(from: http2.IncomingHttpHeaders, into: http2.OutgoingHttpHeaders): void {
  for (const name in from) {
    if (returnsToClient(name)) into[name] = from[name];
  }
}
