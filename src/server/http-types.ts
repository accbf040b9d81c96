import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { connectNodeAdapter } from "@connectrpc/connect-node";

/** A request on either HTTP version (Node's HTTP/2 compatibility API mirrors HTTP/1.1's). */
export type HttpRequest = http.IncomingMessage | http2.Http2ServerRequest;

/** A response on either HTTP version, as connect-node's adapter types it. */
export type HttpResponse = Parameters<ReturnType<typeof connectNodeAdapter>>[1];

/** A request listener for both HTTP versions. */
export type HttpHandler = (req: HttpRequest, res: HttpResponse) => void;


/**
 * Requests relayed from the own HTTP/2 server to Node's (src/server/node-http2-relay.ts): the
 * fast path already had its chance at them, so they go straight to connect-node. Marked by the
 * server that accepted them, never by anything a client sends.
 */
const relayedRequests = new WeakSet<HttpRequest>();

/** Mark a request as relayed from the own HTTP/2 server. */
export function markRelayed(req: HttpRequest): void {
  relayedRequests.add(req);
}

/** Whether the request was relayed from the own HTTP/2 server. */
export function isRelayed(req: HttpRequest): boolean {
  return relayedRequests.has(req);
}
