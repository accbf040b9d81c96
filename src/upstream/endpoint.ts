import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { EndpointSessions, type EndpointSessionOptions } from "./endpoint-sessions.js";

export interface EndpointOptions extends EndpointSessionOptions {
  /** `host:port` as shown in logs and errors. */
  address: string;
  protocol: "grpc" | "connect";
  maxMessageBytes: number;
}

/**
 * One upstream server (a pod): its connection, a client transport over it, and the state the
 * balancer and the resilience logic keep about it.
 */
export class Endpoint {
  readonly address: string;
  readonly sessions: EndpointSessions;
  /** connect-node's client for the route's protocol, over this endpoint's one connection. */
  readonly transport: Transport;

  /** Calls (and streams) currently open to this endpoint: least-request balances on it. */
  inFlight = 0;
  /** Calls served since the gateway started, for logs and tests. */
  served = 0;

  /** Verdict of the active health checks (optimistic until the first one). */
  healthy = true;
  healthFailures = 0;
  healthPasses = 0;

  /** Passive outlier detection: failures in a row, and the current ejection. */
  consecutiveFailures = 0;
  ejections = 0;
  ejectedUntil = 0;
  lastEjectionEndedAt = 0;

  /** Set when discovery dropped the endpoint; it drains and is forgotten. */
  removed = false;

  constructor(options: EndpointOptions) {
    this.address = options.address;
    this.sessions = new EndpointSessions(options);
    const common = {
      baseUrl: options.baseUrl,
      httpVersion: "2" as const,
      sessionManager: this.sessions,
      readMaxBytes: options.maxMessageBytes,
      writeMaxBytes: options.maxMessageBytes,
      // Between the gateway and pods in one cluster CPU costs more than bytes: no compression.
      acceptCompression: [],
      useBinaryFormat: true,
    };
    this.transport = options.protocol === "connect" ? createConnectTransport(common) : createGrpcTransport(common);
  }

  /** Whether the balancer may pick this endpoint now. */
  isAvailable(now: number): boolean {
    return this.healthy && !this.removed && now >= this.ejectedUntil;
  }

  /** Ejected by outlier detection at `now`. */
  isEjected(now: number): boolean {
    return now < this.ejectedUntil;
  }
}
