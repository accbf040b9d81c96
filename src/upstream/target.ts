import { isIP } from "node:net";

/** Where a route's endpoints come from. */
export type UpstreamTarget =
  | { kind: "dns"; host: string; port: number; text: string }
  | { kind: "static"; addresses: EndpointAddress[]; text: string };

/** One endpoint: a host (an IP once resolved) and a port. */
export interface EndpointAddress {
  host: string;
  port: number;
}

/** Parse a route target: `dns:///name:port`, `host:port`, or a list of `host:port`. */
export function parseTarget(target: string | readonly string[]): UpstreamTarget {
  if (typeof target !== "string") {
    return { kind: "static", addresses: target.map(parseHostPort), text: target.join(",") };
  }
  if (target.startsWith("dns:")) {
    // dns://[authority]/host:port: the authority (a DNS server) is configured under `dns.servers` instead.
    const { host, port } = parseHostPort(target.slice(target.indexOf("/", "dns://".length) + 1));
    if (isIP(host) !== 0) return { kind: "static", addresses: [{ host, port }], text: target };
    return { kind: "dns", host, port, text: target };
  }
  return { kind: "static", addresses: [parseHostPort(target)], text: target };
}

/** Parse `host:port` or `[v6]:port`. */
export function parseHostPort(text: string): EndpointAddress {
  const colon = text.lastIndexOf(":");
  let host = text.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host, port: Number(text.slice(colon + 1)) };
}

/** `host:port`, with IPv6 addresses in brackets. */
export function formatAddress({ host, port }: EndpointAddress): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
