import { createContextKey } from "@connectrpc/connect";

/** Who is calling, once a credential was verified. */
export interface Identity {
  /** Stable key for rate limiting and logs: `key:<id>` or `jwt:<sub>`. */
  principal: string;
  scopes: ReadonlySet<string>;
}

/** The verified identity of the current call (undefined: anonymous), set by the request gate. */
export const identityKey = createContextKey<Identity | undefined>(undefined, { description: "caller identity" });

/**
 * The gateway writes the client's address into this request header on arrival (overwriting
 * anything the client sent), because connect's handler context carries no socket. It is a
 * per-hop header: header-policy.ts never forwards it upstream.
 */
export const PEER_HEADER = "x-gateway-peer";
