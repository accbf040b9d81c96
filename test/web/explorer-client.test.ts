/**
 * The explorer's call machinery outside the browser: its Connect JSON client against the real
 * gateway (it only needs fetch, which Node has), and its command lines run in a real shell with
 * curl and buf curl to prove they make the same call.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bufCurlCommand, curlCommand, envelopePrefix, grpcurlCommand, shellQuote, type CommandInput } from "../../web/explorer/commands.js";
import { callConnectJson, type CallRequest } from "../../web/explorer/connect-json.js";
import { BUF } from "../support/buf-curl.js";
import { CURL } from "../support/curl.js";
import { decodeEnvelopes } from "../support/envelope.js";
import { runProcess } from "../support/run-process.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

let gw: StartedGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw?.close();
});

const call = (path: string, kind: CallRequest["kind"], messages: unknown[], extra: Partial<CallRequest> = {}) =>
  callConnectJson({ baseUrl: gw.url, path, kind, messages, headers: [], ...extra });

describe("callConnectJson", () => {
  it("makes a unary call and reports status, headers, message and timing", async () => {
    const result = await call("/demo.v1.GreeterService/Greet", "unary", [{ name: "Ada", language: "LANGUAGE_FRENCH" }], {
      headers: [["x-explorer-test", "1"]],
    });
    expect(result.error).toBeUndefined();
    expect(result.httpStatus).toBe(200);
    expect(result.messages).toHaveLength(1);
    expect(result.messages[0].value).toMatchObject({ greeting: "Bonjour, Ada!" });
    expect(new Map(result.headers).get("content-type")).toBe("application/json");
    expect(result.timeToHeadersMs).toBeGreaterThan(0);
    expect(result.totalMs).toBeGreaterThanOrEqual(result.timeToHeadersMs!);
  });

  it("reports a unary error with its Connect code and message", async () => {
    const result = await call("/demo.v1.CalculatorService/Divide", "unary", [{ dividend: 1, divisor: 0 }]);
    expect(result.httpStatus).toBe(400);
    expect(result.error).toEqual({ code: "invalid_argument", message: "cannot divide by zero" });
    expect(result.messages).toEqual([]);
  });

  it("receives server-streamed messages one by one, as they arrive", async () => {
    const arrivals: number[] = [];
    const result = await callConnectJson(
      { baseUrl: gw.url, path: "/demo.v1.GreeterService/GreetStream", kind: "server_streaming", messages: [{ name: "Grace", count: 3, intervalMs: 150 }], headers: [] },
      { onMessage: (_message, at) => arrivals.push(at) },
    );
    expect(result.error).toBeUndefined();
    expect(result.messages.map((m) => m.value)).toEqual([1, 2, 3].map((sequence) => ({ greeting: "Hello, Grace!", sequence })));
    // Spread over the stream's duration, not delivered together at the end.
    expect(arrivals[2] - arrivals[0]).toBeGreaterThan(200);
  });

  it("reads a streaming error from the end-of-stream message", async () => {
    const result = await call("/demo.v1.GreeterService/GreetStream", "server_streaming", [{ name: "Grace", count: 0 }]);
    expect(result.httpStatus).toBe(200);
    expect(result.error).toEqual({ code: "invalid_argument", message: "count must be between 1 and 1000, got 0" });
  });

  it("sends a client stream as several envelopes in one body", async () => {
    const result = await call("/demo.v1.CalculatorService/Sum", "client_streaming", [{ number: "1" }, { number: "2" }, { number: "39" }]);
    expect(result.error).toBeUndefined();
    expect(result.messages[0].value).toEqual({ sum: "42", count: 3 });
  });

  it("turns an unknown method and an unreachable server into codes", async () => {
    const unknown = await call("/demo.v1.GreeterService/Nope", "unary", [{}]);
    expect(unknown.error?.code).toBe("unimplemented");
    const refused = await callConnectJson({ baseUrl: "http://127.0.0.1:1", path: "/x.Y/Z", kind: "unary", messages: [{}], headers: [] });
    expect(refused.httpStatus).toBeUndefined();
    expect(refused.error?.code).toBe("unavailable");
  });

  it("honours a timeout with deadline_exceeded", async () => {
    const result = await call("/demo.v1.GreeterService/GreetStream", "server_streaming", [{ name: "Slow", count: 5, intervalMs: 1000 }], { timeoutMs: 300 });
    expect(result.error?.code).toBe("deadline_exceeded");
  });
});

describe("command lines", () => {
  const input = (path: string, kind: CommandInput["kind"], messages: unknown[], headers: [string, string][] = []): CommandInput => ({
    baseUrl: gw.url,
    path,
    kind,
    messages,
    headers,
  });
  const shell = (command: string) =>
    runProcess("/bin/sh", ["-c", command.replace(/^curl /m, `${CURL} -q `).replace(/^buf curl/, `${BUF} curl`)], { timeoutMs: 20_000 });

  it("quotes for a POSIX shell", () => {
    expect(shellQuote("plain-word_1.2:3/x")).toBe("plain-word_1.2:3/x");
    expect(shellQuote("two words")).toBe("'two words'");
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`);
    expect(envelopePrefix(70)).toBe("\\000\\000\\000\\000\\106");
    expect(envelopePrefix(0x01_02_03)).toBe("\\000\\000\\001\\002\\003");
  });

  it("curl makes the same unary call, quotes and non-ASCII text included", async () => {
    const command = curlCommand(input("/demo.v1.GreeterService/Greet", "unary", [{ name: "O'Brien «Zoë»" }], [["x-trace", "a b"]]));
    const result = await shell(command);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.toString("utf8"))).toMatchObject({ greeting: "Hello, O'Brien «Zoë»!" });
  });

  it("curl streams with correctly framed envelopes (POSIX printf, so dash runs it too)", async () => {
    const command = curlCommand(input("/demo.v1.GreeterService/GreetStream", "server_streaming", [{ name: "Zoë", count: 2 }]));
    expect(command).toMatch(/^printf '\\000\\000\\000\\000\\\d{3}%s'/);
    const result = await shell(command);
    expect(result.exitCode, result.stderr).toBe(0);
    const frames = decodeEnvelopes(result.stdout);
    expect(frames.map((f) => [f.flags, JSON.parse(f.data.toString("utf8"))])).toEqual([
      [0, { greeting: "Hello, Zoë!", sequence: 1 }],
      [0, { greeting: "Hello, Zoë!", sequence: 2 }],
      [2, {}],
    ]);
  });

  it("curl sends a client stream", async () => {
    const command = curlCommand(input("/demo.v1.CalculatorService/Sum", "client_streaming", [{ number: "5" }, { number: "6" }]));
    const result = await shell(command);
    const frames = decodeEnvelopes(result.stdout);
    expect(JSON.parse(frames[0].data.toString("utf8"))).toEqual({ sum: "11", count: 2 });
  });

  it("buf curl makes the same call through server reflection", async () => {
    const command = bufCurlCommand(input("/demo.v1.GreeterService/GreetStream", "server_streaming", [{ name: "Ada", count: 2 }], [["x-trace", "1"]]));
    const result = await shell(command);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.toString("utf8")).toContain('"sequence": 2');
  });

  it("buf curl and grpcurl ask for HTTP/2 where the call needs it, and grpcurl gets host:port", () => {
    const bidi = input("/demo.v1.CalculatorService/Accumulate", "bidi_streaming", [{ number: "1" }, { number: "2" }], [["authorization", "Bearer t"]]);
    expect(bufCurlCommand(bidi)).toContain("--http2-prior-knowledge");
    expect(grpcurlCommand({ ...bidi, timeoutMs: 2500 })).toBe(
      [
        "grpcurl",
        "  -plaintext",
        "  -H 'authorization: Bearer t'",
        "  -max-time 2.5",
        `  -d '{"number":"1"} {"number":"2"}'`,
        `  127.0.0.1:${gw.port} demo.v1.CalculatorService/Accumulate`,
      ].join(" \\\n"),
    );
    expect(grpcurlCommand({ ...bidi, baseUrl: "https://api.example.com" })).not.toContain("-plaintext");
    expect(grpcurlCommand({ ...bidi, baseUrl: "https://api.example.com" })).toContain("api.example.com:443 ");
  });
});
