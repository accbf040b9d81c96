import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installGcFriendlyStreamTables, PendingStreamList, StreamTable } from "../../src/http2/stream-tables.js";
import { keptSpecimens } from "../../src/ops/shape-specimens.js";
import { startIsolatedGateway, type IsolatedGateway } from "../support/hostile-gateway.js";
import { startStreamChurnServer } from "../support/stream-churn-server.js";
import { startUpstreams, type UpstreamProcess } from "../support/upstream-fleet.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import type { GcProbeReading } from "../support/gc-probe.js";

/** A small deterministic random sequence, so a failure replays. */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

describe("StreamTable", () => {
  it("answers like a Map through a long run of adds and deletes", () => {
    const random = seededRandom(7);
    const table = new StreamTable<string>();
    const map = new Map<number, string>();
    let nextId = 1;
    for (let step = 0; step < 20_000; step++) {
      if (random() < 0.52 || map.size === 0) {
        const id = nextId;
        nextId += 2;
        table.set(id, `stream ${id}`);
        map.set(id, `stream ${id}`);
      } else {
        const ids = [...map.keys()];
        const id = random() < 0.1 ? nextId + 2 : ids[Math.floor(random() * ids.length)];
        expect(table.delete(id)).toBe(map.delete(id));
      }
      const probe = Math.floor(random() * nextId);
      expect(table.get(probe)).toBe(map.get(probe));
      expect(table.size).toBe(map.size);
    }
    const seen: [number, string][] = [];
    table.forEach((stream, id) => seen.push([id, stream]));
    expect(seen).toEqual([...map.entries()]);
    expect([...table.values()]).toEqual([...map.values()]);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.get(1)).toBeUndefined();
  });

  it("skips a stream that an earlier forEach callback removed, as Map.forEach does", () => {
    const table = new StreamTable<string>().set(1, "a").set(3, "b").set(5, "c");
    const visited: number[] = [];
    table.forEach((_stream, id) => {
      visited.push(id);
      table.delete(id);
      if (id === 1) table.delete(5);
    });
    expect(visited).toEqual([1, 3]);
    expect(table.size).toBe(0);
  });

  it("keeps the stream it removes last as its class's shape specimen", () => {
    class EndedStream {
      constructor(readonly id: number) {}
    }
    const table = new StreamTable<EndedStream>().set(1, new EndedStream(1)).set(3, new EndedStream(3));
    const last = table.get(3)!;
    table.delete(1);
    table.delete(3);
    const kept = keptSpecimens().filter((value) => value instanceof EndedStream);
    expect(kept).toHaveLength(1);
    expect(kept[0]).toBe(last);
    // A miss removes nothing and keeps nothing.
    const before = keptSpecimens();
    expect(table.delete(5)).toBe(false);
    const after = keptSpecimens();
    expect(after).toHaveLength(before.length);
    after.forEach((value, i) => expect(value).toBe(before[i]));
  });
});

describe("PendingStreamList", () => {
  it("answers like a Set, and its forEach skips what an earlier callback removed", () => {
    const list = new PendingStreamList<object>();
    const set = new Set<object>();
    const [a, b, c] = [{}, {}, {}];
    for (const item of [a, b, a, c]) {
      list.add(item);
      set.add(item);
    }
    expect(list.size).toBe(set.size);
    expect(list.delete(b)).toBe(set.delete(b));
    expect(list.delete(b)).toBe(set.delete(b));
    const listed: object[] = [];
    list.forEach((item) => listed.push(item));
    expect(listed).toEqual([...set.values()]);
    expect(listed).toEqual([a, c]);
    list.add(b);
    const visited: object[] = [];
    list.forEach((item) => {
      visited.push(item);
      list.delete(item);
      if (item === a) list.delete(b);
    });
    expect(visited).toEqual([a, c]);
    expect(list.size).toBe(0);
  });
});

/** Node's private per-session stream table, to check which kind is in place. */
function nodeStreamTableOf(session: http2.Http2Session): unknown {
  for (const key of Object.getOwnPropertySymbols(session)) {
    const state = (session as unknown as Record<symbol, { streams?: unknown }>)[key];
    if (key.description === "state" && state && typeof state === "object" && "streams" in state) return state.streams;
  }
  return undefined;
}

