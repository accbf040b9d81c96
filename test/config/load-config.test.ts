import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../../src/config/load-config.js";

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), "gateway-config-"));
  tempDirs.push(dir);
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("fills every default when nothing is set", () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.host).toBeUndefined();
    expect(config.reflection.enabled).toBe(true);
    expect(config.limits).toEqual({
      maxMessageBytes: 4 * 1024 * 1024,
      maxHeaderBytes: 16 * 1024,
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 120_000,
      maxConcurrentStreams: 256,
      maxConnectionAgeMs: 0,
      maxConnectionAgeGraceMs: 30_000,
      maxTimeoutMs: 0,
    });
    expect(config.fastPath).toEqual({ enabled: true, leanHttp1: true, leanHttp2: true });
    expect(config.shutdown.graceMs).toBe(20_000);
    expect(config.log.level).toBe("info");
    expect(config.gcPacing.stepMb).toBe(8);
  });

  it("reads environment variables with their types", () => {
    const config = loadConfig({
      GATEWAY_PORT: "9090",
      GATEWAY_HOST: "127.0.0.1",
      GATEWAY_REFLECTION: "off",
      GATEWAY_MAX_MESSAGE_BYTES: "1024",
      GATEWAY_LOG_LEVEL: "warn",
      GATEWAY_GC_PACING_STEP_MB: "0",
      GATEWAY_LEAN_HTTP1: "false",
    });
    expect(config.port).toBe(9090);
    expect(config.host).toBe("127.0.0.1");
    expect(config.reflection.enabled).toBe(false);
    expect(config.limits.maxMessageBytes).toBe(1024);
    expect(config.log.level).toBe("warn");
    expect(config.gcPacing.stepMb).toBe(0);
    expect(config.fastPath.leanHttp1).toBe(false);
  });

  it("reads a YAML file and lets the environment override it", () => {
    const file = tempFile("gateway.yaml", "port: 7000\nlimits:\n  maxConcurrentStreams: 10\nlog:\n  level: debug\n");
    const config = loadConfig({ GATEWAY_CONFIG_FILE: file, GATEWAY_LOG_LEVEL: "error" });
    expect(config.port).toBe(7000);
    expect(config.limits.maxConcurrentStreams).toBe(10);
    expect(config.log.level).toBe("error");
  });

  it("reads a JSON file", () => {
    const file = tempFile("gateway.json", JSON.stringify({ shutdown: { graceMs: 5 } }));
    expect(loadConfig({ GATEWAY_CONFIG_FILE: file }).shutdown.graceMs).toBe(5);
  });

  it("reports every problem at once, naming the setting and the variable", () => {
    const problems = problemsOf(() =>
      loadConfig({
        GATEWAY_PORT: "eighty",
        GATEWAY_REFLECTION: "maybe",
        GATEWAY_MAX_CONCURRENT_STREAMS: "0",
        GATEWAY_LOG_LEVEL: "loud",
      }),
    );
    expect(problems).toHaveLength(4);
    expect(problems.join("\n")).toContain('GATEWAY_PORT: expected an integer, got "eighty"');
    expect(problems.join("\n")).toContain('GATEWAY_REFLECTION: expected true or false, got "maybe"');
    expect(problems.join("\n")).toMatch(/limits\.maxConcurrentStreams.*GATEWAY_MAX_CONCURRENT_STREAMS/);
    expect(problems.join("\n")).toMatch(/log\.level.*GATEWAY_LOG_LEVEL/);
  });

  it("rejects unknown keys in a file, so typos do not pass silently", () => {
    const file = tempFile("gateway.yaml", "port: 8080\nlimts:\n  maxMessageBytes: 5\n");
    const problems = problemsOf(() => loadConfig({ GATEWAY_CONFIG_FILE: file }));
    expect(problems.join("\n")).toMatch(/limts/);
  });

  it("reports an unreadable or malformed file", () => {
    expect(problemsOf(() => loadConfig({ GATEWAY_CONFIG_FILE: "/nonexistent/gateway.yaml" }))[0]).toMatch(
      /GATEWAY_CONFIG_FILE: cannot read \/nonexistent\/gateway.yaml/,
    );
    const broken = tempFile("gateway.json", "{ not json");
    expect(problemsOf(() => loadConfig({ GATEWAY_CONFIG_FILE: broken }))[0]).toMatch(/not valid JSON/);
    const list = tempFile("gateway.yaml", "- 1\n- 2\n");
    expect(problemsOf(() => loadConfig({ GATEWAY_CONFIG_FILE: list }))[0]).toMatch(/must be a mapping/);
  });

  it("requires both halves of the TLS setting", () => {
    const problems = problemsOf(() => parseConfig({ tls: { certFile: "cert.pem" } }));
    expect(problems.join("\n")).toMatch(/tls\.keyFile/);
  });
});
