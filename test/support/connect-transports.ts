import * as http from "node:http";
import type { Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
  type ConnectTransportOptions,
} from "@connectrpc/connect-node";

/** The protocol names the gateway's access log uses. */
export type WireProtocol = "connect" | "grpc" | "grpc-web";

/** One way connect-node's own clients can reach the gateway. */
export interface TransportSpec {
  /** e.g. "grpc-web over HTTP/1.1, json" */
  name: string;
  protocol: WireProtocol;
  httpVersion: "1.1" | "2";
  format: "binary" | "json";
  /** Connect only: side-effect-free unary methods are sent as HTTP GET. */
  useHttpGet: boolean;
}

export interface TransportCase extends TransportSpec {
  transport: Transport;
}

export interface TransportMatrix {
  cases: TransportCase[];
  /** The case with this name (throws on a typo). */
  get(name: string): TransportCase;
  /** Close the HTTP/2 sessions and HTTP/1.1 keep-alive sockets the transports opened. */
  close(): void;
}

/**
 * Every transport connect-node offers: Connect (binary and JSON; POST, and GET for
 * side-effect-free methods) and gRPC-web over HTTP/1.1 and HTTP/2, gRPC (binary and JSON)
 * over HTTP/2.
 */
export function transportSpecs(): TransportSpec[] {
  const specs: TransportSpec[] = [];
  for (const format of ["binary", "json"] as const) {
    for (const httpVersion of ["1.1", "2"] as const) {
      specs.push({ name: `connect over HTTP/${httpVersion}, ${format}`, protocol: "connect", httpVersion, format, useHttpGet: false });
    }
    // GET once per HTTP version, with alternating formats.
    const getVersion = format === "json" ? "1.1" : "2";
    specs.push({
      name: `connect over HTTP/${getVersion}, ${format}, GET for side-effect-free methods`,
      protocol: "connect",
      httpVersion: getVersion,
      format,
      useHttpGet: true,
    });
    specs.push({ name: `grpc over HTTP/2, ${format}`, protocol: "grpc", httpVersion: "2", format, useHttpGet: false });
    for (const httpVersion of ["1.1", "2"] as const) {
      specs.push({ name: `grpc-web over HTTP/${httpVersion}, ${format}`, protocol: "grpc-web", httpVersion, format, useHttpGet: false });
    }
  }
  return specs;
}

/** Build every transport of transportSpecs() against one base URL. */
export function connectNodeTransports(
  baseUrl: string,
  options: Pick<ConnectTransportOptions, "sendCompression" | "compressMinBytes" | "interceptors" | "readMaxBytes"> = {},
): TransportMatrix {
  const sessions: Http2SessionManager[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const newSession = () => {
    const manager = new Http2SessionManager(baseUrl);
    sessions.push(manager);
    return manager;
  };
  const cases = transportSpecs().map((spec): TransportCase => {
    const common = { baseUrl, useBinaryFormat: spec.format === "binary", ...options };
    let transport: Transport;
    if (spec.protocol === "grpc") {
      transport = createGrpcTransport({ ...common, sessionManager: newSession() }); // gRPC is HTTP/2 only
    } else {
      const version =
        spec.httpVersion === "2"
          ? { httpVersion: "2" as const, sessionManager: newSession() }
          : { httpVersion: "1.1" as const, nodeOptions: { agent } };
      transport =
        spec.protocol === "connect"
          ? createConnectTransport({ ...common, ...version, useHttpGet: spec.useHttpGet })
          : createGrpcWebTransport({ ...common, ...version });
    }
    return { ...spec, transport };
  });
  return {
    cases,
    get(name) {
      const found = cases.find((c) => c.name === name);
      if (!found) throw new Error(`no transport case named ${JSON.stringify(name)}`);
      return found;
    },
    close() {
      for (const manager of sessions) manager.abort();
      agent.destroy();
    },
  };
}
