/**
 * Property-based fuzzing (fast-check) of every decoder the gateway itself owns: config, protocol
 * sniffing, grpc-message encoding, the headers view, unknown-procedure answers, upstream targets,
 * deadlines and the header policy. Fixed seed in CI; `npm run fuzz` runs longer (see fuzz-config.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigError, environmentVariables, loadConfig, parseConfig } from "../../src/config/load-config.js";
import { classifyConnectionStart, HTTP2_PREFACE } from "../../src/server/http2-preface.js";
import { encodeGrpcMessage, fixGrpcMessageTrailer, reencodeGrpcMessage } from "../../src/server/grpc-message.js";
import { NodeHeadersView } from "../../src/server/fast-path/node-headers-view.js";
import { answerUnknownProcedure } from "../../src/server/unknown-procedure.js";
import type { HttpRequest, HttpResponse } from "../../src/server/http-types.js";
import { formatAddress, parseHostPort, parseTarget } from "../../src/upstream/target.js";
import { formatGrpcTimeout, parseGrpcTimeout, upstreamTimeoutMs } from "../../src/upstream/deadline.js";
import { HeaderPolicy, returnsToClient } from "../../src/upstream/header-policy.js";
import { check } from "./fuzz-config.js";

const tmp = mkdtempSync(join(tmpdir(), "gateway-fuzz-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Either a valid config or a ConfigError listing problems: never any other exception. */
function configOutcome(run: () => unknown): "ok" | "config-error" {
  try {
    run();
    return "ok";
  } catch (error) {
    if (error instanceof ConfigError) {
      expect(error.problems.length).toBeGreaterThan(0);
      return "config-error";
    }
    throw error;
  }
}

