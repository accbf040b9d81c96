/**
 * The drain of the connections node:http serves (HTTP/1.1 handed over by the lean connections,
 * over TLS, or with lean connections off): each closes after its current answer, which says
 * `Connection: close` when it has not begun yet.
 *
 * node:http's own closeIdleConnections destroys every connection between requests, including
 * one whose last answer is ended but not yet flushed to a client that reads slowly: measured,
 * an 8 MiB answer arrived as 3.9 MB. Here such a connection closes once its answer is sent. The
 * list of connections is node:http's private one (the one closeIdleConnections reads); where it
 * cannot be found, node:http's closeIdleConnections runs as before, and a connection busy when
 * the drain began stays open after its answer until the gateway cuts the remaining ones.
 */
import type * as http from "node:http";
import type * as net from "node:net";
import { findSymbolKey, onCheckedNodeMajor } from "../http2/node-internals.js";

/** The answer this connection's drain marked `Connection: close`. */
const MARKED = Symbol("answer marked Connection: close");

/** A socket node:http serves: its current answer, and its parser with the last request it parsed. */
type Http1Socket = net.Socket & {
  _httpMessage?: http.ServerResponse | null;
  parser?: { incoming?: http.IncomingMessage | null } | null;
  [MARKED]?: http.ServerResponse;
};

/** What node:http's connections list hands out: one parser per connection, which knows its socket. */
interface TrackedConnection {
  socket: Http1Socket;
}
interface ConnectionsList {
  all(): TrackedConnection[];
  idle(): TrackedConnection[];
}

/** A server whose HTTP/1.1 connections node:http serves: an http.Server, or http2's TLS server with allowHTTP1. */
type ServerOfHttp1 = net.Server & { closeIdleConnections(): void };

/**
 * Replace the server's closeIdleConnections, which its own close() calls too (http2's TLS server
 * calls nothing else): every connection closes after its current answers instead.
 */
export function letAnswersGoingOutFinishOnIdleClose(server: ServerOfHttp1): void {
  const nodeOwn = server.closeIdleConnections;
  server.closeIdleConnections = () => {
    const connections = connectionsOf(server);
    if (connections === undefined) {
      nodeOwn.call(server);
      return;
    }
    const idle = idleSockets(connections);
    for (const { socket } of connections.all()) closeAfterAnswers(socket, connections, idle);
  };
}

/**
 * During the drain, have this answer say `Connection: close` (node:http then closes after it).
 * A request pipelined behind one already marked takes the mark over while the earlier answer has
 * not begun: the connection must stay open for the answers queued behind it. Returns false when
 * the earlier answer has begun: the connection closes after it, so this request's answer could
 * never be sent, and the request must not run.
 */
export function closeAfterThisAnswer(socket: Http1Socket, answer: http.ServerResponse): boolean {
  const previous = socket[MARKED];
  if (previous === answer) return true;
  if (previous !== undefined) {
    if (previous.headersSent) return false;
    previous.removeHeader("connection");
  }
  socket[MARKED] = answer;
  answer.setHeader("connection", "close");
  return true;
}

/** Close a connection once its answers are out: at once between requests, else after the last one known. */
function closeAfterAnswers(socket: Http1Socket, connections: ConnectionsList, idle: ReadonlySet<net.Socket>): void {
  if (socket.destroyed) return;
  // Only the answer being written is attached; answers to pipelined requests wait behind it (and
  // may be finished already), so an attached answer, even a finished one, is waited for.
  const answer = socket._httpMessage;
  if (!answer) {
    // Between requests: close. A request still arriving gets its mark when its handler runs.
    if (idle.has(socket)) socket.destroySoon();
    return;
  }
  // A request parsed after this answer's own would lose its answer if this one closed the connection.
  if (!answer.headersSent && socket.parser?.incoming === answer.req) {
    closeAfterThisAnswer(socket, answer);
    return;
  }
  answer.once("finish", () => closeAfterAnswers(socket, connections, idleSockets(connections)));
}

function idleSockets(connections: ConnectionsList): Set<net.Socket> {
  return new Set(connections.idle().map((connection) => connection.socket));
}

function connectionsOf(server: net.Server): ConnectionsList | undefined {
  if (!onCheckedNodeMajor) return undefined;
  const key = findSymbolKey(server, "http.server.connections", (value) => {
    const list = value as Partial<ConnectionsList> | undefined;
    return typeof list?.idle === "function" && typeof list.all === "function";
  });
  return key === undefined ? undefined : (server as unknown as Record<symbol, ConnectionsList>)[key];
}
