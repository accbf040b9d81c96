import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAtEndOfTurn, type DeferredWrite } from "../../../src/server/fast-path/end-of-turn-writes.js";
import { startGateway, type StartedGateway } from "../../support/start-gateway.js";

const endOfTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A deferred write that records when it ran, and throws if told to. */
function recorder(log: string[], name: string, throws = false): DeferredWrite {
  return {
    writeNow() {
      log.push(`write ${name}`);
      if (throws) throw new Error(`${name} broke`);
    },
    failWrite(error) {
      log.push(`fail ${name}: ${(error as Error).message}`);
    },
  };
}

describe("writeAtEndOfTurn", () => {
  it("writes nothing at once, then every write queued in the turn, in order, once the turn's other work is done", async () => {
    const log: string[] = [];
    writeAtEndOfTurn(recorder(log, "a"));
    writeAtEndOfTurn(recorder(log, "b"));
    process.nextTick(() => log.push("next tick"));
    await Promise.resolve();
    log.push("microtask");
    writeAtEndOfTurn(recorder(log, "c"));
    expect(log).toEqual(["microtask"]);
    await endOfTurn();
    expect(log).toEqual(["microtask", "next tick", "write a", "write b", "write c"]);
  });

  it("hands a write that throws to its own failWrite, and the writes after it still happen", async () => {
    const log: string[] = [];
    writeAtEndOfTurn(recorder(log, "a"));
    writeAtEndOfTurn(recorder(log, "b", true));
    writeAtEndOfTurn(recorder(log, "c"));
    await endOfTurn();
    expect(log).toEqual(["write a", "write b", "fail b: b broke", "write c"]);
  });

  it("a write queued while the queue is being written goes out in the next turn, not lost", async () => {
    const log: string[] = [];
    writeAtEndOfTurn({
      writeNow() {
        log.push("write a");
        writeAtEndOfTurn(recorder(log, "late"));
      },
      failWrite: () => log.push("fail a"),
    });
    await endOfTurn();
    expect(log).toEqual(["write a"]);
    await endOfTurn();
    expect(log).toEqual(["write a", "write late"]);
  });
});

describe("HTTP/1.1 answers written at the end of the turn", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it("pipelined Connect calls on one connection get their answers in request order, successes and errors alike", async () => {
    const names = ["n0", "n1", "", "n3", "n4"]; // the empty name is invalid_argument (HTTP 400)
    const requests = names
      .map((name) => {
        const body = JSON.stringify({ name });
        return `POST /demo.v1.GreeterService/Greet HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      })
      .join("");
    const text = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(gw.port, "127.0.0.1", () => socket.write(requests));
      let received = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        received += chunk;
        if ((received.match(/HTTP\/1\.1 /g) ?? []).length === names.length && received.trimEnd().endsWith("}")) {
          socket.destroy();
          resolve(received);
        }
      });
      socket.on("error", reject);
      setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(received)}`)), 5_000).unref();
    });
    const answers = text.split(/(?=HTTP\/1\.1 )/).map((answer) => ({
      status: Number(answer.slice(9, 12)),
      body: JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { greeting?: string; code?: string },
    }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 400, 200, 200]);
    expect(answers.map((a) => a.body.greeting ?? a.body.code)).toEqual(["Hello, n0!", "Hello, n1!", "invalid_argument", "Hello, n3!", "Hello, n4!"]);
  });
});
