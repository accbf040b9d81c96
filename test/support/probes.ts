/**
 * One RPC, made by every independent client over every protocol and HTTP version that can
 * carry it, each outcome normalised to { code, message, messages } so a test can demand the
 * same answer from all of them.
 */
import { Code, ConnectError, createClient, type CallOptions } from "@connectrpc/connect";
import {
  create,
  toJson,
  type DescMethod,
  type DescService,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { bufCurl, codeFromExitStatus, type BufProtocol } from "./buf-curl.js";
import { transportSpecs, type TransportMatrix } from "./connect-transports.js";
import { connectGetQuery, curl, type CurlHttpVersion } from "./curl.js";
import { CONNECT_END_STREAM_FLAG, decodeEnvelopes, encodeEnvelopes } from "./envelope.js";
import {
  createGrpcJsClient,
  grpcClientStream,
  grpcServerStream,
  grpcServiceDefinition,
  grpcUnary,
  type GenericGrpcClient,
  type GrpcOutcome,
} from "./grpc-js-client.js";

/** A normalised call result: "ok" or a Connect code name, the error message, the messages in JSON. */
export interface Outcome {
  code: string;
  message: string;
  messages: JsonValue[];
  /** Connect over curl only: the HTTP status of the response. */
  httpStatus?: number;
  durationMs: number;
}

export interface ProbeCall {
  method: DescMethod;
  /** One request for unary and server-streaming methods, any number for client streaming. */
  requests: readonly MessageInitShape<DescMethod["input"]>[];
  /** Give the call a deadline this many ms away (each client in its own way). */
  deadlineMs?: number;
  /** buf curl schema inputs, when the method is not in proto/. */
  schema?: readonly string[];
}

/** What decides, before any call is made, whether a client can make it. */
export interface CallShape {
  kind: DescMethod["methodKind"];
  /** The method may be called with a Connect GET (side-effect free). */
  get?: boolean;
}

export interface Probe {
  /** e.g. "buf curl --protocol grpcweb over HTTP/1.1" */
  name: string;
  run(call: ProbeCall): Promise<Outcome>;
  /** Whether this client can make a call of this shape at all. */
  supports(shape: CallShape): boolean;
}

/** The shape of a generated method. */
export function shapeOf(method: DescMethod): CallShape {
  return { kind: method.methodKind, get: method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS };
}

/** snake_case, as the Connect protocol spells codes ("invalid_argument"). */
export function codeName(code: Code | number): string {
  if (code === 0) return "ok";
  const name = Code[code] as string | undefined;
  return name === undefined ? `code ${code}` : name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

const isBidi = (m: { methodKind: DescMethod["methodKind"] }) => m.methodKind === "bidi_streaming";

function jsonRequests(call: ProbeCall): JsonValue[] {
  return call.requests.map((r) => toJson(call.method.input, create(call.method.input, r)));
}

/** connect-node's createClient, one probe per transport of the matrix (built once the gateway runs). */
export function connectNodeProbes(matrix: () => TransportMatrix): Probe[] {
  return transportSpecs().map((spec) => ({
    name: `connect-node ${spec.name}`,
    supports: (shape) => !(shape.kind === "bidi_streaming" && spec.httpVersion === "1.1"),
    async run(call) {
      const c = matrix().get(spec.name);
      const startedAt = performance.now();
      const client = createClient(call.method.parent, c.transport) as unknown as Record<
        string,
        (input: unknown, options?: CallOptions) => unknown
      >;
      const options: CallOptions = { timeoutMs: call.deadlineMs, signal: AbortSignal.timeout(15_000) };
      const messages: JsonValue[] = [];
      const toJsonOut = (m: unknown) => toJson(call.method.output, m as never);
      try {
        const invoke = client[call.method.localName];
        if (call.method.methodKind === "unary") {
          messages.push(toJsonOut(await invoke(call.requests[0], options)));
        } else if (call.method.methodKind === "server_streaming") {
          for await (const m of invoke(call.requests[0], options) as AsyncIterable<unknown>) messages.push(toJsonOut(m));
        } else {
          const requests = call.requests;
          async function* input() {
            yield* requests;
          }
          if (call.method.methodKind === "client_streaming") {
            messages.push(toJsonOut(await invoke(input(), options)));
          } else {
            for await (const m of invoke(input(), options) as AsyncIterable<unknown>) messages.push(toJsonOut(m));
          }
        }
        return { code: "ok", message: "", messages, durationMs: performance.now() - startedAt };
      } catch (e) {
        const error = ConnectError.from(e);
        return { code: codeName(error.code), message: error.rawMessage, messages, durationMs: performance.now() - startedAt };
      }
    },
  }));
}

/** @grpc/grpc-js over h2c; one client per service, closed by `close()`. */
export function grpcJsProbe(address: () => string): Probe & { close(): void } {
  // Keyed by descriptor, not name: a test schema may describe a served service differently.
  const clients = new Map<DescService, GenericGrpcClient>();
  const clientFor = (service: DescService) => {
    let client = clients.get(service);
    if (!client) {
      client = createGrpcJsClient(address(), grpcServiceDefinition(service), service.typeName);
      clients.set(service, client);
    }
    return client;
  };
  return {
    name: "grpc-js over HTTP/2",
    supports: (shape) => shape.kind !== "bidi_streaming",
    async run(call) {
      const client = clientFor(call.method.parent);
      const options = { deadlineMs: call.deadlineMs, guardMs: 15_000 };
      const method = call.method as DescMethod & { input: DescMethod["input"]; output: DescMethod["output"] };
      let outcome: GrpcOutcome<unknown>;
      if (call.method.methodKind === "unary") outcome = await grpcUnary(client, method, call.requests[0], options);
      else if (call.method.methodKind === "server_streaming") outcome = await grpcServerStream(client, method, call.requests[0], options);
      else outcome = await grpcClientStream(client, method, call.requests, options);
      return {
        code: codeName(outcome.status.code),
        message: outcome.status.code === 0 ? "" : outcome.status.details,
        messages: outcome.messages.map((m) => toJson(call.method.output, m as never)),
        durationMs: outcome.durationMs,
      };
    },
    close() {
      for (const client of clients.values()) client.close();
    },
  };
}

/**
 * buf's --timeout also covers compiling the schema (~0.15 s), so it is never set below this:
 * otherwise the deadline could pass before the request is even sent.
 */
export const BUF_CURL_MIN_DEADLINE_MS = 1_000;

/** The deadline a probe actually gives a call that asks for `deadlineMs`. */
export function effectiveDeadlineMs(probe: Probe, deadlineMs: number): number {
  return probe.name.startsWith("buf curl") ? Math.max(deadlineMs, BUF_CURL_MIN_DEADLINE_MS) : deadlineMs;
}

/** buf curl, for every protocol / HTTP version combination it allows. */
export function bufCurlProbes(baseUrl: () => string): Probe[] {
  const combos: Array<{ protocol: BufProtocol; h2: boolean }> = [
    { protocol: "connect", h2: false },
    { protocol: "connect", h2: true },
    { protocol: "grpcweb", h2: false },
    { protocol: "grpcweb", h2: true },
    { protocol: "grpc", h2: true },
  ];
  return combos.map(({ protocol, h2 }) => ({
    name: `buf curl --protocol ${protocol} over HTTP/${h2 ? "2" : "1.1"}`,
    supports: (shape) => shape.kind !== "bidi_streaming" || h2,
    async run(call) {
      const result = await bufCurl(`${baseUrl()}/${call.method.parent.typeName}/${call.method.name}`, {
        protocol,
        http2PriorKnowledge: h2,
        messages: jsonRequests(call),
        schema: call.schema,
        timeout: call.deadlineMs === undefined ? undefined : `${Math.max(call.deadlineMs, BUF_CURL_MIN_DEADLINE_MS)}ms`,
      });
      if (result.timedOut) throw new Error(`buf curl hung: ${result.stderr}`);
      const expectedVersion = h2 || protocol === "grpc" || isBidi(call.method) ? "2" : "1.1";
      if (result.httpVersion !== undefined && result.httpVersion !== expectedVersion) {
        throw new Error(`buf curl used HTTP/${result.httpVersion}, expected HTTP/${expectedVersion}`);
      }
      if (result.exitCode === 0) {
        return { code: "ok", message: "", messages: result.messages as JsonValue[], durationMs: result.durationMs };
      }
      const fromExit = codeFromExitStatus(result.exitCode);
      if (!result.error || fromExit !== result.error.code) {
        throw new Error(`buf curl exit ${result.exitCode} (${fromExit}) disagrees with its output: ${result.stderr}`);
      }
      return {
        code: result.error.code,
        message: result.error.message ?? "",
        messages: result.messages as JsonValue[],
        durationMs: result.durationMs,
      };
    },
  }));
}

/** Plain curl speaking the Connect protocol with JSON: POST (unary or enveloped streams) and GET. */
export function curlProbes(baseUrl: () => string): Probe[] {
  const probes: Probe[] = [];
  for (const http of ["1.1", "2"] as CurlHttpVersion[]) {
    probes.push({
      name: `curl Connect JSON POST over HTTP/${http}`,
      supports: (shape) => !(shape.kind === "bidi_streaming" && http === "1.1"),
      run: (call) => curlPost(baseUrl(), http, call),
    });
    probes.push({
      name: `curl Connect GET over HTTP/${http}`,
      supports: (shape) => shape.kind === "unary" && shape.get === true,
      run: (call) => curlGet(baseUrl(), http, call),
    });
  }
  return probes;
}

function deadlineHeader(call: ProbeCall): Record<string, string> {
  return call.deadlineMs === undefined ? {} : { "connect-timeout-ms": String(call.deadlineMs) };
}

async function curlGet(baseUrl: string, http: CurlHttpVersion, call: ProbeCall): Promise<Outcome> {
  const [request] = jsonRequests(call);
  const res = await curl(`${baseUrl}/${call.method.parent.typeName}/${call.method.name}?${connectGetQuery(request)}`, {
    http,
    method: "GET",
    headers: deadlineHeader(call),
  });
  return unaryOutcome(res.status, res.headers["content-type"], res.text, res.durationMs);
}

async function curlPost(baseUrl: string, http: CurlHttpVersion, call: ProbeCall): Promise<Outcome> {
  const url = `${baseUrl}/${call.method.parent.typeName}/${call.method.name}`;
  const requests = jsonRequests(call);
  const headers = { "connect-protocol-version": "1", ...deadlineHeader(call) };
  if (call.method.methodKind === "unary") {
    const res = await curl(url, {
      http,
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(requests[0]),
    });
    return unaryOutcome(res.status, res.headers["content-type"], res.text, res.durationMs);
  }
  const res = await curl(url, {
    http,
    headers: { ...headers, "content-type": "application/connect+json" },
    body: encodeEnvelopes(requests.map((r) => JSON.stringify(r))),
  });
  if (res.status !== 200) {
    // A streaming call refused before it started: a Connect unary-style error, or none.
    return unaryOutcome(res.status, res.headers["content-type"], res.text, res.durationMs);
  }
  const envelopes = decodeEnvelopes(res.body);
  const end = envelopes.pop();
  if (!end || (end.flags & CONNECT_END_STREAM_FLAG) === 0) throw new Error("Connect stream ended without an end-of-stream message");
  const messages = envelopes.map((e) => JSON.parse(e.data.toString("utf8")) as JsonValue);
  const endMessage = JSON.parse(end.data.toString("utf8")) as { error?: { code: string; message?: string } };
  return {
    code: endMessage.error?.code ?? "ok",
    message: endMessage.error?.message ?? "",
    messages,
    httpStatus: res.status,
    durationMs: res.durationMs,
  };
}

function unaryOutcome(status: number, contentType: string | undefined, text: string, durationMs: number): Outcome {
  if (status === 200) return { code: "ok", message: "", messages: [JSON.parse(text) as JsonValue], httpStatus: status, durationMs };
  if (contentType?.startsWith("application/json")) {
    const error = JSON.parse(text) as { code: string; message?: string };
    return { code: error.code, message: error.message ?? "", messages: [], httpStatus: status, durationMs };
  }
  return { code: `no Connect error body (HTTP ${status})`, message: text, messages: [], httpStatus: status, durationMs };
}

/** The HTTP status the Connect protocol prescribes for an error code on a unary call. */
export const connectHttpStatus: Record<string, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};
