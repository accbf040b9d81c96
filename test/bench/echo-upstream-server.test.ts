import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it, vi } from "vitest";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { SERVERS } from "../../bench/servers/registry.js";
import { UPSTREAM_STREAM_TABLES_ENV } from "../../bench/servers/upstream-stream-tables.js";

/**
 * The proxy cases' upstream, started by its registry entry as the benchmark starts it: three Echo
 * calls on one connection, then its stderr once it has stopped.
 */
async function echoThreeTimes(upstreamStreamTables: boolean): Promise<{ texts: string[]; stderr: () => string }> {
  const server = await SERVERS.find((spec) => spec.id === "echo-upstream")!.start({ upstreamStreamTables });
  const texts: string[] = [];
  try {
    const client = createClient(EchoService, createGrpcTransport({ baseUrl: server.endpoint("grpc")!.url }));
    for (const text of ["a", "b", "c"]) texts.push((await client.echo({ text })).text);
  } finally {
    await server.stop(2000);
  }
  return { texts, stderr: () => server.stderrTail() };
}

/** The upstream's last stderr line, which its SIGTERM handler writes (it may arrive just after the exit). */
function tablesLine(stderr: () => string): Promise<string> {
  return vi.waitFor(() => {
    const match = /stream tables (off|on \d+ sessions)/.exec(stderr());
    expect(match).not.toBeNull();
    return match![1];
  });
}

describe("the benchmark's echo upstream (bench/servers/echo-upstream-server.ts)", () => {
  it("answers as plain grpc-js by default, without the gateway's stream tables", async () => {
    const { texts, stderr } = await echoThreeTimes(false);
    expect(texts).toEqual(["a", "b", "c"]);
    expect(await tablesLine(stderr)).toBe("off");
  }, 60_000);

  it("gives its sessions the gateway's stream tables with --upstream-stream-tables, and still answers", async () => {
    const { texts, stderr } = await echoThreeTimes(true);
    expect(texts).toEqual(["a", "b", "c"]);
    const sessions = Number(/\d+/.exec(await tablesLine(stderr))?.[0]);
    // The registry's readiness probe and this client each opened one.
    expect(sessions).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it("ignores the variable when the runner did not ask for the tables, so a shell cannot turn them on unannounced", async () => {
    process.env[UPSTREAM_STREAM_TABLES_ENV] = "1";
    try {
      const { stderr } = await echoThreeTimes(false);
      expect(await tablesLine(stderr)).toBe("off");
    } finally {
      delete process.env[UPSTREAM_STREAM_TABLES_ENV];
    }
  }, 60_000);
});
