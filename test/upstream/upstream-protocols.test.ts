/**
 * Every inbound protocol reaches a real @grpc/grpc-js upstream through the gateway: Connect
 * (JSON and binary, HTTP/1.1 and HTTP/2, GET), gRPC-web and gRPC; all four RPC shapes; errors
 * with details, headers and trailers; 4 MiB messages; deadlines, cancellation and backpressure.
 * Two gateways serve the same route: one relays gRPC byte for byte (pass-through), the other
 * transcodes everything, so both paths are held to the same expectations.
 */
import * as http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyUnpack } from "@bufbuild/protobuf/wkt";
import {
  CountRequestSchema,
  CountResponseSchema,
  EchoService,
  FailDetailSchema,
} from "../../gen/test/upstream/v1/echo_pb.js";
import { connectNodeTransports, type TransportMatrix } from "../support/connect-transports.js";
import { curl } from "../support/curl.js";
import { BUF, bufCurl } from "../support/buf-curl.js";
import { buildUpstreamImage } from "../support/upstream-image.js";
import { runProcess } from "../support/run-process.js";
import { decodeEnvelopes, encodeEnvelope } from "../support/envelope.js";
import {
  grpcBidiLockStep,
  grpcClientStream,
  grpcServerStream,
  grpcServiceDefinition,
  grpcUnary,
  type GenericGrpcClient,
} from "../support/grpc-js-client.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { inspect, startUpstreams, type UpstreamProcess } from "../support/upstream-fleet.js";

const MiB = 1024 * 1024;
const ROUTE_MAX_MS = 5_000;

let upstream: UpstreamProcess;
let imageDir: string;
/** Pass-through on (gRPC relayed byte for byte) and off (everything transcoded). */
const gateways: Record<"passthrough" | "transcoding", StartedGateway> = {} as never;
const grpcClients: Record<"passthrough" | "transcoding", GenericGrpcClient> = {} as never;
let matrix: TransportMatrix;

beforeAll(async () => {
  imageDir = mkdtempSync(join(tmpdir(), "gateway-image-"));
  const [started, image] = await Promise.all([
    startUpstreams([{ id: "a" }]),
    buildUpstreamImage(imageDir),
  ]);
  upstream = started[0];
  for (const mode of ["passthrough", "transcoding"] as const) {
    gateways[mode] = await startGateway({
      limits: { maxMessageBytes: 8 * MiB },
      upstreams: {
        images: [image],
        routes: [
          {
            match: "test.upstream.v1.EchoService",
            target: upstream.address,
            passthrough: mode === "passthrough",
            timeoutMs: ROUTE_MAX_MS,
            forwardHeaders: ["x-request-id", "x-tenant-*"],
          },
        ],
      },
    });
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(EchoService), "EchoService");
    grpcClients[mode] = new Client(`127.0.0.1:${gateways[mode].port}`, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
    }) as unknown as GenericGrpcClient;
  }
  matrix = connectNodeTransports(gateways.transcoding.url, { readMaxBytes: 8 * MiB });
}, 60_000);

afterAll(async () => {
  matrix?.close();
  for (const client of Object.values(grpcClients)) client.close();
  await Promise.all(Object.values(gateways).map((gw) => gw.close()));
  await upstream?.stop();
  rmSync(imageDir, { recursive: true, force: true });
});

const modes = ["passthrough", "transcoding"] as const;

describe("discovery of the routed service", () => {
  it("lists the routed service in the gateway's server reflection (buf curl, like grpcurl)", async () => {
    const result = await runProcess(BUF, ["curl", "--http2-prior-knowledge", "--list-services", gateways.passthrough.url], { timeoutMs: 20_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.toString()).toContain("test.upstream.v1.EchoService");
  });

  it("answers a buf curl call that learned the schema from the gateway's reflection", async () => {
    const result = await bufCurl(`${gateways.passthrough.url}/test.upstream.v1.EchoService/Echo`, {
      protocol: "grpc",
      http2PriorKnowledge: true,
      // No --schema: buf curl asks the gateway's server reflection.
      schema: [],
      messages: [{ text: "reflected" }],
    });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.messages[0]).toMatchObject({ text: "reflected", endpoint: "a" });
  });
});

