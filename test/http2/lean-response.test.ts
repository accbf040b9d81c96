import diagnosticsChannel from "node:diagnostics_channel";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { leanRespond, leanResponsesWorkOn, leanSendTrailers } from "../../src/http2/lean-response.js";
import { onCheckedNodeMajor } from "../../src/http2/node-internals.js";

/** How one test answers a request: the headers and options for respond, then (when it waits for them) the trailers. */
interface Answer {
  headers: http2.OutgoingHttpHeaders;
  options?: http2.ServerStreamResponseOptions;
  body?: string;
  trailers?: http2.OutgoingHttpHeaders;
  /** False: the server never reads the request body (Node then closes the stream early unless trailers are due). */
  readBody?: boolean;
  /** The trailers are sent as `undefined` (Node then sends an empty trailer block). */
  trailersUndefined?: boolean;
  /** The request's method (POST unless given). */
  method?: string;
}

/** What the client saw, with the date header's value masked (it is the only value that may differ between two answers). */
interface Seen {
  rawHeaders: string[];
  rawTrailers: string[] | undefined;
  body: string;
  /** The code of the error the server's respond or sendTrailers threw, if it threw. */
  thrown: string | undefined;
  /** Whether respond itself ended the server stream's writable side. */
  endedByRespond: boolean | undefined;
  /** The flags of the response's HEADERS frame (END_STREAM for a trailers-only answer). */
  responseFlags: number | undefined;
}

/** Which of Node's own methods the lean functions handed a call to. */
interface NodeMethodsUsed {
  respond: boolean;
  sendTrailers: boolean;
}

const FULL_DATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

let server: http2.Http2Server;
let client: http2.ClientHttp2Session;
const answers = new Map<string, Answer>();
const thrownBy = new Map<string, string>();
const endedByRespond = new Map<string, boolean>();
/** Per request path: whether the lean functions found Node's internals on its stream. */
const leanWorked = new Map<string, boolean>();
/** Server streams by request path, to look at once the call is over. */
const serverStreams = new Map<string, http2.ServerHttp2Stream>();
/** Per lean request path: whether Node's respond or sendTrailers ran (the lean functions' fallback). */
const nodeMethodsUsed = new Map<string, NodeMethodsUsed>();

