/**
 * An opt-in for the proxy cases' echo upstream (the runner's --upstream-stream-tables): its HTTP/2
 * sessions get the gateway's stream tables (src/http2/stream-tables.ts) instead of Node's Map.
 *
 * Why: h2load connects afresh every round, so the direct call always meets a new upstream
 * session, while a proxy keeps its upstream connection across rounds; and an old session of
 * Node's HTTP/2 server promotes the streams of ended calls (bench/README, "GC" and "The
 * upstream's GC"). With the tables, both sides meet an upstream that does not. Off by default:
 * the upstream the targets name is plain grpc-js.
 *
 * No side effects on import: the runner imports the variable's name from here.
 */
import { createRequire } from "node:module";
import type * as http2 from "node:http2";
import { onCheckedNodeMajor } from "../../src/http2/node-internals.js";
import { installGcFriendlyStreamTables } from "../../src/http2/stream-tables.js";

/** The environment variable that turns it on in the echo upstream ("1"). */
export const UPSTREAM_STREAM_TABLES_ENV = "BENCH_UPSTREAM_STREAM_TABLES";

/**
 * Wraps node:http2's createServer, which grpc-js calls inside bindAsync, so every session of every
 * server made after this gets the tables. Returns how many sessions got them so far; throws on a
 * Node major whose HTTP/2 internals the tables were not checked against.
 */
export function giveStreamTablesToNewHttp2Servers(): () => number {
  if (!onCheckedNodeMajor) throw new Error(`${UPSTREAM_STREAM_TABLES_ENV}: the stream tables were not checked on Node ${process.versions.node}`);
  // The CommonJS module object: grpc-js reads createServer from it at call time (an ES namespace is read-only).
  const module = createRequire(import.meta.url)("node:http2") as typeof http2;
  const createServer = module.createServer as (...args: unknown[]) => http2.Http2Server;
  let sessions = 0;
  module.createServer = ((...args: unknown[]) => {
    const server = createServer(...args);
    server.on("session", (session: http2.ServerHttp2Session) => {
      if (installGcFriendlyStreamTables(session)) sessions++;
    });
    return server;
  }) as typeof http2.createServer;
  return () => sessions;
}