describe("Node's HTTP/2 sessions with the GC-friendly tables installed", () => {
  let server: http2.Http2Server;
  let url: string;
  const serverSessions: http2.ServerHttp2Session[] = [];
  /** Streams the server holds open until the test calls respond(). */
  const held: http2.ServerHttp2Stream[] = [];
  beforeAll(async () => {
    server = http2.createServer();
    server.on("session", (session) => {
      expect(installGcFriendlyStreamTables(session)).toBe(true);
      serverSessions.push(session);
    });
    server.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      if (headers[":path"] === "/hold") held.push(stream);
      else stream.respond({ ":status": 200 }, { endStream: true });
      stream.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const session of serverSessions) session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function connect(): http2.ClientHttp2Session {
    const client = http2.connect(url);
    client.on("error", () => {});
    expect(installGcFriendlyStreamTables(client)).toBe(true);
    return client;
  }

  function request(client: http2.ClientHttp2Session, path: string): Promise<{ status?: number; error?: Error }> {
    return new Promise((resolve) => {
      const stream = client.request({ ":method": "POST", ":path": path }, { endStream: true });
      let status: number | undefined;
      let error: Error | undefined;
      stream.on("response", (headers) => (status = headers[":status"]));
      stream.on("error", (err) => (error = err));
      stream.on("close", () => resolve({ status, error }));
      stream.resume();
    });
  }

  const sessionClosed = (session: http2.Http2Session) =>
    new Promise<void>((resolve) => (session.closed && session.destroyed ? resolve() : session.once("close", () => resolve())));

  it("replaces Node's Map on both ends, and many concurrent streams complete", async () => {
    const client = connect();
    const results = await Promise.all(Array.from({ length: 200 }, () => request(client, "/now")));
    expect(results.every((result) => result.status === 200 && !result.error)).toBe(true);
    expect(nodeStreamTableOf(client)).toBeInstanceOf(StreamTable);
    expect(nodeStreamTableOf(serverSessions.at(-1)!)).toBeInstanceOf(StreamTable);
    expect((nodeStreamTableOf(serverSessions.at(-1)!) as StreamTable<unknown>).size).toBe(0);
    client.close();
    await sessionClosed(client);
  });

  it("a graceful close lets the open streams finish", async () => {
    const client = connect();
    const first = request(client, "/hold");
    const second = request(client, "/hold");
    await waitUntil(() => held.length === 2);
    const session = serverSessions.at(-1)!;
    session.close();
    let closed = false;
    void sessionClosed(session).then(() => (closed = true));
    // One stream ends: Node then checks (in the table) whether any are left before closing the session.
    held.shift()!.respond({ ":status": 204 }, { endStream: true });
    expect((await first).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed).toBe(false);
    held.shift()!.respond({ ":status": 204 }, { endStream: true });
    expect((await second).status).toBe(204);
    await sessionClosed(session);
  });

  it("a lost connection still closes every open stream (Node walks the table)", async () => {
    const client = connect();
    const pending = [request(client, "/hold"), request(client, "/hold"), request(client, "/hold")];
    await waitUntil(() => held.length === 3);
    const streams = held.splice(0);
    const serverClosed = Promise.all(streams.map((stream) => new Promise((resolve) => stream.once("close", resolve))));
    client.destroy();
    await serverClosed;
    expect(streams.every((stream) => stream.closed)).toBe(true);
    await Promise.all(pending);
  });

  it("takes over the streams already open when installed late, and Node still finds and closes them", async () => {
    const client = http2.connect(url);
    client.on("error", () => {});
    const answered = request(client, "/hold");
    const cut = request(client, "/hold");
    await waitUntil(() => held.length === 2);
    expect(installGcFriendlyStreamTables(client)).toBe(true);
    const table = nodeStreamTableOf(client) as StreamTable<unknown>;
    expect(table).toBeInstanceOf(StreamTable);
    expect(table.size).toBe(2);
    held.shift()!.respond({ ":status": 204 }, { endStream: true });
    expect((await answered).status).toBe(204);
    expect(table.size).toBe(1);
    held.splice(0);
    client.destroy();
    const result = await cut;
    expect(result.status).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it("keeps a client's requests made before it is connected, sends them on connect, and cancels them on destroy", async () => {
    const early = connect();
    const sent = await Promise.all([request(early, "/now"), request(early, "/now")]);
    expect(sent.map((result) => result.status)).toEqual([200, 200]);
    early.close();

    const dropped = connect();
    const cancelled = [request(dropped, "/now"), request(dropped, "/now")];
    dropped.destroy();
    const results = await Promise.all(cancelled);
    expect(results.map((result) => (result.error as NodeJS.ErrnoException | undefined)?.code)).toEqual([
      "ERR_HTTP2_STREAM_CANCEL",
      "ERR_HTTP2_STREAM_CANCEL",
    ]);
  });

  it("changes nothing on an object that lacks Node's session state", () => {
    expect(installGcFriendlyStreamTables(new EventEmitter() as unknown as http2.Http2Session)).toBe(false);
  });
});

/** Polls until `condition` holds. */
async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * `total` gRPC-framed POSTs to `path` over one HTTP/2 connection, `inFlight` at a time; rejects
 * unless every one got a 200 and grpc-status 0. `afterFirst` runs (with the calls still going) once `first` completed.
 */
async function callMany(
  url: string,
  path: string,
  total: number,
  inFlight: number,
  midway?: { first: number; afterFirst: () => Promise<void> },
): Promise<void> {
  const client = http2.connect(url);
  client.on("error", () => {});
  const emptyMessage = Buffer.alloc(5);
  const call = () =>
    new Promise<void>((resolve, reject) => {
      const stream = client.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
      let grpcStatus: unknown;
      stream.on("response", (headers) => {
        if (headers[":status"] !== 200) reject(new Error(`status ${headers[":status"]}`));
        grpcStatus = headers["grpc-status"]; // a trailers-only answer
      });
      stream.on("trailers", (trailers) => (grpcStatus = trailers["grpc-status"]));
      stream.on("error", reject);
      stream.on("close", () => (grpcStatus === "0" ? resolve() : reject(new Error(`${path}: grpc-status ${String(grpcStatus)}`))));
      stream.resume();
      stream.end(emptyMessage);
    });
  let started = 0;
  let completed = 0;
  let midwayDone: Promise<void> = Promise.resolve();
  try {
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (started++ < total) {
          await call();
          if (++completed === midway?.first) midwayDone = midway.afterFirst();
        }
      }),
    );
    await midwayDone;
  } finally {
    client.close();
  }
}

