import { defineConfig } from "vitest/config";

/**
 * The suites that serve HTTP/2 end to end, run a second time with cleartext HTTP/2 on Node's
 * http2 server (fastPath.leanHttp2 off) instead of the gateway's own (the default): the same
 * clients and assertions must hold on both servers, and TLS connections always use Node's. Each
 * starts its gateway with test/support/start-gateway.ts or as a process (both read
 * GATEWAY_LEAN_HTTP2), or reads the variable itself (the differential test).
 */
const NODE_HTTP2_SUITES = [
  "test/e2e/protocol-matrix.test.ts",
  "test/e2e/error-paths.test.ts",
  "test/e2e/shutdown.test.ts",
  "test/server/fast-path/**/*.test.ts",
  "test/server/max-connection-age.test.ts",
  "test/server/reset-budget.test.ts",
  "test/server/single-port-server.test.ts",
  "test/http2/stream-tables.test.ts",
  "test/upstream/upstream-protocols.test.ts",
  "test/reliability/hostile-input.test.ts",
  "test/reliability/stream-reset.test.ts",
  "test/reliability/soak.test.ts",
  "test/security/auth.test.ts",
  "test/interceptors/access-log.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers and child processes; two cores are shared between them.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2 } },
    projects: [
      { extends: true, test: { name: "default", include: ["test/**/*.test.ts"] } },
      { extends: true, test: { name: "node-http2", include: NODE_HTTP2_SUITES, env: { GATEWAY_LEAN_HTTP2: "false" } } },
    ],
  },
});
