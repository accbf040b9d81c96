import * as net from "node:net";
import * as tls from "node:tls";

/** TLS settings for an upstream connection (PEM contents already read). */
export interface UpstreamTlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** The name checked against the certificate (SNI); defaults to the host when it is a name. */
  serverName?: string;
}

/**
 * A socket to an upstream HTTP/2 server: TLS offering only `h2` by ALPN, or cleartext TCP
 * without Nagle's delay. Both upstream clients (Node's http2 sessions and the gateway's own)
 * open their connections here; each sets its own connect timeout and reads the outcome.
 */
export function connectUpstreamSocket(host: string, port: number, tlsOptions: UpstreamTlsOptions | undefined): net.Socket {
  if (tlsOptions === undefined) return net.connect({ host, port, noDelay: true });
  return tls.connect({
    host,
    port,
    servername: tlsOptions.serverName ?? (net.isIP(host) ? undefined : host),
    ca: tlsOptions.ca,
    cert: tlsOptions.cert,
    key: tlsOptions.key,
    ALPNProtocols: ["h2"],
  });
}