type ReadGc = (options?: { collectFirst?: boolean }) => Promise<GcProbeReading>;

/** Calls measured after the full collection. */
const MEASURED_CALLS = 6_000;

/**
 * What MEASURED_CALLS calls with 50 in flight cost the server's old generation after a full
 * collection that ran under that load (as the first one under load does in production).
 */
async function oldGenerationCost(readGc: ReadGc, url: string, path: string): Promise<{ bytesPerCall: number; fullCollections: number }> {
  await callMany(url, path, 1_000, 50);
  let before: GcProbeReading | undefined;
  await callMany(url, path, MEASURED_CALLS + 500, 50, { first: 500, afterFirst: async () => void (before = await readGc({ collectFirst: true })) });
  const after = await readGc();
  return {
    bytesPerCall: Math.round((after.oldSpaceUsedBytes - before!.oldSpaceUsedBytes) / MEASURED_CALLS),
    fullCollections: after.fullCollections - before!.fullCollections,
  };
}

/**
 * The gateway's cost, measured again once if the first window is over the limit. The gateway runs
 * with the node flags it ships with (startIsolatedGateway's default: no incremental marking). Started with
 * node's defaults instead, it read 4.0 and 10.1 KB per call in 2 of about 30 full-suite runs
 * (2026-12-06 and 12-07, the second time in both windows of both tests) where every other run
 * read 0.23–0.32, likely from incremental marking cycles promoting the calls in flight. With the
 * shipped flags: 0.23–0.32 KB in every run; with the stream tables switched off (checked by
 * patching them out), 2.6 and 7.9 KB in both windows, so a regression still fails here.
 */
