import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { SecurityConfig } from "../config/security-config.js";
import { withRequestId } from "../interceptors/access-log.js";
import { logRefusedCall } from "../interceptors/refusal-log.js";
import { rpcProtocolOf } from "../interceptors/rpc-protocol.js";
import type { Logger } from "../ops/logger.js";
import type { GatewayMetrics } from "../ops/metrics.js";
import { AccessRules } from "./access-rules.js";
import { ApiKeyStore } from "./api-keys.js";
import { identityKey, PEER_HEADER, type Identity } from "./identity.js";
import { JwtVerifier } from "./jwt.js";
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from "./rate-limit.js";

/** connect-node's request gate: runs before the request body is read. */
export type RequestGate = (context: HandlerContext) => Promise<void>;

/** The gate and what must be closed with the gateway. */
export interface Security {
  /** Undefined when neither authentication nor rate limiting is configured: no call pays for it. */
  gate: RequestGate | undefined;
  close(): Promise<void>;
}

// Deliberately vague: which check failed (unknown key, bad signature, wrong audience) is for the log, not the client.
const unauthenticated = () => new ConnectError("unauthenticated", Code.Unauthenticated);
const permissionDenied = () => new ConnectError("permission denied", Code.PermissionDenied);

/**
 * Authentication (API keys, JWT bearer tokens), per-method access rules and rate limiting per
 * identity, as one request gate. Refused calls never reach the interceptors, so the gate writes
 * their access-log line and metrics itself.
 */
export function createSecurity(config: SecurityConfig, deps: { logger: Logger; metrics?: GatewayMetrics }): Security {
  const apiKeys = config.apiKeys && ApiKeyStore.fromFile(config.apiKeys.file);
  const apiKeyHeader = config.apiKeys?.header ?? "x-api-key";
  const jwt = config.jwt && new JwtVerifier(config.jwt);
  const authEnabled = apiKeys !== undefined || jwt !== undefined;
  const rules = new AccessRules(authEnabled ? config : { rules: [], defaultAccess: "public", publicHealth: true });
  if (!authEnabled && config.rules.length > 0) {
    deps.logger.warn("security.rules are set but no apiKeys or jwt is configured: rules are not enforced");
  }
  const limit = config.rateLimit;
  let limiter: RateLimiter | undefined;
  if (limit.enabled || limit.redisUrl !== undefined) {
    limiter =
      limit.redisUrl !== undefined
        ? new RedisRateLimiter(limit.redisUrl, limit.requestsPerSecond, limit.burst, limit.redisPrefix, deps.logger)
        : new MemoryRateLimiter(limit.requestsPerSecond, limit.burst);
  }
  if (!authEnabled && limiter === undefined) return { gate: undefined, close: async () => {} };

  const authenticate = async (headers: Headers): Promise<Identity | undefined> => {
    if (apiKeys !== undefined) {
      const key = headers.get(apiKeyHeader);
      if (key !== null) return apiKeys.verify(key);
    }
    if (jwt !== undefined) {
      const authorization = headers.get("authorization");
      if (authorization !== null && authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === "bearer ") {
        return jwt.verify(authorization.slice(7).trim());
      }
    }
    return undefined;
  };

  const refuse = (context: HandlerContext, error: ConnectError, reason: string, identity: Identity | undefined): ConnectError => {
    deps.metrics?.seriesFor(context.method, rpcProtocolOf(context.requestHeader.get("content-type"))).refused(error.code);
    const requestId = logRefusedCall(deps.logger, {
      method: `${context.service.typeName}/${context.method.name}`,
      httpMethod: context.requestMethod,
      header: (name) => context.requestHeader.get(name),
      code: error.code,
      reason,
      principal: identity?.principal,
    });
    return withRequestId(error, requestId);
  };

  const gate: RequestGate = async (context) => {
    let identity: Identity | undefined;
    if (authEnabled) {
      const requirement = rules.requirementFor(context.method);
      if (requirement.kind === "authenticated") {
        identity = await authenticate(context.requestHeader);
        if (identity === undefined) throw refuse(context, unauthenticated(), "unauthenticated", undefined);
        for (const scope of requirement.scopes) {
          if (!identity.scopes.has(scope)) throw refuse(context, permissionDenied(), `missing scope ${scope}`, identity);
        }
        context.values.set(identityKey, identity);
      }
    }
    if (limiter !== undefined) {
      const key = identity?.principal ?? `ip:${context.requestHeader.get(PEER_HEADER) ?? "unknown"}`;
      const waitMs = await limiter.take(key);
      if (waitMs > 0) {
        deps.metrics?.recordRateLimited(context.method);
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        const error = new ConnectError(`rate limit exceeded, retry after ${seconds}s`, Code.ResourceExhausted, { "retry-after": String(seconds) });
        throw refuse(context, error, "rate limited", identity);
      }
    }
  };
  return { gate, close: () => limiter?.close() ?? Promise.resolve() };
}
