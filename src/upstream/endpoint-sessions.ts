import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { markNotSent } from "./upstream-errors.js";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { Http2ClientConnection } from "./http2-client/client-connection.js";
import { connectUpstreamSocket, type UpstreamTlsOptions } from "./upstream-socket.js";
import { installGcFriendlyStreamTables } from "../http2/stream-tables.js";

export interface EndpointSessionOptions {
  /** `http://ip:port` or `https://ip:port`. */
  baseUrl: string;
  /** TLS settings (PEM contents already read); undefined for cleartext h2c. */
  tls?: UpstreamTlsOptions;
  connectTimeoutMs: number;
  /** Replace a connection this old (±10% jitter, so a fleet does not reconnect in step); 0 never. */
  maxConnectionAgeMs: number;
  /** PING interval while streams are open; 0 disables. */
  keepAliveMs: number;
}

/**
 * One HTTP/2 connection to one endpoint, shared by every call, health check and pass-through
 * stream to it. Wraps connect-node's Http2SessionManager (keep-alive PINGs, reconnects, GOAWAY
 * handling) and adds what it lacks: a connect timeout, TLS options per endpoint, and a maximum
 * connection age after which new calls go to a fresh connection while the old one drains.
 * It has the shape of connect-node's NodeHttp2ClientSessionManager, so transports accept it.
 */
export class EndpointSessions {
  readonly authority: string;
  private manager: Http2SessionManager;
  private session: http2.ClientHttp2Session | undefined;
  private sessionExpiresAt = Number.POSITIVE_INFINITY;
  private readonly draining = new Set<Http2SessionManager>();
  private closed = false;
  /** The gRPC pass-through's own connection (see http2-client/), and when it is due for replacement. */
  private passthrough: Http2ClientConnection | undefined;
  private passthroughExpiresAt = Number.POSITIVE_INFINITY;
  private readonly passthroughDraining = new Set<Http2ClientConnection>();
  private readonly aliveNoticeIntervalMs: number;
  private nextAliveNoticeAt = 0;

  constructor(private readonly options: EndpointSessionOptions) {
    this.authority = new URL(options.baseUrl).origin;
    this.manager = this.createManager();
    this.aliveNoticeIntervalMs = options.keepAliveMs > 0 ? Math.min(1000, options.keepAliveMs / 4) : Number.POSITIVE_INFINITY;
    // Without keep-alive the manager neither PINGs nor verifies: a notice would change nothing.
    if (options.keepAliveMs <= 0) this.nextAliveNoticeAt = Number.POSITIVE_INFINITY;
  }

