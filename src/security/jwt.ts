import { readFileSync } from "node:fs";
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from "jose";
import type { SecurityConfig } from "../config/security-config.js";
import type { Identity } from "./identity.js";

type JwtConfig = NonNullable<SecurityConfig["jwt"]>;

/** Verified tokens kept, so a client reusing its token pays one signature check, not one per call. */
const CACHE_LIMIT = 10_000;

/** JWT bearer tokens checked against a JWKS (file or URL): signature, issuer, audience and expiry. */
export class JwtVerifier {
  private readonly keys: JWTVerifyGetKey;
  private readonly cache = new Map<string, { identity: Identity; expiresAtMs: number }>();

  constructor(private readonly config: JwtConfig) {
    this.keys =
      config.jwksFile !== undefined
        ? createLocalJWKSet(JSON.parse(readFileSync(config.jwksFile, "utf8")))
        : createRemoteJWKSet(new URL(config.jwksUrl!), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
  }

  /** The identity the token proves, or undefined for any invalid token (the reason is not the client's business). */
  async verify(token: string): Promise<Identity | undefined> {
    const now = Date.now();
    const cached = this.cache.get(token);
    if (cached !== undefined) {
      if (cached.expiresAtMs > now) return cached.identity;
      this.cache.delete(token);
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        algorithms: this.config.algorithms,
        clockTolerance: this.config.clockToleranceSeconds,
        requiredClaims: ["exp", "sub"],
      }));
    } catch {
      return undefined;
    }
    const scopes = new Set<string>();
    if (typeof payload.scope === "string") for (const s of payload.scope.split(" ")) if (s) scopes.add(s);
    if (Array.isArray(payload.scp)) for (const s of payload.scp) if (typeof s === "string") scopes.add(s);
    const identity: Identity = { principal: `jwt:${payload.sub}`, scopes };
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    // Cached only until expiry (without the tolerance): an expired token is verified again and refused.
    this.cache.set(token, { identity, expiresAtMs: payload.exp! * 1000 });
    return identity;
  }
}
