import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { EchoService } from "../../gen/test/upstream/v1/echo_pb.js";
import { SERVERS } from "../../bench/servers/registry.js";

/** The proxy cases' upstream, started by its registry entry as the benchmark starts it; three Echo calls on one connection; its stderr after it stopped. */
async function echoThreeTimes(upstreamStreamTables: boolean): Promise<{ texts: string[]; stderr: string }> {
  const server = await SERVERS.find((spec) => spec.id === "echo-upstream")!.start({ upstreamStreamTables });
  const texts: string[] = [];
  try {
    const client = createClient(EchoService, createGrpcTransport({ baseUrl: server.endpoint("grpc")!.url }));
    for (const text of ["a", "b", "c"]) texts.push((await client.echo({ text })).text);
  } finally {
    // stop() waits for the exit, and the SIGTERM handler writes before it exits.
    await server.stop(2000);
  }
  return { texts, stderr: server.stderrTail() };
}

describe("the benchmark's echo upstream (bench/servers/echo-upstream-server.ts)", () => {
  it("answers as plain grpc-js by default, without the gateway's stream tables", async () => {
    const { texts, stderr } = await echoThreeTimes(false);
    expect(texts).toEqual(["a", "b", "c"]);
    expect(stderr).not.toContain("stream tables");
  }, 60_000);

  it("gives its sessions the gateway's stream tables with --upstream-stream-tables, and still answers", async () => {
    const { texts, stderr } = await echoThreeTimes(true);
    expect(texts).toEqual(["a", "b", "c"]);
    // The registry's readiness probe and the client each open a session.
    expect(stderr).toMatch(/stream tables on [1-9]\d* sessions/);
  }, 60_000);
});