describe("config decoders", () => {
  it("parseConfig: any JSON-like value gives a config or a ConfigError", () =>
    check(
      fc.property(fc.oneof(fc.jsonValue(), fc.anything(), fc.object({ maxDepth: 4 })), (raw) => {
        configOutcome(() => parseConfig(raw));
      }),
    ));

  const limitsKey = fc.constantFrom("maxMessageBytes", "maxHeaderBytes", "headersTimeoutMs", "idleTimeoutMs", "maxConcurrentStreams", "maxTimeoutMs");
  it("parseConfig: limits are accepted only as integers inside their documented range", () =>
    check(
      fc.property(limitsKey, fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)), (key, value) => {
        const outcome = configOutcome(() => parseConfig({ limits: { [key]: value } }));
        if (outcome === "ok") {
          expect(Number.isInteger(value)).toBe(true);
          expect(value as number).toBeGreaterThanOrEqual(0);
        }
      }),
    ));

  const routeTarget = fc.oneof(
    fc.tuple(fc.domain(), fc.integer({ min: 0, max: 99_999 })).map(([h, p]) => `${h}:${p}`),
    fc.tuple(fc.domain(), fc.integer({ min: 0, max: 99_999 })).map(([h, p]) => `dns:///${h}:${p}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 99_999 })).map(([h, p]) => `[${h}]:${p}`),
    fc.string(),
  );
  it("parseConfig: an upstream target is accepted only with a TCP port (1-65535)", () =>
    check(
      fc.property(routeTarget, (target) => {
        const outcome = configOutcome(() =>
          parseConfig({ upstreams: { routes: [{ match: "fuzz.v1.Service", target, descriptors: "reflection" }] } }),
        );
        if (outcome === "ok") {
          const parsed = parseTarget(target);
          const ports = parsed.kind === "dns" ? [parsed.port] : parsed.addresses.map((a) => a.port);
          for (const port of ports) {
            expect(Number.isInteger(port)).toBe(true);
            expect(port, `target ${target}`).toBeGreaterThanOrEqual(1);
            expect(port, `target ${target}`).toBeLessThanOrEqual(65_535);
          }
        }
      }),
    ));

  it("loadConfig: any environment strings give a config or a ConfigError", () =>
    check(
      fc.property(
        fc.dictionary(fc.constantFrom(...environmentVariables.map((v) => v.name)), fc.oneof(fc.string(), fc.integer().map(String), fc.constantFrom("true", "off", " 1 ", "-0", "1e3"))),
        (env) => {
          configOutcome(() => loadConfig(env));
        },
      ),
    ));

  it("loadConfig: any config file contents (YAML or JSON) give a config or a ConfigError", () =>
    check(
      fc.property(
        fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.uint8Array().map((b) => Buffer.from(b).toString("latin1"))),
        fc.constantFrom("yaml", "json"),
        (text, ext) => {
          const file = join(tmp, `config.${ext}`);
          writeFileSync(file, text);
          configOutcome(() => loadConfig({ GATEWAY_CONFIG_FILE: file }));
        },
      ),
      0.3,
    ));
});

describe("protocol sniffing: classifyConnectionStart", () => {
  const nearPreface = fc.oneof(
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    fc.tuple(fc.integer({ min: 0, max: 24 }), fc.uint8Array({ maxLength: 16 })).map(([n, tail]) => Buffer.concat([HTTP2_PREFACE.subarray(0, n), Buffer.from(tail)])),
  );
  it("says http2 only for the full preface, undecided only for a proper prefix of it, else http1", () =>
    check(
      fc.property(nearPreface, (bytes) => {
        const verdict = classifyConnectionStart(bytes);
        const n = Math.min(bytes.length, HTTP2_PREFACE.length);
        const matches = bytes.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
        expect(verdict).toBe(!matches ? "http1" : n === HTTP2_PREFACE.length ? "http2" : "undecided");
      }),
    ));

  it("never changes its mind as more bytes arrive (chunking cannot change the decision)", () =>
    check(
      fc.property(nearPreface, (bytes) => {
        const final = classifyConnectionStart(bytes);
        let decided: string | undefined;
        for (let i = 0; i <= bytes.length; i++) {
          const v = classifyConnectionStart(bytes.subarray(0, i));
          if (decided !== undefined) expect(v).toBe(decided);
          else if (v !== "undecided") decided = v;
        }
        if (decided !== undefined) expect(final).toBe(decided);
      }),
    ));
});

describe("grpc-message encoding", () => {
  const text = fc.oneof(fc.string({ unit: "binary" }), fc.string(), fc.string({ unit: fc.constantFrom("%", "2", "F", ",", "/", "é", "\n", " ") }));
  it("encodes to printable ASCII that percent-decodes back to the text", () =>
    check(
      fc.property(text, (t) => {
        const encoded = encodeGrpcMessage(t);
        expect(encoded).toMatch(/^[\x20-\x7e]*$/);
        expect(decodeURIComponent(encoded)).toBe(t);
      }),
    ));

  it("re-encoding never throws and is stable on already-encoded messages", () =>
    check(
      fc.property(text, fc.string(), (t, garbage) => {
        expect(reencodeGrpcMessage(encodeGrpcMessage(t))).toBe(encodeGrpcMessage(t));
        expect(reencodeGrpcMessage(encodeURIComponent(t))).toBe(encodeGrpcMessage(t));
        expect(() => reencodeGrpcMessage(garbage)).not.toThrow();
        const trailers: Record<string, unknown> = { "grpc-message": garbage, other: 1 };
        fixGrpcMessageTrailer(trailers);
        expect(trailers.other).toBe(1);
      }),
    ));
});

describe("NodeHeadersView", () => {
  const token = fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,20}$/);
  const value = fc.stringMatching(/^([\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?)?$/);
  const headers = fc.dictionary(token, fc.oneof(value, fc.array(value, { minLength: 1, maxLength: 3 })), { maxKeys: 8 });
  it("reads exactly what a Fetch Headers built from the same headers reads, before and after a write", () =>
    check(
      fc.property(headers, fc.oneof(token, fc.constantFrom("constructor", "__proto__", "toString", "hasOwnProperty")), fc.constantFrom(...["x", "Content-Type", "X-UPPER"]), value, (parsed, probe, writeName, writeValue) => {
        // Node's HTTP/1.1 parser gives req.headers an ordinary object (Object.prototype and all).
        const source: Record<string, string | string[]> = { ...parsed };
        const reference = new Headers();
        for (const [name, v] of Object.entries(source)) for (const item of Array.isArray(v) ? v : [v]) reference.append(name, item);
        const view = NodeHeadersView.of(source);
        for (const name of [...Object.keys(source), probe, probe.toUpperCase()]) {
          expect(view.get(name)).toBe(reference.get(name));
          expect(view.has(name)).toBe(reference.has(name));
        }
        view.set(writeName, writeValue);
        reference.set(writeName, writeValue);
        expect([...view]).toEqual([...reference]);
      }),
    ));
});

describe("routing: unknown-procedure answers", () => {
  interface Written { status?: number; headers?: Record<string, unknown>; body?: Buffer; ended: boolean }
  function fakeExchange(method: string, url: string, contentType: string | undefined, http2: boolean) {
    const written: Written = { ended: false };
    const res: Record<string, unknown> = {
      writeHead(status: number, headers: Record<string, unknown>) {
        written.status = status;
        written.headers = headers;
      },
      end(body?: Buffer | string) {
        written.ended = true;
        if (body !== undefined) written.body = Buffer.from(body);
      },
    };
    if (http2) {
      res.stream = {
        respond(headers: Record<string, unknown>, options: { endStream?: boolean }) {
          written.status = headers[":status"] as number;
          written.headers = headers;
          written.ended = Boolean(options.endStream);
        },
      };
    }
    const req = { method, url, headers: contentType === undefined ? {} : { "content-type": contentType }, httpVersionMajor: http2 ? 2 : 1 };
    return { req: req as unknown as HttpRequest, res: res as unknown as HttpResponse, written };
  }
  const path = fc.oneof(
    fc.string(),
    fc.tuple(fc.stringMatching(/^[A-Za-z_][\w.]{0,12}$/), fc.stringMatching(/^[A-Za-z_]\w{0,8}$/), fc.string({ maxLength: 10 })).map(([s, m, q]) => `/${s}/${m}${q}`),
  );
  const contentType = fc.option(
    fc.oneof(
      fc.constantFrom("application/grpc", "application/grpc+proto", "application/grpc-web-text", "application/json", "application/proto", "application/connect+json", "application/connect+proto; charset=utf-8", "text/plain"),
      fc.string(),
    ),
    { nil: undefined },
  );
  it("never throws; when it answers, it answers completely and with the code the protocol expects", () =>
    check(
      fc.property(fc.constantFrom("GET", "POST", "PUT", "OPTIONS"), path, contentType, fc.boolean(), (method, url, ct, http2) => {
        const { req, res, written } = fakeExchange(method, url, ct, http2);
        const answered = answerUnknownProcedure(req, res) !== undefined;
        if (!answered) {
          expect(written.status).toBeUndefined();
          return;
        }
        expect(written.ended).toBe(true);
        if ((ct ?? "").startsWith("application/grpc")) {
          expect(written.status).toBe(200);
          expect(written.headers?.["grpc-status"]).toBe("12");
          expect(String(written.headers?.["grpc-message"])).toMatch(/^[\x20-\x7e]*$/);
        } else if ((ct ?? "").startsWith("application/connect+")) {
          expect(written.status).toBe(200);
          const body = written.body!;
          expect(body[0]).toBe(2);
          expect(body.readUInt32BE(1)).toBe(body.length - 5);
          expect(JSON.parse(body.subarray(5).toString()).error.code).toBe("unimplemented");
        } else {
          expect(written.status).toBe(404);
          expect(JSON.parse(written.body!.toString()).code).toBe("unimplemented");
        }
      }),
    ));
});

describe("upstream decoders", () => {
  const hostPort = fc.oneof(
    fc.tuple(fc.domain(), fc.integer({ min: 1, max: 65_535 })).map(([host, port]) => ({ host, port })),
    fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65_535 })).map(([host, port]) => ({ host, port })),
    fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65_535 })).map(([host, port]) => ({ host, port })),
  );
  it("target: host:port round-trips through formatAddress/parseHostPort and parseTarget", () =>
    check(
      fc.property(hostPort, fc.array(hostPort, { minLength: 1, maxLength: 4 }), (address, list) => {
        const text = formatAddress(address);
        expect(parseHostPort(text)).toEqual(address);
        const single = parseTarget(text);
        expect(single.kind).toBe("static");
        const many = parseTarget(list.map(formatAddress));
        expect(many.kind === "static" && many.addresses).toEqual(list);
      }),
    ));

  it("target: dns:/// names resolve by DNS, IP literals are static, nothing throws", () =>
    check(
      fc.property(hostPort, fc.string(), (address, garbage) => {
        const parsed = parseTarget(`dns:///${formatAddress(address)}`);
        if (parsed.kind === "dns") expect({ host: parsed.host, port: parsed.port }).toEqual(address);
        else expect(parsed.addresses).toEqual([address]);
        expect(() => parseTarget(garbage)).not.toThrow();
      }),
    ));

  it("deadline: grpc-timeout headers parse to a non-negative number or an InvalidArgument ConnectError", () =>
    check(
      fc.property(fc.oneof(fc.string(), fc.tuple(fc.nat(), fc.constantFrom("H", "M", "S", "m", "u", "n", "x", "")).map(([n, u]) => `${n}${u}`)), (value) => {
        try {
          const ms = parseGrpcTimeout(value);
          expect(ms).toBeGreaterThanOrEqual(0);
          expect(Number.isFinite(ms)).toBe(true);
          expect(value).toMatch(/^\d{1,8}[HMSmun]$/);
        } catch (error) {
          expect(error).toBeInstanceOf(ConnectError);
          expect((error as ConnectError).code).toBe(Code.InvalidArgument);
        }
      }),
    ));

  it("deadline: formatGrpcTimeout writes a valid header that never shortens the deadline", () =>
    check(
      fc.property(fc.oneof(fc.double({ min: 0, max: 1e15, noNaN: true }), fc.integer({ min: 0, max: 100_000_000 })), (ms) => {
        const header = formatGrpcTimeout(ms);
        expect(header).toMatch(/^\d{1,8}[HMSmun]$/);
        const back = parseGrpcTimeout(header)!;
        expect(back).toBeGreaterThanOrEqual(Math.min(ms, 99_999_999 * 3_600_000));
      }),
    ));

  it("deadline: the upstream timeout never exceeds the client's or the route's, and a spent deadline fails", () =>
    check(
      fc.property(fc.option(fc.integer({ min: -1000, max: 1e9 }), { nil: undefined }), fc.nat({ max: 1e9 }), (client, routeMax) => {
        let result: number | undefined;
        try {
          result = upstreamTimeoutMs(client, routeMax);
        } catch (error) {
          expect((error as ConnectError).code).toBe(Code.DeadlineExceeded);
          expect(client !== undefined && (client <= 0 || (routeMax > 0 && Math.min(client, routeMax) <= 0))).toBe(true);
          return;
        }
        if (client !== undefined) expect(result!).toBeLessThanOrEqual(client);
        if (routeMax > 0) expect(result!).toBeLessThanOrEqual(routeMax);
        if (client === undefined && routeMax === 0) expect(result).toBeUndefined();
      }),
    ));

  const headerName = fc.oneof(
    fc.stringMatching(/^[a-z0-9-]{1,16}$/),
    fc.constantFrom(":path", ":authority", "connection", "te", "host", "content-length", "grpc-timeout", "grpc-status", "connect-timeout-ms", "connect-x", "trailer-x", "authorization", "cookie", "proxy-authorization", "x-request-id", "traceparent"),
  );
  const pattern = fc.oneof(fc.constant("*"), headerName, headerName.map((n) => `${n}*`));
  it("header policy: protocol, hop-by-hop and pseudo headers never cross; credentials only when named; decisions are stable", () =>
    check(
      fc.property(fc.array(pattern, { maxLength: 6 }), fc.array(headerName, { minLength: 1, maxLength: 30 }), (patterns, names) => {
        const policy = new HeaderPolicy(patterns);
        for (const name of names) {
          const allowed = policy.allows(name);
          expect(policy.allows(name)).toBe(allowed);
          if (!returnsToClient(name)) expect(allowed).toBe(false);
          if (["authorization", "cookie", "proxy-authorization"].includes(name) && allowed) expect(patterns).toContain(name);
        }
        const node: Record<string, string> = {};
        const headers = Object.fromEntries(names.map((n) => [n, "v"]));
        policy.forwardNode(headers, node);
        for (const name of Object.keys(node)) expect(policy.allows(name)).toBe(true);
      }),
    ));

  it("header policy: the decision cache stays correct past its bound", () => {
    const policy = new HeaderPolicy(["x-*"]);
    for (let i = 0; i < 3000; i++) expect(policy.allows(`x-${i}`)).toBe(true);
    for (let i = 0; i < 3000; i++) expect(policy.allows(`y-${i}`)).toBe(false);
  });
});
