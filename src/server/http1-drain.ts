/**
 * The drain of the connections node:http serves (HTTP/1.1 handed over by the lean connections,
 * over TLS, or with lean connections off).
 *
 * node:http's own closeIdleConnections destroys every connection between requests, including
 * one whose last answer is ended but not yet flushed to a client that reads slowly: measured,
 * an 8 MiB answer arrived as 3.9 MB. Here such a connection closes once its answer is sent, and
 * a busy one's answer, if not yet begun, says Connection: close. The list of connections is
 * node:http's private one (the one closeIdleConnections reads); where it cannot be found,
 * node:http's closeIdleConnections runs as before.
 */
import type * as http from "node:http";
import type * as net from "node:net";
import { findSymbolKey, onCheckedNodeMajor } from "../http2/node-internals.js";

/** What node:http's connections list hands out: one parser per connection, which knows its socket. */
interface TrackedConnection {
  socket: net.Socket & { _httpMessage?: http.ServerResponse | null };
}
interface ConnectionsList {
  idle(): TrackedConnection[];
}

/** A server whose HTTP/1.1 connections node:http serves: an http.Server, or http2's TLS server with allowHTTP1. */
type ServerOfHttp1 = net.Server & { closeIdleConnections(): void };

/**
 * Replace the server's closeIdleConnections, which its own close() calls too (http2's TLS server
 * calls nothing else), so a connection whose answer is still going out closes once it is sent.
 */
export function letAnswersGoingOutFinishOnIdleClose(server: ServerOfHttp1): void {
  const nodeOwn = server.closeIdleConnections;
  server.closeIdleConnections = () => {
    const connections = connectionsOf(server);
    if (connections === undefined) nodeOwn.call(server);
    else closeIdle(connections);
  };
}

function closeIdle(connections: ConnectionsList): void {
  // A connection counts as idle as soon as its request is fully read, so a busy one is here too.
  for (const { socket } of connections.idle()) {
    const answer = socket._httpMessage;
    if (answer && !answer.writableFinished) {
      // node:http closes the connection after this answer itself when the answer says so.
      if (!answer.headersSent) answer.setHeader("connection", "close");
      else answer.once("finish", () => closeUnlessAnswering(socket));
      continue;
    }
    socket.destroy();
  }
}

/** After an answer went out: close, unless a pipelined request's answer has started on the connection. */
function closeUnlessAnswering(socket: TrackedConnection["socket"]): void {
  if (!socket._httpMessage) socket.destroySoon();
}

function connectionsOf(server: net.Server): ConnectionsList | undefined {
  if (!onCheckedNodeMajor) return undefined;
  const key = findSymbolKey(server, "http.server.connections", (value) => typeof (value as Partial<ConnectionsList> | undefined)?.idle === "function");
  return key === undefined ? undefined : (server as unknown as Record<symbol, ConnectionsList>)[key];
}
