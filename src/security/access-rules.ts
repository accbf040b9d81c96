import type { DescMethod } from "@bufbuild/protobuf";
import type { AccessRule, SecurityConfig } from "../config/security-config.js";

/** What a method requires: nothing, a verified identity, or a verified identity with these scopes. */
export type Requirement = { kind: "public" } | { kind: "authenticated"; scopes: readonly string[] };

/**
 * The per-method rules, resolved once per method (most specific match wins: exact method,
 * whole service, longest package prefix, `*`) and cached, so a call does no matching.
 */
export class AccessRules {
  private readonly resolved = new WeakMap<DescMethod, Requirement>();

  private readonly rules: readonly AccessRule[];

  constructor(config: Pick<SecurityConfig, "rules" | "defaultAccess" | "publicHealth">) {
    // Kubernetes gRPC probes and load balancers cannot present credentials; a rule naming health overrides this.
    this.rules = config.publicHealth ? [{ match: "grpc.health.v1.Health/*", access: "public" }, ...config.rules] : config.rules;
    this.defaultAccess = config.defaultAccess;
  }

  private readonly defaultAccess: SecurityConfig["defaultAccess"];

  /** The requirement for a method. */
  requirementFor(method: DescMethod): Requirement {
    let requirement = this.resolved.get(method);
    if (requirement === undefined) {
      requirement = this.resolve(method.parent.typeName, method.name);
      this.resolved.set(method, requirement);
    }
    return requirement;
  }

  private resolve(service: string, method: string): Requirement {
    let best: AccessRule | undefined;
    let bestScore = -1;
    for (const rule of this.rules) {
      const score = specificity(rule.match, service, method);
      // On a tie the later rule wins, so a configured rule overrides the built-in health rule.
      if (score >= 0 && score >= bestScore) [best, bestScore] = [rule, score];
    }
    if (best === undefined) return this.defaultAccess === "public" ? { kind: "public" } : { kind: "authenticated", scopes: [] };
    if (best.scopes !== undefined) return { kind: "authenticated", scopes: best.scopes };
    return best.access === "public" ? { kind: "public" } : { kind: "authenticated", scopes: [] };
  }
}

/** How specifically `pattern` matches the method; -1 when it does not. */
function specificity(pattern: string, service: string, method: string): number {
  if (pattern === "*") return 0;
  if (pattern === `${service}/${method}`) return 3_000_000;
  if (pattern === `${service}/*` || pattern === service) return 2_000_000;
  if (pattern.endsWith(".*")) {
    const prefix = pattern.slice(0, -1);
    if (service.startsWith(prefix)) return 1_000_000 + prefix.length;
  }
  return -1;
}