describe("curl (Connect JSON over HTTP/1.1)", () => {
  it("reaches the upstream and forwards only allow-listed metadata", async () => {
    const res = await curl(`${gateways.transcoding.url}/test.upstream.v1.EchoService/Echo`, {
      http: "1.1",
      headers: {
        "content-type": "application/json",
        "x-request-id": "req-1",
        "x-tenant-id": "t-7",
        authorization: "Bearer secret",
        cookie: "session=1",
        "x-not-listed": "no",
      },
      body: JSON.stringify({ text: "hello" }),
    });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.text);
    expect(body).toMatchObject({ text: "hello", endpoint: "a" });
    expect(body.metadata["x-request-id"]).toBe("req-1");
    expect(body.metadata["x-tenant-id"]).toBe("t-7");
    expect(body.metadata).not.toHaveProperty("authorization");
    expect(body.metadata).not.toHaveProperty("cookie");
    expect(body.metadata).not.toHaveProperty("x-not-listed");
  });

  it("returns the upstream's status, details, headers and trailers", async () => {
    const res = await curl(`${gateways.transcoding.url}/test.upstream.v1.EchoService/Fail`, {
      http: "1.1",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: 9, message: "not now ✓", detailReason: "maintenance", headers: { "x-h": "hv" }, trailers: { "x-t": "tv" } }),
    });
    expect(res.status).toBe(400);
    const body = JSON.parse(res.text);
    expect(body.code).toBe("failed_precondition");
    expect(body.message).toBe("not now ✓");
    expect(body.details[0].type).toBe("test.upstream.v1.FailDetail");
    expect(fromBinary(FailDetailSchema, Buffer.from(body.details[0].value, "base64")).reason).toBe("maintenance");
    expect(res.headers["x-h"]).toBe("hv");
    expect(res.headers["x-t"]).toBe("tv");
  });

  it("propagates connect-timeout-ms, shortened, and caps it at the route's maximum", async () => {
    const call = (headers: Record<string, string>) =>
      curl(`${gateways.transcoding.url}/test.upstream.v1.EchoService/Echo`, {
        http: "1.1",
        headers: { "content-type": "application/json", ...headers },
        body: "{}",
      }).then((res) => Number(JSON.parse(res.text).deadlineMs));
    const withClientDeadline = await call({ "connect-timeout-ms": "200" });
    expect(withClientDeadline).toBeGreaterThan(100);
    expect(withClientDeadline).toBeLessThanOrEqual(200);
    const withoutClientDeadline = await call({});
    expect(withoutClientDeadline).toBeGreaterThan(ROUTE_MAX_MS - 500);
    expect(withoutClientDeadline).toBeLessThanOrEqual(ROUTE_MAX_MS);
    const longerThanRoute = await call({ "connect-timeout-ms": "60000" });
    expect(longerThanRoute).toBeLessThanOrEqual(ROUTE_MAX_MS);
  });
});

describe("connect-node clients: every protocol, every shape (transcoded)", () => {
  const clientFor = (name: string): Client<typeof EchoService> => createClient(EchoService, matrix.get(name).transport);
  const names = () => matrix.cases.map((c) => c.name);

  it("unary", async () => {
    for (const name of names()) {
      const response = await clientFor(name).echo({ text: name });
      expect(response, name).toMatchObject({ text: name, endpoint: "a" });
    }
  });

  it("server streaming", async () => {
    for (const name of names()) {
      const indexes: number[] = [];
      for await (const response of clientFor(name).count({ count: 4 })) indexes.push(response.index);
      expect(indexes, name).toEqual([0, 1, 2, 3]);
    }
  });

  it("client streaming", async () => {
    for (const name of names()) {
      async function* requests() {
        for (const text of ["a", "b", "c"]) yield { text };
      }
      const response = await clientFor(name).collect(requests());
      expect(response, name).toMatchObject({ count: 3, text: "abc", endpoint: "a" });
    }
  });

  it("bidi streaming (HTTP/2), answers arriving while the request stream is open", async () => {
    for (const testCase of matrix.cases.filter((c) => c.httpVersion === "2")) {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      async function* requests() {
        yield { text: "first" };
        // The second request waits for the first answer: only a full-duplex relay completes.
        await gate;
        yield { text: "second" };
      }
      const answers: string[] = [];
      for await (const response of createClient(EchoService, testCase.transport).chat(requests())) {
        answers.push(response.text);
        release();
      }
      expect(answers, testCase.name).toEqual(["echo: first", "echo: second"]);
    }
  });

  it("errors keep code, message, details and metadata", async () => {
    for (const name of names().filter((n) => !n.includes("GET"))) {
      const error = await clientFor(name)
        .fail({ code: Code.FailedPrecondition, message: "nope", detailReason: "why", headers: { "x-h": "hv" }, trailers: { "x-t": "tv" } })
        .then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(error?.code, name).toBe(Code.FailedPrecondition);
      expect(error?.rawMessage, name).toBe("nope");
      expect(error?.findDetails(FailDetailSchema).map((d) => d.reason), name).toEqual(["why"]);
      expect(error?.metadata.get("x-h"), name).toBe("hv");
      expect(error?.metadata.get("x-t"), name).toBe("tv");
    }
  });

  it("a 4 MiB message round-trips (Connect binary, gRPC-web)", async () => {
    const payload = new Uint8Array(4 * MiB).map((_, i) => i % 251);
    for (const name of ["connect over HTTP/2, binary", "grpc-web over HTTP/1.1, binary", "connect over HTTP/1.1, json"]) {
      const response = await clientFor(name).echo({ payload });
      expect(response.payload.length, name).toBe(payload.length);
      expect(Buffer.from(response.payload).equals(Buffer.from(payload)), name).toBe(true);
    }
  });
});