/** Records on the stream itself when Node's respond or sendTrailers runs for it. */
function spyOnNodeMethods(stream: http2.ServerHttp2Stream, used: NodeMethodsUsed): void {
  const respond = stream.respond.bind(stream);
  const sendTrailers = stream.sendTrailers.bind(stream);
  stream.respond = (headers, options) => {
    used.respond = true;
    respond(headers, options);
  };
  stream.sendTrailers = (trailers) => {
    used.sendTrailers = true;
    sendTrailers(trailers);
  };
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

beforeAll(async () => {
  server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    const [, mode, name] = path.split("/");
    const answer = answers.get(name);
    serverStreams.set(path, stream);
    leanWorked.set(path, leanResponsesWorkOn(stream));
    stream.on("error", () => {});
    // Without an answer, a test's own stream listener serves the request.
    if (answer === undefined) return;
    const respond = mode === "lean" ? leanRespond : (s: http2.ServerHttp2Stream, h: http2.OutgoingHttpHeaders, o?: http2.ServerStreamResponseOptions) => s.respond(h, o);
    const sendTrailers = mode === "lean" ? leanSendTrailers : (s: http2.ServerHttp2Stream, t: http2.OutgoingHttpHeaders) => s.sendTrailers(t);
    if (mode === "lean") {
      const used = { respond: false, sendTrailers: false };
      nodeMethodsUsed.set(path, used);
      spyOnNodeMethods(stream, used);
    }
    if (answer.readBody !== false) stream.resume();
    try {
      if (answer.trailers !== undefined || answer.trailersUndefined) {
        stream.on("wantTrailers", () => {
          try {
            sendTrailers(stream, answer.trailers as http2.OutgoingHttpHeaders);
          } catch (error) {
            thrownBy.set(path, codeOf(error));
            stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          }
        });
      }
      respond(stream, answer.headers, answer.options);
      endedByRespond.set(path, stream.writableEnded);
      if (!stream.writableEnded) stream.end(answer.body);
    } catch (error) {
      thrownBy.set(path, codeOf(error));
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

afterAll(async () => {
  client?.close();
  await new Promise((resolve) => server?.close(resolve));
});

function maskDate(raw: string[]): string[] {
  return raw.map((value, i) => (i % 2 === 1 && raw[i - 1] === "date" && FULL_DATE.test(value) ? "<date>" : value));
}

/** Sends one request for the named answer, served with Node's methods ("stock") or ours ("lean"). */
function call(mode: "stock" | "lean", name: string): Promise<Seen> {
  const path = `/${mode}/${name}`;
  return new Promise((resolve) => {
    const request = client.request({ ":method": answers.get(name)?.method ?? "POST", ":path": path });
    let rawHeaders: string[] = [];
    let responseFlags: number | undefined;
    let rawTrailers: string[] | undefined;
    let body = "";
    // Node passes the raw header list as a third argument, which its typings leave out.
    const events = request as NodeJS.EventEmitter;
    events.on("response", (_headers: unknown, flags: number, raw: string[]) => {
      rawHeaders = maskDate(raw);
      responseFlags = flags;
    });
    events.on("trailers", (_trailers: unknown, _flags: unknown, raw: string[]) => (rawTrailers = raw));
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("error", () => {});
    request.on("close", () => resolve({ rawHeaders, rawTrailers, body, thrown: thrownBy.get(path), endedByRespond: endedByRespond.get(path), responseFlags }));
    request.end();
  });
}

/** Both answers for a case, after checking that the lean one really ran our code. */
async function bothWays(name: string, answer: Answer): Promise<{ stock: Seen; lean: Seen }> {
  answers.set(name, answer);
  const [stock, lean] = await Promise.all([call("stock", name), call("lean", name)]);
  expect(leanWorked.get(`/lean/${name}`)).toBe(onCheckedNodeMajor);
  return { stock, lean };
}

const GRPC_OK = Object.freeze({ "grpc-status": "0" });

describe("lean HTTP/2 responses: the client sees what Node's own respond and sendTrailers send", () => {
  // The third column: which of Node's methods the lean functions must hand the call to.
  const LEAN = { respond: false, sendTrailers: false };
  const NODE_RESPOND = { respond: true, sendTrailers: false };
  const NODE_TRAILERS = { respond: false, sendTrailers: true };
  const NODE_BOTH = { respond: true, sendTrailers: true };
  const inheritedStatus = Object.assign(Object.create({ ":status": 404 }) as http2.OutgoingHttpHeaders, { "x-a": "1" });
  const cases: [string, Answer, NodeMethodsUsed][] = [
    ["grpc-ok", { headers: { ":status": 200, "content-type": "application/grpc" }, options: { waitForTrailers: true }, body: "\0\0\0\0\0", trailers: GRPC_OK }, LEAN],
    ["body-never-read", { headers: { ":status": 200, "content-type": "application/grpc" }, options: { waitForTrailers: true }, body: "\0\0\0\0\0", trailers: GRPC_OK, readBody: false }, LEAN],
    ["grpc-error-trailers", { headers: { ":status": 200, "content-type": "application/grpc" }, options: { waitForTrailers: true }, trailers: { "grpc-status": "5", "grpc-message": "not%20found", "x-count": 3 } }, LEAN],
    ["trailers-only", { headers: { ":status": 200, "content-type": "application/grpc", "grpc-status": "14", "grpc-message": "down" }, options: { endStream: true } }, LEAN],
    ["plain-body", { headers: { ":status": 404, "content-type": "application/json", "content-length": 2 }, body: "{}" }, LEAN],
    ["no-options", { headers: { ":status": 200, "x-a": "1", "x-b": "" } }, LEAN],
    ["own-date", { headers: { ":status": 200, date: "Thu, 01 Jan 1970 00:00:00 GMT", "x-after": "y" } }, LEAN],
    ["undefined-values", { headers: { ":status": 200, "x-skip": undefined, "x-keep": "k" }, options: { waitForTrailers: true }, trailers: { "x-skip": undefined, "grpc-status": "0" } }, LEAN],
    ["status-last", { headers: { "content-type": "text/plain", ":status": 201 } }, LEAN],
    ["empty-trailers", { headers: { ":status": 200 }, options: { waitForTrailers: true }, body: "x", trailers: {} }, LEAN],
    // Left to Node, so equal by construction; checked all the same, and that Node's method ran:
    ["null-date", { headers: { ":status": 200, date: null as never, "x-after": "y" } }, NODE_RESPOND],
    ["undefined-date", { headers: { ":status": 200, date: undefined, "x-after": "y" } }, NODE_RESPOND],
    ["upper-case-name", { headers: { ":status": 200, "X-Upper": "v" }, options: { waitForTrailers: true }, trailers: { "Grpc-Status": "0" } }, NODE_BOTH],
    ["array-value", { headers: { ":status": 200, "set-cookie": ["a=1", "b=2"] }, options: { waitForTrailers: true }, trailers: { "x-list": ["1", "2"], "grpc-status": "0" } }, NODE_BOTH],
    ["sensitive", { headers: { ":status": 200, "x-secret": "s", [http2.sensitiveHeaders]: ["x-secret"] } }, NODE_RESPOND],
    ["sensitive-trailers", { headers: { ":status": 200 }, options: { waitForTrailers: true }, trailers: { "x-secret": "s", [http2.sensitiveHeaders]: ["x-secret"] } }, NODE_TRAILERS],
    ["undefined-trailers", { headers: { ":status": 200 }, options: { waitForTrailers: true }, trailersUndefined: true }, NODE_TRAILERS],
    ["string-status", { headers: { ":status": "202" as never } }, NODE_RESPOND],
    ["no-status", { headers: { "x-a": "1" } }, NODE_RESPOND],
    ["inherited-status", { headers: inheritedStatus }, NODE_RESPOND],
    ["no-headers-object", { headers: undefined as never }, NODE_RESPOND],
    ["no-content", { headers: { ":status": 204 } }, NODE_RESPOND],
    ["reset-content", { headers: { ":status": 205 } }, NODE_RESPOND],
    ["not-modified", { headers: { ":status": 304 } }, NODE_RESPOND],
    ["head-request", { headers: { ":status": 200, "content-length": 5 }, method: "HEAD" }, NODE_RESPOND],
    ["te-trailers", { headers: { ":status": 200, te: "trailers" } }, NODE_RESPOND],
    ["send-date-false", { headers: { ":status": 200 }, options: { sendDate: false } as http2.ServerStreamResponseOptions }, NODE_RESPOND],
    ["end-stream-not-boolean", { headers: { ":status": 200 }, options: { endStream: 1 as never } }, NODE_RESPOND],
  ];
  for (const [name, answer, used] of cases) {
    it(`answers the same: ${name}`, async () => {
      const { stock, lean } = await bothWays(name, answer);
      expect(stock.thrown).toBeUndefined();
      expect(lean).toEqual(stock);
      expect(lean.rawHeaders[0]).toBe(":status");
      expect(nodeMethodsUsed.get(`/lean/${name}`)).toEqual(used);
    });
  }

  const refusals: [string, Answer, string][] = [
    ["connection-header", { headers: { ":status": 200, connection: "close" } }, "ERR_HTTP2_INVALID_CONNECTION_HEADERS"],
    ["status-out-of-range", { headers: { ":status": 99 } }, "ERR_HTTP2_STATUS_INVALID"],
    ["request-pseudo-header", { headers: { ":status": 200, ":path": "/x" } }, "ERR_HTTP2_INVALID_PSEUDOHEADER"],
    ["pseudo-header-trailer", { headers: { ":status": 200 }, options: { waitForTrailers: true }, trailers: { ":status": "200" } }, "ERR_HTTP2_INVALID_PSEUDOHEADER"],
    ["connection-trailer", { headers: { ":status": 200 }, options: { waitForTrailers: true }, trailers: { "transfer-encoding": "chunked" } }, "ERR_HTTP2_INVALID_CONNECTION_HEADERS"],
  ];
  for (const [name, answer, code] of refusals) {
    it(`throws the same error: ${name}`, async () => {
      const { stock, lean } = await bothWays(name, answer);
      expect(stock.thrown).toBe(code);
      expect(lean.thrown).toBe(code);
    });
  }

  it("keeps Node's checks on the stream's state: a second respond, trailers twice, trailers before they are due, a closed stream", async () => {
    const errors: Record<string, string[]> = { stock: [], lean: [] };
    const paths = ["/stock/state", "/lean/state"];
    const serverSide = new Promise<void>((resolve) => {
      let pending = paths.length;
      const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
        const path = String(headers[":path"]);
        if (!paths.includes(path)) return;
        const lean = path.startsWith("/lean");
        const respond = (h: http2.OutgoingHttpHeaders, o?: http2.ServerStreamResponseOptions) => (lean ? leanRespond(stream, h, o) : stream.respond(h, o));
        const trailers = (t: http2.OutgoingHttpHeaders) => (lean ? leanSendTrailers(stream, t) : stream.sendTrailers(t));
        const record = (step: () => void) => {
          try {
            step();
            errors[lean ? "lean" : "stock"].push("none");
          } catch (error) {
            errors[lean ? "lean" : "stock"].push(codeOf(error));
          }
        };
        record(() => trailers({ "grpc-status": "0" }));
        respond({ ":status": 200 }, { waitForTrailers: true });
        record(() => respond({ ":status": 200 }));
        stream.on("wantTrailers", () => {
          trailers({ "grpc-status": "0" });
          record(() => trailers({ "grpc-status": "0" }));
        });
        stream.on("close", () => {
          record(() => respond({ ":status": 200 }));
          if (--pending === 0) resolve();
        });
        stream.end("body");
      };
      server.on("stream", onStream);
    });
    answers.delete("state");
    await Promise.all([call("stock", "state"), call("lean", "state")]);
    await serverSide;
    expect(errors.stock).toEqual(["ERR_HTTP2_TRAILERS_NOT_READY", "ERR_HTTP2_HEADERS_SENT", "ERR_HTTP2_TRAILERS_ALREADY_SENT", "ERR_HTTP2_INVALID_STREAM"]);
    expect(errors.lean).toEqual(errors.stock);
  });

  it("records what was sent on the stream, as sentHeaders and sentTrailers", async () => {
    const headers = { ":status": 200, "content-type": "application/grpc" };
    await bothWays("recorded", { headers, options: { waitForTrailers: true }, trailers: GRPC_OK });
    const stream = serverStreams.get("/lean/recorded")!;
    expect(stream.headersSent).toBe(true);
    expect(stream.sentHeaders).toMatchObject(headers);
    expect(stream.sentTrailers).toEqual(GRPC_OK);
  });
});

describe("lean HTTP/2 responses: when they hand over to Node", () => {
  it("encodes trailers that are not frozen anew on every call, even when the same object comes back changed", async () => {
    const trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0", "x-n": "1" };
    answers.set("reused-trailers", { headers: { ":status": 200 }, options: { waitForTrailers: true }, trailers });
    const first = await call("lean", "reused-trailers");
    trailers["x-n"] = "2";
    const second = await call("lean", "reused-trailers");
    expect(first.rawTrailers).toEqual(["grpc-status", "0", "x-n", "1"]);
    expect(second.rawTrailers).toEqual(["grpc-status", "0", "x-n", "2"]);
  });

  it("leaves the response to Node while a diagnostics-channel subscriber listens for sent responses", async () => {
    const channel = diagnosticsChannel.channel("http2.server.stream.finish");
    const listener = () => {};
    answers.set("observed", { headers: { ":status": 200 }, options: { waitForTrailers: true }, trailers: GRPC_OK });
    channel.subscribe(listener);
    try {
      await call("lean", "observed");
    } finally {
      channel.unsubscribe(listener);
    }
    expect(nodeMethodsUsed.get("/lean/observed")).toEqual({ respond: true, sendTrailers: false });
    await call("lean", "observed");
    expect(nodeMethodsUsed.get("/lean/observed")).toEqual({ respond: false, sendTrailers: false });
  });

  it("does not give up on Node's internals because the first stream it saw was already destroyed", async () => {
    vi.resetModules();
    const fresh = await import("../../src/http2/lean-response.js");
    const local = http2.createServer();
    const verdicts: boolean[] = [];
    local.on("stream", (stream) => {
      stream.destroy();
      verdicts.push(fresh.leanResponsesWorkOn(stream));
    });
    await new Promise<void>((resolve) => local.listen(0, "127.0.0.1", resolve));
    const session = http2.connect(`http://127.0.0.1:${(local.address() as AddressInfo).port}`);
    await new Promise<void>((resolve) => {
      const request = session.request({ ":method": "POST", ":path": "/x" });
      request.on("error", () => {});
      request.on("close", () => resolve());
      request.end();
    });
    session.close();
    await new Promise((resolve) => local.close(resolve));
    answers.set("after-destroyed", { headers: { ":status": 200 } });
    let answered: Promise<Seen> | undefined;
    const live = await new Promise<boolean>((resolve) => {
      const onStream = (stream: http2.ServerHttp2Stream) => {
        server.off("stream", onStream);
        resolve(fresh.leanResponsesWorkOn(stream));
      };
      server.on("stream", onStream);
      answered = call("lean", "after-destroyed");
    });
    await answered;
    expect(verdicts).toEqual([false]);
    expect(live).toBe(onCheckedNodeMajor);
  });
});

describe("lean HTTP/2 responses under load", () => {
  it("answers 300 concurrent calls on one connection with their own trailers, and every server stream closes", async () => {
    const calls = 300;
    for (let i = 0; i < calls; i++) {
      answers.set(`load-${i}`, {
        headers: { ":status": 200, "content-type": "application/grpc", "x-call": i },
        options: { waitForTrailers: true },
        body: `body ${i}`,
        trailers: { "grpc-status": "0", "x-call": String(i) },
      });
    }
    const seen = await Promise.all(Array.from({ length: calls }, (_, i) => call("lean", `load-${i}`)));
    seen.forEach((result, i) => {
      expect(result.body).toBe(`body ${i}`);
      expect(result.rawHeaders).toContain(String(i));
      expect(result.rawTrailers).toEqual(["grpc-status", "0", "x-call", String(i)]);
    });
    for (let i = 0; i < calls; i++) {
      const stream = serverStreams.get(`/lean/load-${i}`)!;
      await new Promise<void>((resolve) => (stream.destroyed ? resolve() : stream.once("close", () => resolve())));
      expect(stream.destroyed).toBe(true);
    }
  });

  it("skips a stream destroyed while its trailers wait for the end of the turn, and still sends the others' trailers", async () => {
    const doomed = "/lean/doomed";
    const kept = "/lean/kept";
    const serverSide = new Promise<void>((resolve) => {
      const waiting = new Map<http2.ServerHttp2Stream, string>();
      const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
        const path = String(headers[":path"]);
        if (path !== doomed && path !== kept) return;
        leanRespond(stream, { ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => {
          waiting.set(stream, path);
          if (waiting.size < 2) return;
          // Both streams' trailers are queued in this turn; one stream is destroyed before they go.
          for (const each of waiting.keys()) leanSendTrailers(each, GRPC_OK);
          for (const [each, eachPath] of waiting) if (eachPath === doomed) each.destroy();
          server.off("stream", onStream);
          resolve();
        });
        stream.end("x");
      };
      server.on("stream", onStream);
    });
    answers.delete("doomed");
    answers.delete("kept");
    const [doomedSeen, keptSeen] = await Promise.all([call("lean", "doomed"), call("lean", "kept")]);
    await serverSide;
    expect(doomedSeen.rawTrailers).toBeUndefined();
    expect(keptSeen.rawTrailers).toEqual(["grpc-status", "0"]);
  });

  it("lets a graceful session close finish once lean answers are done", async () => {
    const local = http2.createServer();
    local.on("stream", (stream) => {
      leanRespond(stream, { ":status": 200 }, { waitForTrailers: true });
      stream.on("wantTrailers", () => leanSendTrailers(stream, GRPC_OK));
      stream.end("done");
    });
    await new Promise<void>((resolve) => local.listen(0, "127.0.0.1", resolve));
    const session = http2.connect(`http://127.0.0.1:${(local.address() as AddressInfo).port}`);
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        new Promise<string | undefined>((resolve) => {
          const request = session.request({ ":method": "POST", ":path": "/x" });
          request.on("trailers", (trailers) => resolve(String(trailers["grpc-status"])));
          request.on("close", () => resolve(undefined));
          request.resume();
          request.end();
        }),
      ),
    );
    expect(results.every((status) => status === "0")).toBe(true);
    const closed = new Promise<void>((resolve) => local.close(() => resolve()));
    session.close();
    await closed;
  });
});
