import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreetRequestSchema, GreetStreamRequestSchema } from "../../gen/demo/v1/greeter_pb.js";
import { encodeEnvelope } from "../support/envelope.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

// nghttp2 (since 1.57) ends a server connection with GOAWAY(INTERNAL_ERROR) once its client has
// reset about 1,000 streams beyond 33 a second, failing every call still on it; Node 20 cannot
// raise that. The gateway counts the same way and closes such a connection gracefully first.
describe("a client that cancels many calls on one connection", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it("is moved to a new connection with GOAWAY(NO_ERROR) before nghttp2's reset limit cuts it", async () => {
    const session = http2.connect(gw.url);
    session.on("error", () => undefined);
    const goaway = new Promise<{ code: number; resets: number }>((resolve) => session.once("goaway", (code) => resolve({ code, resets })));
    let resets = 0;
    let failedCalls = 0;
    const headers = (path: string) => ({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const greet = () =>
      new Promise<void>((resolve) => {
        const stream = session.request(headers("/demo.v1.GreeterService/Greet"));
        let status: string | undefined;
        stream.on("trailers", (trailers) => (status = String(trailers["grpc-status"])));
        stream.on("error", () => undefined);
        stream.on("close", () => {
          if (status !== "0" && stream.rstCode !== http2.constants.NGHTTP2_REFUSED_STREAM) failedCalls++;
          resolve();
        });
        stream.resume();
        stream.end(encodeEnvelope(toBinary(GreetRequestSchema, create(GreetRequestSchema, { name: "budget" }))));
      });
    // A server stream cancelled once its first message arrives: a reset the gateway did not ask for.
    const cancelledStream = () =>
      new Promise<void>((resolve) => {
        const stream = session.request(headers("/demo.v1.GreeterService/GreetStream"));
        stream.on("error", () => undefined);
        stream.once("data", () => {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          resets++;
        });
        stream.on("close", () => resolve());
        stream.end(encodeEnvelope(toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name: "budget", count: 100, intervalMs: 50 }))));
      });
    // Two answered calls for each cancelled one: not the attack pattern the gateway cuts at once.
    while (!session.closed && !session.destroyed && resets < 1_500) {
      await Promise.all([greet(), greet(), cancelledStream(), greet(), greet(), cancelledStream()]);
    }
    const seen = await goaway;
    session.destroy();
    expect(session.closed).toBe(true);
    expect(seen.code).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // The gateway's copy of the bucket leaves it 200 resets of headroom (more, as it refills).
    expect(seen.resets).toBeGreaterThanOrEqual(780);
    expect(seen.resets).toBeLessThan(1_000);
    // Every call in flight when the GOAWAY came still got its answer (a refused one was never started).
    expect(failedCalls).toBe(0);
    expect(gw.logs.some((line) => String(line.msg).includes("faster than nghttp2 allows one connection"))).toBe(true);
  }, 60_000);
});
