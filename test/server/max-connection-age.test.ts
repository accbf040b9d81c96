import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";
import { startChunkingRelay } from "../support/tcp-chunker.js";
import { createGrpcJsClient, grpcServiceDefinition, type GenericGrpcClient } from "../support/grpc-js-client.js";

describe("maximum connection age", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway({ limits: { maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 2_000 } });
  });
  afterAll(() => gw.close());

  it("moves a long-lived grpc-js client to new connections with a graceful GOAWAY and no failed call", async () => {
    // The relay counts the TCP connections the client opens; it forwards bytes unchanged.
    const relay = await startChunkingRelay(gw.port, 0, 0);
    const client: GenericGrpcClient = createGrpcJsClient(
      `127.0.0.1:${relay.port}`,
      grpcServiceDefinition(CalculatorService),
      "CalculatorService",
    );
    const divide = (dividend: number) =>
      new Promise<number>((resolve, reject) =>
        client.divide({ dividend, divisor: 2 }, (error: grpc.ServiceError | null, response: { quotient: number }) =>
          error ? reject(error) : resolve(response.quotient),
        ),
      );
    try {
      const results: number[] = [];
      const until = Date.now() + 1_500;
      for (let i = 0; Date.now() < until; i++) {
        // Several calls in flight at once, so some are open when GOAWAY arrives.
        results.push(...(await Promise.all([divide(i), divide(i + 1), divide(i + 2)])));
      }
      expect(results.length).toBeGreaterThan(30);
      expect(results.every((value) => Number.isFinite(value))).toBe(true);
      expect(relay.connections()).toBeGreaterThanOrEqual(3);
    } finally {
      client.close();
      await relay.close();
    }
  });
});