describe.each(modes)("grpc-js client (gRPC, %s)", (mode) => {
  const client = () => grpcClients[mode];

  it("all four shapes", async () => {
    const unary = await grpcUnary(client(), EchoService.method.echo, { text: "u" }, { metadata: { "x-request-id": "g-1" } });
    expect(unary.status.code).toBe(grpc.status.OK);
    expect(unary.messages[0]).toMatchObject({ text: "u", endpoint: "a" });
    expect(unary.messages[0].metadata["x-request-id"]).toBe("g-1");

    const server = await grpcServerStream(client(), EchoService.method.count, { count: 5 });
    expect(server.status.code).toBe(grpc.status.OK);
    expect(server.messages.map((m) => m.index)).toEqual([0, 1, 2, 3, 4]);

    const collected = await grpcClientStream(client(), EchoService.method.collect, [{ text: "x" }, { text: "y" }]);
    expect(collected.messages[0]).toMatchObject({ count: 2, text: "xy" });

    const chat = await grpcBidiLockStep(client(), EchoService.method.chat, [{ text: "1" }, { text: "2" }, { text: "3" }]);
    expect(chat.status.code).toBe(grpc.status.OK);
    expect(chat.messages.map((m) => m.text)).toEqual(["echo: 1", "echo: 2", "echo: 3"]);
  });

  it("status, details, headers and trailers round-trip", async () => {
    const outcome = await grpcUnary(client(), EchoService.method.fail, {
      code: grpc.status.RESOURCE_EXHAUSTED,
      message: "quota ✓",
      detailReason: "too many",
      headers: { "x-h": "hv" },
      trailers: { "x-t": "tv" },
    });
    expect(outcome.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(outcome.status.details).toBe("quota ✓");
    expect(outcome.status.metadata.get("x-t")).toEqual(["tv"]);
    if (mode === "passthrough") {
      expect(outcome.headers?.get("x-h")).toEqual(["hv"]);
    } else {
      // Transcoded, an upstream error's headers and trailers arrive merged, so both go out as trailers.
      expect([...(outcome.headers?.get("x-h") ?? []), ...outcome.status.metadata.get("x-h")]).toEqual(["hv"]);
    }
    const statusBin = outcome.status.metadata.get("grpc-status-details-bin")[0] as Buffer;
    const details = decodeStatusDetails(statusBin);
    expect(details.map((any) => anyUnpack(any, FailDetailSchema)?.reason)).toEqual(["too many"]);
  });

  it("a 4 MiB message round-trips", async () => {
    const payload = new Uint8Array(4 * MiB).map((_, i) => (i * 7) % 253);
    const outcome = await grpcUnary(client(), EchoService.method.echo, { payload });
    expect(outcome.status.code, outcome.status.details).toBe(grpc.status.OK);
    expect(Buffer.from(outcome.messages[0].payload).equals(Buffer.from(payload))).toBe(true);
  });

  it("a 200 ms deadline reaches the upstream as at most 200 ms; a slower upstream ends in DEADLINE_EXCEEDED", async () => {
    const outcome = await grpcUnary(client(), EchoService.method.echo, {}, { deadlineMs: 200 });
    const seen = Number(outcome.messages[0].deadlineMs);
    expect(seen).toBeGreaterThan(100);
    expect(seen).toBeLessThanOrEqual(200);

    const slow = await grpcUnary(client(), EchoService.method.echo, { delayMs: 1000 }, { deadlineMs: 200 });
    expect(slow.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(slow.durationMs).toBeLessThan(800);

    const noDeadline = await grpcUnary(client(), EchoService.method.echo, {});
    expect(Number(noDeadline.messages[0].deadlineMs)).toBeLessThanOrEqual(ROUTE_MAX_MS);
  });

  it("cancelling a server stream cancels the upstream call", async () => {
    const tag = `cancel-${mode}`;
    const call = client().count({ count: 100, intervalMs: 50, tag }) as grpc.ClientReadableStream<unknown>;
    call.on("error", () => undefined);
    await new Promise<void>((resolve) => {
      let seen = 0;
      call.on("data", () => {
        if (++seen === 2) resolve();
      });
    });
    call.cancel();
    const record = await waitFor(() => inspect(upstream.address, tag), (r) => r.cancelled === 1, 2_000);
    expect(record.cancelled).toBe(1);
    expect(record.completed).toBe(0);
  });
});

describe("backpressure: a client that stops reading does not make the gateway buffer", () => {
  const cases = [
    { name: "gRPC pass-through", mode: "passthrough" as const, contentType: "application/grpc" },
    { name: "gRPC transcoded", mode: "transcoding" as const, contentType: "application/grpc" },
    { name: "Connect streaming transcoded", mode: "transcoding" as const, contentType: "application/connect+proto" },
  ];
  it.each(cases)("$name", async ({ mode, contentType, name }) => {
    const tag = `backpressure-${name}`;
    const total = 400;
    const session = http2.connect(gateways[mode].url);
    session.on("error", () => undefined);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/test.upstream.v1.EchoService/Count",
        "content-type": contentType,
        te: "trailers",
      });
      stream.on("error", () => undefined);
      stream.end(encodeEnvelope(toBinary(CountRequestSchema, create(CountRequestSchema, { count: total, payloadSize: 64 * 1024, tag }))));
      // Read the first message, then stop reading.
      await new Promise<void>((resolve) => stream.once("data", () => resolve()));
      stream.pause();
      await sleep(1_000);
      const stalled = await inspect(upstream.address, tag);
      // 400 × 64 KiB = 25 MiB would be sent without flow control; a few windows' worth may be in flight.
      expect(stalled.messagesSent).toBeLessThan(40);
      // Reading again lets the upstream finish.
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.resume();
      await new Promise<void>((resolve) => stream.once("end", () => resolve()));
      const done = await inspect(upstream.address, tag);
      expect(done.messagesSent).toBe(total);
      const messages = decodeEnvelopes(Buffer.concat(chunks)).filter((e) => e.flags === 0);
      expect(messages.length).toBeGreaterThan(total - 40);
      expect(fromBinary(CountResponseSchema, messages.at(-1)!.data).index).toBe(total - 1);
    } finally {
      session.destroy();
    }
  });
});

/** Poll `read` until `done` holds or `timeoutMs` passes; returns the last value read. */
async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < until) {
    await sleep(50);
    value = await read();
  }
  return value;
}

/** The Any details of a google.rpc.Status (field 3), read without any RPC library. */
function decodeStatusDetails(bytes: Buffer) {
  const details = [];
  let offset = 0;
  while (offset < bytes.length) {
    const key = readVarint(bytes, offset);
    offset = key.next;
    const field = key.value >> 3;
    const wire = key.value & 7;
    if (wire === 0) {
      offset = readVarint(bytes, offset).next;
    } else if (wire === 2) {
      const length = readVarint(bytes, offset);
      const value = bytes.subarray(length.next, length.next + length.value);
      offset = length.next + length.value;
      if (field === 3) details.push(fromBinary(AnySchema, value));
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return details;
}

function readVarint(bytes: Buffer, offset: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[offset++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return { value, next: offset };
    shift += 7;
  }
}
