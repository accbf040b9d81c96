/**
 * A well-behaved client that keeps calling while hostile senders attack the same gateway, each
 * kind of call on its own connection: any failure it sees is a failure the attack caused.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";

export interface CanaryReport {
  calls: number;
  failures: string[];
}

export interface Canary {
  report(): CanaryReport;
  /** Stop calling, wait for the calls under way, close the connections. */
  stop(): Promise<CanaryReport>;
}

/** Start calling `baseUrl` every `intervalMs`: gRPC unary (fast path), Connect JSON over HTTP/1.1 (fast path), gRPC-web server streaming and gRPC client streaming with a deadline (connect-node). */
export function startCanary(baseUrl: string, intervalMs = 20): Canary {
  const sessions = [new Http2SessionManager(baseUrl), new Http2SessionManager(baseUrl)];
  const grpc = createClient(GreeterService, createGrpcTransport({ baseUrl, sessionManager: sessions[0] }));
  const calcGrpc = createClient(CalculatorService, createGrpcTransport({ baseUrl, sessionManager: sessions[1] }));
  // Own keep-alive agent: its sockets are closed by stop(), so none outlives the canary.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const connect = createClient(GreeterService, createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: { agent } }));
  const grpcWeb = createClient(GreeterService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } }));
  const kinds = [
    async () => {
      const r = await grpc.greet({ name: "canary" }, { timeoutMs: 5_000 });
      if (!r.greeting.includes("canary")) throw new Error(`bad greeting ${r.greeting}`);
    },
    async () => {
      const r = await connect.greet({ name: "canary" }, { timeoutMs: 5_000 });
      if (!r.greeting.includes("canary")) throw new Error(`bad greeting ${r.greeting}`);
    },
    async () => {
      let n = 0;
      for await (const _ of grpcWeb.greetStream({ name: "canary", count: 3 }, { timeoutMs: 5_000 })) n++;
      if (n !== 3) throw new Error(`stream gave ${n} of 3 messages`);
    },
    async () => {
      async function* numbers() {
        yield { number: 1n };
        yield { number: 2n };
      }
      const r = await calcGrpc.sum(numbers(), { timeoutMs: 5_000 });
      if (r.sum !== 3n) throw new Error(`sum ${r.sum}`);
    },
  ];
  const report: CanaryReport = { calls: 0, failures: [] };
  let running = true;
  let i = 0;
  const loop = (async () => {
    while (running) {
      const kind = i++ % kinds.length;
      const started = Date.now();
      try {
        report.calls++;
        await kinds[kind]();
      } catch (error) {
        report.failures.push(`call kind ${kind} at ${new Date(started).toISOString()}: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    report: () => ({ calls: report.calls, failures: [...report.failures] }),
    async stop() {
      running = false;
      await loop;
      for (const s of sessions) s.abort();
      agent.destroy();
      return report;
    },
  };
}

export interface H2Result {
  status: number | undefined;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** The stream ended with an error or RST_STREAM instead of an answer. */
  error: string | undefined;
  elapsedMs: number;
}

/** One request on a node:http2 session, with a raw body; resolves within `timeoutMs` whatever happens. */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer | undefined,
  timeoutMs = 5_000,
): Promise<H2Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const result: H2Result = { status: undefined, headers: {}, trailers: {}, body: Buffer.alloc(0), error: undefined, elapsedMs: 0 };
    const chunks: Buffer[] = [];
    let stream: http2.ClientHttp2Stream;
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      result.body = Buffer.concat(chunks);
      result.error ??= error;
      result.elapsedMs = Date.now() - started;
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(result);
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    try {
      stream = session.request({ ":method": "POST", ...headers }, { endStream: false });
    } catch (error) {
      stream = undefined as never;
      done = true;
      clearTimeout(timer);
      resolve({ ...result, error: (error as Error).message });
      return;
    }
    stream.on("response", (h) => {
      result.status = h[":status"];
      result.headers = h;
    });
    stream.on("trailers", (t) => (result.trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    // The server's END_STREAM is the answer, even while our upload is still blocked (an early error).
    stream.on("end", () => finish());
    stream.on("error", (e) => (result.error = e.message));
    stream.on("close", () => {
      if (stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && result.status === undefined) result.error ??= `RST_STREAM ${stream.rstCode}`;
      finish();
    });
    stream.end(body);
  });
}

/** grpc-status from the trailers, or from the headers of a trailers-only answer. */
export function grpcStatusOf(result: H2Result): number | undefined {
  const value = result.trailers["grpc-status"] ?? result.headers["grpc-status"];
  return value === undefined ? undefined : Number(value);
}
