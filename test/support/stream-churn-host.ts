/**
 * A bare node:http2 server that answers every stream at once, for measuring what Node's own
 * stream tables cost the garbage collector against the gateway's (src/http2/stream-tables.ts).
 * STREAM_TABLES=node keeps Node's; STREAM_TABLES=gc-friendly installs the gateway's. Answers
 * "gc" requests over IPC with a GC probe reading.
 *
 * Usage (through test/support/stream-churn-server.ts): node --expose-gc --import tsx test/support/stream-churn-host.ts
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { installGcFriendlyStreamTables } from "../../src/http2/stream-tables.js";
import { readGcProbe } from "./gc-probe.js";

const tables = process.env.STREAM_TABLES;
if (tables !== "node" && tables !== "gc-friendly") throw new Error(`STREAM_TABLES must be node or gc-friendly, not ${tables}`);
process.on("disconnect", () => process.exit(0));

const server = http2.createServer();
server.on("session", (session) => {
  if (tables === "gc-friendly" && !installGcFriendlyStreamTables(session)) throw new Error("could not install the stream tables");
});
server.on("stream", (stream) => {
  stream.on("error", () => {});
  stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "0" }, { endStream: true });
  stream.resume();
});
server.listen(0, "127.0.0.1", () => process.send!({ type: "listening", port: (server.address() as AddressInfo).port }));
process.on("message", async (message: { type: string; id: number; collectFirst?: boolean }) => {
  if (message.type === "gc") process.send!({ type: "gc", id: message.id, reading: await readGcProbe({ collectFirst: message.collectFirst }) });
});
