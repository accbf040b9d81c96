import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { gatewayConfigSchema, type GatewayConfig } from "./gateway-config.js";

/** Raised when the configuration is invalid; `problems` lists every problem found, not just the first. */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`, options);
    this.name = "ConfigError";
  }
}

type EnvKind = "string" | "integer" | "boolean";

/** Every environment variable the gateway reads, the config path it sets and how to parse it. */
export const environmentVariables: ReadonlyArray<{ name: string; path: string[]; kind: EnvKind }> = [
  { name: "GATEWAY_HOST", path: ["host"], kind: "string" },
  { name: "GATEWAY_PORT", path: ["port"], kind: "integer" },
  { name: "GATEWAY_TLS_CERT_FILE", path: ["tls", "certFile"], kind: "string" },
  { name: "GATEWAY_TLS_KEY_FILE", path: ["tls", "keyFile"], kind: "string" },
  { name: "GATEWAY_REFLECTION", path: ["reflection", "enabled"], kind: "boolean" },
  { name: "GATEWAY_FAST_PATH", path: ["fastPath", "enabled"], kind: "boolean" },
  { name: "GATEWAY_LEAN_HTTP1", path: ["fastPath", "leanHttp1"], kind: "boolean" },
  { name: "GATEWAY_LEAN_HTTP2", path: ["fastPath", "leanHttp2"], kind: "boolean" },
  { name: "GATEWAY_MAX_MESSAGE_BYTES", path: ["limits", "maxMessageBytes"], kind: "integer" },
  { name: "GATEWAY_MAX_HEADER_BYTES", path: ["limits", "maxHeaderBytes"], kind: "integer" },
  { name: "GATEWAY_HEADERS_TIMEOUT_MS", path: ["limits", "headersTimeoutMs"], kind: "integer" },
  { name: "GATEWAY_IDLE_TIMEOUT_MS", path: ["limits", "idleTimeoutMs"], kind: "integer" },
  { name: "GATEWAY_MAX_CONCURRENT_STREAMS", path: ["limits", "maxConcurrentStreams"], kind: "integer" },
  { name: "GATEWAY_MAX_CONNECTION_AGE_MS", path: ["limits", "maxConnectionAgeMs"], kind: "integer" },
  { name: "GATEWAY_MAX_CONNECTION_AGE_GRACE_MS", path: ["limits", "maxConnectionAgeGraceMs"], kind: "integer" },
  { name: "GATEWAY_MAX_TIMEOUT_MS", path: ["limits", "maxTimeoutMs"], kind: "integer" },
  { name: "GATEWAY_SHUTDOWN_GRACE_MS", path: ["shutdown", "graceMs"], kind: "integer" },
  { name: "GATEWAY_LOG_LEVEL", path: ["log", "level"], kind: "string" },
  { name: "GATEWAY_GC_PACING_STEP_MB", path: ["gcPacing", "stepMb"], kind: "integer" },
  { name: "GATEWAY_WEB_APP", path: ["web", "app", "enabled"], kind: "boolean" },
  { name: "GATEWAY_EXPLORER", path: ["web", "explorer", "enabled"], kind: "boolean" },
  { name: "GATEWAY_CORS_ALLOWED_ORIGINS", path: ["web", "cors", "allowedOrigins"], kind: "string" },
  { name: "GATEWAY_METRICS", path: ["observability", "metrics", "enabled"], kind: "boolean" },
  { name: "GATEWAY_TRACING", path: ["observability", "tracing", "enabled"], kind: "boolean" },
  { name: "GATEWAY_OTLP_TRACES_ENDPOINT", path: ["observability", "tracing", "otlpEndpoint"], kind: "string" },
  { name: "GATEWAY_API_KEYS_FILE", path: ["security", "apiKeys", "file"], kind: "string" },
  { name: "GATEWAY_JWT_JWKS_FILE", path: ["security", "jwt", "jwksFile"], kind: "string" },
  { name: "GATEWAY_JWT_JWKS_URL", path: ["security", "jwt", "jwksUrl"], kind: "string" },
  { name: "GATEWAY_JWT_ISSUER", path: ["security", "jwt", "issuer"], kind: "string" },
  { name: "GATEWAY_JWT_AUDIENCE", path: ["security", "jwt", "audience"], kind: "string" },
  { name: "GATEWAY_DEFAULT_ACCESS", path: ["security", "defaultAccess"], kind: "string" },
  { name: "GATEWAY_RATE_LIMIT", path: ["security", "rateLimit", "enabled"], kind: "boolean" },
  { name: "GATEWAY_RATE_LIMIT_RPS", path: ["security", "rateLimit", "requestsPerSecond"], kind: "integer" },
  { name: "GATEWAY_RATE_LIMIT_BURST", path: ["security", "rateLimit", "burst"], kind: "integer" },
  { name: "RATE_LIMIT_REDIS_URL", path: ["security", "rateLimit", "redisUrl"], kind: "string" },
  { name: "GATEWAY_TLS_CLIENT_CA_FILE", path: ["security", "clientCertificates", "caFile"], kind: "string" },
];

/** The environment variable that names an optional YAML or JSON config file. */
export const CONFIG_FILE_VARIABLE = "GATEWAY_CONFIG_FILE";

/**
 * Build the configuration from an optional file and the environment (the environment wins),
 * validate it once, and throw a ConfigError listing every problem.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems: string[] = [];
  const fileName = env[CONFIG_FILE_VARIABLE];
  let raw: Record<string, unknown> = {};
  if (fileName !== undefined && fileName !== "") {
    const fromFile = readConfigFile(fileName, problems);
    if (fromFile !== undefined) raw = fromFile;
  }
  for (const variable of environmentVariables) {
    const text = env[variable.name];
    if (text === undefined || text === "") continue;
    const value = parseEnvValue(text, variable.kind);
    if (value === undefined) {
      problems.push(`${variable.name}: expected ${describeKind(variable.kind)}, got ${JSON.stringify(text)}`);
      continue;
    }
    setPath(raw, variable.path, value);
  }
  return parseConfig(raw, problems, fileName);
}

/** Validate an already-parsed config object (for example a ConfigMap's contents); throws ConfigError. */
export function parseConfig(raw: unknown, earlierProblems: string[] = [], sourceName?: string): GatewayConfig {
  const result = gatewayConfigSchema.safeParse(raw);
  const problems = [...earlierProblems];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const where = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
      const envName = environmentVariables.find((v) => v.path.join(".") === issue.path.join("."))?.name;
      const origin = envName ? ` (config key, or ${envName})` : sourceName ? ` (in ${sourceName})` : "";
      problems.push(`${where}${origin}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(problems, { cause: result.success ? undefined : result.error });
  }
  return result.data;
}

function readConfigFile(fileName: string, problems: string[]): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(fileName, "utf8");
  } catch (cause) {
    problems.push(`${CONFIG_FILE_VARIABLE}: cannot read ${fileName}: ${(cause as Error).message}`);
    return undefined;
  }
  let parsed: unknown;
  try {
    // YAML is a superset of JSON, but JSON files get JSON's stricter error messages.
    parsed = extname(fileName) === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    problems.push(`${fileName}: not valid ${extname(fileName) === ".json" ? "JSON" : "YAML"}: ${(cause as Error).message}`);
    return undefined;
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    problems.push(`${fileName}: the top level must be a mapping of settings`);
    return undefined;
  }
  return parsed as Record<string, unknown>;
}

function parseEnvValue(text: string, kind: EnvKind): unknown {
  switch (kind) {
    case "string":
      return text;
    case "integer":
      return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : undefined;
    case "boolean": {
      const lower = text.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(lower)) return true;
      if (["false", "0", "no", "off"].includes(lower)) return false;
      return undefined;
    }
  }
}

function describeKind(kind: EnvKind): string {
  return kind === "integer" ? "an integer" : kind === "boolean" ? "true or false" : "a string";
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

