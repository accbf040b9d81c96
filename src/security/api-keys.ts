import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { Identity } from "./identity.js";

const keyFileSchema = z.array(
  z
    .object({
      id: z.string().min(1),
      /** Hex SHA-256 of the key: the file never holds a usable key. */
      sha256: z.string().regex(/^[0-9a-fA-F]{64}$/),
      scopes: z.array(z.string().min(1)).default([]),
    })
    .strict(),
);

/** Hex SHA-256 of an API key, as stored in the key file (`printf %s "$KEY" | sha256sum`). */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** API keys loaded from a file; a presented key is hashed and looked up, never stored in clear. */
export class ApiKeyStore {
  private readonly byHash = new Map<string, { digest: Buffer; identity: Identity }>();

  constructor(entries: z.infer<typeof keyFileSchema>) {
    for (const entry of entries) {
      const hex = entry.sha256.toLowerCase();
      this.byHash.set(hex, { digest: Buffer.from(hex, "hex"), identity: { principal: `key:${entry.id}`, scopes: new Set(entry.scopes) } });
    }
  }

  /** Read a YAML or JSON key list (a mounted Kubernetes Secret is such a file); throws on a malformed file. */
  static fromFile(fileName: string): ApiKeyStore {
    const parsed = keyFileSchema.safeParse(parseYaml(readFileSync(fileName, "utf8")) ?? []);
    if (!parsed.success) {
      throw new Error(`${fileName}: not a list of { id, sha256, scopes }: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    }
    return new ApiKeyStore(parsed.data);
  }

  /** The identity of a presented key, or undefined when it is unknown. */
  verify(key: string): Identity | undefined {
    const digest = createHash("sha256").update(key, "utf8").digest();
    const found = this.byHash.get(digest.toString("hex"));
    // The map lookup already matched; the constant-time compare guards against a future change to prefix matching.
    return found !== undefined && timingSafeEqual(found.digest, digest) ? found.identity : undefined;
  }
}