async function gatewayOldGenerationCost(readGc: ReadGc, url: string, path: string, label: string): Promise<{ bytesPerCall: number; fullCollections: number }> {
  const first = await oldGenerationCost(readGc, url, path);
  console.log(`gateway (${label}) old generation growth over ${MEASURED_CALLS} calls, 50 in flight:`, JSON.stringify(first));
  if (first.fullCollections === 0 && first.bytesPerCall < 1_000) return first;
  const second = await oldGenerationCost(readGc, url, path);
  console.log(`gateway (${label}), measured again:`, JSON.stringify(second));
  return second;
}

describe("garbage collection of ended streams", () => {
  // A full collection moves Node's stream Map to the old generation; from then on, with its
  // tables, ended streams reach the old generation too (and only full collections free them).
  // Measured here: Node's tables 1.3 KB per call or a full collection within the run; the
  // GC-friendly ones about 0.2 KB per call (what the old generation gains anyway) and none.
  it("a bare node:http2 server: ended streams reach the old generation with Node's tables, not with the GC-friendly ones", async () => {
    const costs: Record<string, { bytesPerCall: number; fullCollections: number }> = {};
    for (const tables of ["node", "gc-friendly"] as const) {
      const server = await startStreamChurnServer(tables);
      try {
        costs[tables] = await oldGenerationCost(server.readGc, server.url, "/churn.v1/Call");
      } finally {
        await server.stop();
      }
    }
    console.log(`old generation growth over ${MEASURED_CALLS} calls, 50 in flight:`, JSON.stringify(costs));
    expect(costs.node.bytesPerCall > 2 * costs["gc-friendly"].bytesPerCall || costs.node.fullCollections > 0).toBe(true);
    expect(costs["gc-friendly"].fullCollections).toBe(0);
    expect(costs["gc-friendly"].bytesPerCall).toBeLessThan(500);
  });

  describe("the gateway", () => {
    let gateway: IsolatedGateway;
    let upstream: UpstreamProcess;
    let dir: string | undefined;
    beforeAll(async () => {
      [upstream] = await startUpstreams([{ id: "gc" }]);
      dir = mkdtempSync(join(tmpdir(), "gateway-gc-"));
      const configFile = join(dir, "gateway.json");
      const route = { match: "test.upstream.v1.EchoService", target: upstream.address, passthrough: true };
      writeFileSync(configFile, JSON.stringify({ upstreams: { images: [await buildUpstreamImage(dir)], routes: [route] } }));
      // With the node flags it ships with (no incremental marking): see gatewayOldGenerationCost.
      gateway = await startIsolatedGateway({ GATEWAY_CONFIG_FILE: configFile });
    });
    afterAll(async () => {
      await gateway?.stop();
      await upstream?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    const readGc: ReadGc = async (options = {}) => (await gateway.stats({ gc: options.collectFirst })).gc;

    // Measured here: about 0.25 KB per call; 2.6 KB per call with Node's own stream tables (7.9 proxied).
    it("keeps ended gRPC calls it answers out of the old generation after a full collection", async () => {
      const cost = await gatewayOldGenerationCost(readGc, gateway.url, "/grpc.health.v1.Health/Check", "answering");
      expect(cost.fullCollections).toBe(0);
      expect(cost.bytesPerCall).toBeLessThan(1_000);
    });

    // Server side and the gateway's own upstream client (pass-through).
    it("keeps ended proxied calls out of the old generation after a full collection", async () => {
      const cost = await gatewayOldGenerationCost(readGc, gateway.url, "/test.upstream.v1.EchoService/Echo", "proxying");
      expect(cost.fullCollections).toBe(0);
      expect(cost.bytesPerCall).toBeLessThan(1_000);
    });
  });
});
