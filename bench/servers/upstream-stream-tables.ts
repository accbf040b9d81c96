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
 * Wraps node:http2's createServer (plaintext HTTP/2, what the echo upstream serves; grpc-js calls
 * it inside bindAsync), so every session of a server made after this gets the tables. Returns a
 * counter of the sessions that got them. Throws on a Node major whose HTTP/2 internals the tables
 * were not checked against; exits the process if a session's internals are not as checked, so a
 * run never measures a plain upstream while its report says otherwise.
 */
export function giveStreamTablesToNewHttp2Servers(): () => number {
  if (!onCheckedNodeMajor) {
    throw new Error(`${UPSTREAM_STREAM_TABLES_ENV}: the stream tables were not checked on Node ${process.versions.node}`);
  }
  // The CommonJS exports: grpc-js reads createServer from them at call time (an ES namespace is read-only).
  const http2Exports = createRequire(import.meta.url)("node:http2") as typeof http2;
  const createServer = http2Exports.createServer as (...args: unknown[]) => http2.Http2Server;
  let sessions = 0;
  http2Exports.createServer = ((...args: unknown[]) => {
    const server = createServer(...args);
    server.on("session", (session: http2.ServerHttp2Session) => {
      if (installGcFriendlyStreamTables(session)) {
        sessions++;
      } else {
        process.stderr.write(`${UPSTREAM_STREAM_TABLES_ENV}: a session's stream state is not the shape the tables were checked against\n`);
        process.exit(1);
      }
    });
    return server;
  }) as typeof http2.createServer;
  return () => sessions;
}
