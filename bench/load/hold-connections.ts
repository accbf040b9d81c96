/**
 * Memory-case client, run as its own process: open many HTTP/2 connections or server streams
 * to a server and hold them, so the runner can read the server's RSS.
 *
 *   idle <url> <count>                 raw TCP sockets, each an HTTP/2 connection that sent the
 *                                      preface and SETTINGS, got the server's SETTINGS and
 *                                      acknowledged them (answers PINGs), then stays idle
 *   streams <url> <count> <perConn>    GreetStream calls (gRPC, interval_ms 60000) held open once
 *                                      each has received its first message
 *
 * Prints one line `READY {"opened":n,"failed":m,"ms":t,...}` when done opening, then holds
 * until stdin closes (the runner is gone) or SIGTERM.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { GreetStreamRequestSchema } from "../../gen/demo/v1/greeter_pb.js";
import { frame } from "../lib/wire.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_SETTINGS = 0x4;
const FRAME_PING = 0x6;
const FRAME_GOAWAY = 0x7;
const FLAG_ACK = 0x1;

function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

const OPEN_TIMEOUT_MS = 90_000;
const CONCURRENT_OPENS = 200;

const held: { destroy(): void }[] = [];

/** One idle HTTP/2 connection: resolves once the server's SETTINGS arrived and were acknowledged. */
function openIdle(host: string, port: number, onLost: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    held.push(socket);
    let buffered: Buffer = Buffer.alloc(0);
    let established = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no SETTINGS from the server"));
    }, 20_000);
    socket.setNoDelay(true);
    socket.on("connect", () => socket.write(Buffer.concat([PREFACE, h2Frame(FRAME_SETTINGS, 0, 0)])));
    socket.on("data", (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const type = buffered.readUInt8(3);
        const flags = buffered.readUInt8(4);
        const payload = buffered.subarray(9, 9 + length);
        buffered = buffered.subarray(9 + length);
        if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) {
          socket.write(h2Frame(FRAME_SETTINGS, FLAG_ACK, 0));
          if (!established) {
            established = true;
            clearTimeout(timer);
            resolve();
          }
        } else if (type === FRAME_PING && (flags & FLAG_ACK) === 0) {
          socket.write(h2Frame(FRAME_PING, FLAG_ACK, 0, Buffer.from(payload)));
        } else if (type === FRAME_GOAWAY) {
          socket.end();
        }
      }
      if (buffered.length === 0) buffered = Buffer.alloc(0);
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      if (!established) reject(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (established) onLost();
      else reject(new Error("closed before SETTINGS"));
    });
  });
}

/** Run `count` tasks with at most `limit` in flight; returns [ok, failed, first error]. */
async function pooled(count: number, limit: number, task: (i: number) => Promise<void>): Promise<[number, number, string | undefined]> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        await task(i);
        ok++;
      } catch (error) {
        failed++;
        firstError ??= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return [ok, failed, firstError];
}

async function idle(url: URL, count: number) {
  let lost = 0;
  const [opened, failed, firstError] = await pooled(count, CONCURRENT_OPENS, () => openIdle(url.hostname, Number(url.port), () => lost++));
  return { opened, failed, firstError, lostSoFar: lost };
}

async function streams(url: URL, count: number, perConnection: number) {
  const body = frame(toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name: "idle", count: 1000, intervalMs: 60_000 })));
  const sessions: http2.ClientHttp2Session[] = [];
  const sessionFor = (i: number) => {
    const index = Math.floor(i / perConnection);
    if (!sessions[index]) {
      const session = http2.connect(url.origin);
      session.on("error", () => undefined);
      sessions[index] = session;
      held.push(session);
    }
    return sessions[index];
  };
  const [opened, failed, firstError] = await pooled(count, CONCURRENT_OPENS, (i) =>
    new Promise<void>((resolve, reject) => {
      const stream = sessionFor(i).request({ ":method": "POST", ":path": "/demo.v1.GreeterService/GreetStream", "content-type": "application/grpc", te: "trailers" });
      const timer = setTimeout(() => reject(new Error("no first message within 20 s")), 20_000);
      stream.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
      stream.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      stream.on("end", () => {
        clearTimeout(timer);
        reject(new Error("stream ended early"));
      });
      stream.end(body);
    }),
  );
  return { opened, failed, firstError, connections: sessions.length };
}

async function main() {
  const [mode, urlText, countText, perConnText] = process.argv.slice(2);
  const url = new URL(urlText);
  const count = Number(countText);
  const startedAt = Date.now();
  const giveUp = setTimeout(() => {
    process.stderr.write(`hold-connections: not done opening after ${OPEN_TIMEOUT_MS} ms\n`);
    process.exit(1);
  }, OPEN_TIMEOUT_MS);
  const result = mode === "idle" ? await idle(url, count) : await streams(url, count, Number(perConnText ?? 100));
  clearTimeout(giveUp);
  process.stdout.write(`READY ${JSON.stringify({ ...result, ms: Date.now() - startedAt })}\n`);
}

const stop = () => {
  for (const h of held) h.destroy();
  process.exit(0);
};
process.stdin.on("end", stop).on("error", stop).resume();
process.on("SIGTERM", stop);
main().catch((error: unknown) => {
  process.stderr.write(`hold-connections: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