  /** Open a stream on the endpoint's connection, connecting first if needed. */
  async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    if (this.closed) throw new ConnectError(`connection to ${this.authority} is closed`, Code.Unavailable);
    if (this.session !== undefined && Date.now() >= this.sessionExpiresAt) this.retire();
    const manager = this.manager;
    const stream = await manager.request(method, path, headers, options);
    if (stream.session !== this.session && manager === this.manager) this.adopt(stream.session as http2.ClientHttp2Session);
    return stream;
  }

  /**
   * The connection the gRPC pass-through sends whole-body calls on: the gateway's own HTTP/2
   * client (http2-client/), cheaper per call than Node's. It has the same connect timeout, TLS
   * settings, keep-alive and maximum age as the Node connection, which stays for everything
   * else (transcoded calls, health checks, streaming requests). Throws a "not sent"
   * UNAVAILABLE once the endpoint is closed.
   */
  passthroughConnection(): Http2ClientConnection {
    if (this.closed) throw markNotSent(new ConnectError(`connection to ${this.authority} is closed`, Code.Unavailable));
    let connection = this.passthrough;
    if (connection !== undefined && (!connection.acceptsStreams || Date.now() >= this.passthroughExpiresAt)) {
      // Still open (a closed one has cleared this.passthrough): its calls finish, abort() can cut them.
      this.passthrough = undefined;
      this.passthroughDraining.add(connection);
      if (connection.acceptsStreams) connection.close("replaced after its maximum age");
      connection = undefined;
    }
    if (connection === undefined) {
      const url = new URL(this.options.baseUrl);
      const created = new Http2ClientConnection({
        host: url.hostname.replace(/^\[|\]$/g, ""),
        port: Number(url.port || (this.options.tls ? 443 : 80)),
        authority: url.host,
        tls: this.options.tls,
        connectTimeoutMs: this.options.connectTimeoutMs,
        keepAliveMs: this.options.keepAliveMs,
      });
      created.onClose = () => {
        this.passthroughDraining.delete(created);
        if (this.passthrough === created) this.passthrough = undefined;
      };
      const maxAge = this.options.maxConnectionAgeMs;
      this.passthroughExpiresAt = maxAge > 0 ? Date.now() + maxAge * (0.9 + Math.random() * 0.2) : Number.POSITIVE_INFINITY;
      this.passthrough = connection = created;
    }
    return connection;
  }

  /**
   * Response bytes prove the connection alive, so the manager postpones its keep-alive PING. It
   * does so by replacing a timer, which on a busy connection cost more than relaying the bytes:
   * it hears at most one such notice per `aliveNoticeIntervalMs` (a quarter of the PING
   * interval at most), and none without keep-alive. (It also hears every response's headers
   * itself.)
   */
  notifyResponseByteRead(stream: http2.ClientHttp2Stream): void {
    const now = Date.now();
    if (now < this.nextAliveNoticeAt) return;
    this.nextAliveNoticeAt = now + this.aliveNoticeIntervalMs;
    this.manager.notifyResponseByteRead(stream);
    if (this.draining.size > 0) for (const manager of this.draining) manager.notifyResponseByteRead(stream);
  }

  /** Make sure a connection is up; returns the reason when it cannot be established. */
  async connect(): Promise<unknown> {
    if (this.closed) return new ConnectError(`connection to ${this.authority} is closed`, Code.Unavailable);
    const state = await this.manager.connect();
    return state === "error" ? (this.manager.error() ?? new ConnectError(`cannot connect to ${this.authority}`, Code.Unavailable)) : undefined;
  }

  /** True when a connection is established (calls will not wait for a handshake). */
  get isConnected(): boolean {
    const state = this.manager.state();
    return state === "open" || state === "idle";
  }

  /** Close gracefully: open streams may finish, no new ones start. */
  drain(): void {
    this.closed = true;
    this.session?.close();
    this.passthrough?.close("the endpoint was removed");
    for (const manager of this.draining) manager.abort();
  }

  /** Close now, cancelling open streams. */
  abort(): void {
    this.closed = true;
    this.manager.abort();
    this.passthrough?.destroy(`connection to ${this.authority} was closed`);
    for (const connection of this.passthroughDraining) connection.destroy(`connection to ${this.authority} was closed`);
    for (const manager of this.draining) manager.abort();
  }

  private adopt(session: http2.ClientHttp2Session): void {
    this.session = session;
    // Node's own stream Map would let ended calls reach the old generation (see the module).
    installGcFriendlyStreamTables(session);
    const maxAge = this.options.maxConnectionAgeMs;
    this.sessionExpiresAt = maxAge > 0 ? Date.now() + maxAge * (0.9 + Math.random() * 0.2) : Number.POSITIVE_INFINITY;
  }

  /** New calls go to a new connection; the old one finishes its streams and closes. */
  private retire(): void {
    const old = this.manager;
    const session = this.session!;
    this.manager = this.createManager();
    this.session = undefined;
    this.draining.add(old);
    if (session.closed || session.destroyed) this.draining.delete(old);
    else session.close(() => this.draining.delete(old));
  }

  private createManager(): Http2SessionManager {
    const { connectTimeoutMs, keepAliveMs } = this.options;
    const tlsOptions = this.options.tls;
    return new Http2SessionManager(
      this.options.baseUrl,
      { pingIntervalMs: keepAliveMs > 0 ? keepAliveMs : undefined, idleConnectionTimeoutMs: 15 * 60_000 },
      {
        createConnection: (authority: URL) => {
          const host = authority.hostname.replace(/^\[|\]$/g, "");
          const port = Number(authority.port);
          const socket = connectUpstreamSocket(host, port, tlsOptions);
          // Node has no connect timeout: an unreachable pod would hold calls for the OS's TCP timeout.
          socket.setTimeout(connectTimeoutMs, () =>
            socket.destroy(new ConnectError(`connecting to ${authority.host} timed out after ${connectTimeoutMs} ms`, Code.Unavailable)),
          );
          socket.once(tlsOptions ? "secureConnect" : "connect", () => socket.setTimeout(0));
          return socket;
        },
      },
    );
  }
}
