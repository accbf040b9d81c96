import { z } from "zod";

/** Who may call a method: anyone, any authenticated caller, or callers holding every listed scope. */
const accessRuleSchema = z
  .object({
    /** `pkg.Service/Method`, `pkg.Service/*`, `pkg.*` (package and sub-packages) or `*`. */
    match: z
      .string()
      .regex(/^(\*|([A-Za-z_][\w]*\.)+\*|([A-Za-z_][\w]*\.)*[A-Za-z_][\w]*(\/(\*|[A-Za-z_][\w]*))?)$/, {
        message: "expected *, pkg.*, pkg.Service, pkg.Service/* or pkg.Service/Method",
      }),
    access: z.enum(["public", "authenticated"]).optional(),
    /** Every scope listed is required (implies authenticated). */
    scopes: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict()
  .refine((rule) => (rule.access === undefined) !== (rule.scopes === undefined), {
    message: "a rule needs exactly one of access or scopes",
  });

/** Authentication, per-method access rules, rate limiting and client certificates. */
export const securitySchema = z
  .object({
    /** API keys: a YAML or JSON list of `{ id, sha256, scopes }` (a mounted Kubernetes Secret is such a file). */
    apiKeys: z
      .object({
        file: z.string().min(1),
        /** Request header carrying the key. */
        header: z.string().min(1).default("x-api-key"),
      })
      .strict()
      .optional(),
    /** JWT bearer tokens (`authorization: Bearer …`), verified against a JWKS. */
    jwt: z
      .object({
        jwksFile: z.string().min(1).optional(),
        jwksUrl: z.string().url().optional(),
        issuer: z.string().min(1),
        audience: z.string().min(1),
        algorithms: z.array(z.string().min(1)).default(["RS256", "ES256", "EdDSA"]),
        clockToleranceSeconds: z.number().int().min(0).default(30),
      })
      .strict()
      .refine((jwt) => (jwt.jwksFile === undefined) !== (jwt.jwksUrl === undefined), {
        message: "set exactly one of jwksFile or jwksUrl",
      })
      .optional(),
    /** Access when no rule matches; `authenticated` once credentials are configured is the safe choice. */
    defaultAccess: z.enum(["public", "authenticated"]).default("authenticated"),
    /** grpc.health.v1.Health needs no credential (Kubernetes probes cannot send one); a rule for it overrides this. */
    publicHealth: z.boolean().default(true),
    /** Checked most specific first (exact method, service, longest package prefix, `*`). */
    rules: z.array(accessRuleSchema).default([]),
    rateLimit: z
      .object({
        enabled: z.boolean().default(false),
        /** Tokens added per second, per client identity (API key, JWT subject, or IP address). */
        requestsPerSecond: z.number().positive().default(50),
        /** Bucket size: the largest burst allowed. */
        burst: z.number().int().min(1).default(100),
        /** With a Redis URL, buckets live in Redis and every replica shares them. */
        redisUrl: z.string().min(1).optional(),
        /** Key prefix in Redis. */
        redisPrefix: z.string().min(1).default("gateway:ratelimit:"),
      })
      .strict()
      .prefault({}),
    /** Client certificates (mTLS) on the TLS listener: every client must present one signed by this CA. */
    clientCertificates: z
      .object({ caFile: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict();

/** The validated security section. */
export type SecurityConfig = z.infer<typeof securitySchema>;
/** One per-method access rule. */
export type AccessRule = z.infer<typeof accessRuleSchema>;
