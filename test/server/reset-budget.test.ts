import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreetRequestSchema, GreetStreamRequestSchema } from "../../gen/demo/v1/greeter_pb.js";
import { encodeEnvelope } from "../support/envelope.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

// nghttp2 (since 1.57) ends a server connection with GOAWAY(INTERNAL_ERROR) once its client has
// reset about 1,000 streams beyond 33 a second, failing every call still on it; Node 20 cannot
// raise that. The gateway keeps a copy of that count and closes such a connection gracefully first.
describe("a client that cancels many calls on one connection", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it("is moved to a new connection with GOAWAY(NO_ERROR) before nghttp2's reset limit cuts it, and its calls in flight finish", async () => {
    const session = http2.connect(gw.url);
    session.on("error", () => undefined);
    const started = performance.now();
    let resets = 0;
    let failedCalls = 0;
    const goaway = new Promise<{ code: number; resets: number; seconds: number } | undefined>((resolve) => {
      session.once("goaway", (code) => resolve({ code, resets, seconds: (performance.now() - started) / 1000 }));
      session.once("close", () => resolve(undefined));
    });
    const headers = (path: string) => ({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    /** A call that must be answered with grpc-status 0 (or refused: never started, so retryable). */
    const answered = (path: string, body: Buffer) =>
      new Promise<void>((resolve) => {
        const stream = session.request(headers(path));
        let status: string | undefined;
        stream.on("trailers", (trailers) => (status = String(trailers["grpc-status"])));
        stream.on("error", () => undefined);
        stream.on("close", () => {
          if (status !== "0" && stream.rstCode !== http2.constants.NGHTTP2_REFUSED_STREAM) failedCalls++;
          resolve();
        });
        stream.resume();
        stream.end(body);
      });
    const greet = () => answered("/demo.v1.GreeterService/Greet", encodeEnvelope(toBinary(GreetRequestSchema, create(GreetRequestSchema, { name: "budget" }))));
    const streamOf = (count: number, intervalMs: number) => encodeEnvelope(toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name: "budget", count, intervalMs })));
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
        stream.end(streamOf(100, 50));
      });
    try {
      // A long call kept in flight across the GOAWAY: started a little before the gateway acts
      // (at 500 resets left), 20 messages 100 ms apart.
      let longCallEnded: Promise<number> | undefined;
      // Two answered calls for each cancelled one: not the attack pattern the gateway cuts at once.
      while (!session.closed && !session.destroyed && resets < 2_000) {
        if (resets >= 400 && longCallEnded === undefined) {
          longCallEnded = answered("/demo.v1.GreeterService/GreetStream", streamOf(20, 100)).then(() => (performance.now() - started) / 1000);
        }
        await Promise.all([greet(), greet(), cancelledStream(), greet(), greet(), cancelledStream()]);
      }
      const seen = await goaway;
      const longCallEndedAt = await longCallEnded;
      expect(seen?.code).toBe(http2.constants.NGHTTP2_NO_ERROR);
      // The gateway acts with half of nghttp2's bucket left; nghttp2 would act at 1,000 plus 33 a second.
      expect(seen!.resets).toBeGreaterThanOrEqual(480);
      expect(seen!.resets).toBeLessThan(1_000 + 33 * Math.ceil(seen!.seconds));
      // Every call in flight when the GOAWAY came still got its answer, the long one too.
      expect(longCallEndedAt).toBeGreaterThan(seen!.seconds);
      expect(failedCalls).toBe(0);
      expect(gw.logs.some((line) => String(line.msg).includes("faster than nghttp2 allows one connection"))).toBe(true);
    } finally {
      session.destroy();
    }
  }, 60_000);
});
