import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { hashApiKey } from "../../src/security/api-keys.js";

export const ISSUER = "https://issuer.test";
export const AUDIENCE = "connect-gateway";
export const API_KEY = "k_live_4f8a1c0e9d2b7e6a";
export const CALC_API_KEY = "k_live_calc_77aa01";

/** Key files, a JWKS and token signers in a fresh temporary directory. */
export interface SecurityFixtures {
  dir: string;
  apiKeysFile: string;
  jwksFile: string;
  /** Sign a token with the trusted key (claims override the defaults: valid for an hour). */
  token(claims?: Record<string, unknown>, options?: { expiresIn?: string | number; audience?: string; issuer?: string }): Promise<string>;
  /** Sign with a key the gateway does not trust, but the trusted key's kid. */
  forged(claims?: Record<string, unknown>): Promise<string>;
  /** Delete the fixture files (call once the gateways using them have stopped). */
  remove(): void;
}

/** Create the fixtures: two API keys (one with scope calc) and an ES256 JWKS. */
export async function createSecurityFixtures(): Promise<SecurityFixtures> {
  const dir = mkdtempSync(join(tmpdir(), "gateway-security-"));
  const apiKeysFile = join(dir, "api-keys.yaml");
  writeFileSync(
    apiKeysFile,
    `- id: ci-bot\n  sha256: ${hashApiKey(API_KEY)}\n- id: calc-bot\n  sha256: ${hashApiKey(CALC_API_KEY)}\n  scopes: [calc]\n`,
  );
  const trusted = await generateKeyPair("ES256", { extractable: true });
  const untrusted = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(trusted.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const sign = (key: CryptoKey, claims: Record<string, unknown>, options: { expiresIn?: string | number; audience?: string; issuer?: string }) =>
    new SignJWT({ sub: "user-1", ...claims })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(options.issuer ?? ISSUER)
      .setAudience(options.audience ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? "1h")
      .sign(key);
  return {
    dir,
    apiKeysFile,
    jwksFile,
    token: (claims = {}, options = {}) => sign(trusted.privateKey, claims, options),
    forged: (claims = {}) => sign(untrusted.privateKey, claims, {}),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
