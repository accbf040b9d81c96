import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `buf curl` to completion; a non-zero exit is a result, not a failure. */
function bufCurl(args: string[], stdin = ""): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(BUF, ["curl", ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") reject(Object.assign(error, { stderr }));
      else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
    child.stdin?.end(stdin);
  });
}

/** buf curl pretty-prints one JSON document per response message, each starting at column 0. */
function jsonDocuments(stdout: string): unknown[] {
  return stdout
    .split(/^(?=\{)/m)
    .filter((doc) => doc.trim())
    .map((doc) => JSON.parse(doc));
}

const lines = (stdout: string) => stdout.split("\n").filter(Boolean);

describe("server reflection", () => {
  let server: StartedGateway;
  beforeAll(async () => {
    server = await startGateway();
  });
  afterAll(() => server.close());

  describe.each(["grpc-v1", "grpc-v1alpha"])("buf curl --reflect-protocol %s", (reflectProtocol) => {
    const curl = (args: string[], stdin?: string) =>
      bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "--reflect-protocol", reflectProtocol, ...args], stdin);
    const call = (method: string, data: string, stdin?: string) => curl(["-d", data, `${server.url}/${method}`], stdin);

    it("lists every served service, reflection included", async () => {
      const result = await curl(["--list-services", server.url]);
      expect(result).toMatchObject({ code: 0, stderr: "" });
      expect(lines(result.stdout)).toEqual(
        expect.arrayContaining([
          "demo.v1.GreeterService",
          "demo.v1.CalculatorService",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ]),
      );
    });

    it("lists the demo methods", async () => {
      const result = await curl(["--list-methods", server.url]);
      expect(result.code).toBe(0);
      expect(lines(result.stdout)).toEqual(
        expect.arrayContaining([
          "demo.v1.GreeterService/Greet",
          "demo.v1.GreeterService/GreetStream",
          "demo.v1.CalculatorService/Divide",
          "demo.v1.CalculatorService/Sum",
          "demo.v1.CalculatorService/Accumulate",
        ]),
      );
    });

    it("calls unary Greet with the schema from reflection", async () => {
      const result = await call("demo.v1.GreeterService/Greet", '{"name":"Ada","language":"LANGUAGE_FRENCH"}');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ greeting: "Bonjour, Ada!", metadata: { servedAt: expect.any(String) } });
    });

    it("calls unary Divide, and maps its error to buf curl's exit code", async () => {
      const ok = await call("demo.v1.CalculatorService/Divide", '{"dividend":7,"divisor":2}');
      expect(JSON.parse(ok.stdout)).toEqual({ quotient: 3.5 });
      const byZero = await call("demo.v1.CalculatorService/Divide", '{"dividend":7,"divisor":0}');
      expect(byZero.code).toBe(INVALID_ARGUMENT << 3);
      expect(byZero.stderr).toContain("cannot divide by zero");
    });

    it("calls server-streaming GreetStream", async () => {
      const result = await call("demo.v1.GreeterService/GreetStream", '{"name":"Ada","count":3}');
      expect(result.code).toBe(0);
      expect(jsonDocuments(result.stdout)).toEqual([1, 2, 3].map((sequence) => ({ greeting: "Hello, Ada!", sequence })));
    });

    it("calls client-streaming Sum with several messages from stdin", async () => {
      const result = await call("demo.v1.CalculatorService/Sum", "@-", '{"number":1}\n{"number":2}\n{"number":40}\n');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ sum: "43", count: 3 });
    });

    it("calls bidirectional Accumulate with several messages from stdin", async () => {
      const result = await call("demo.v1.CalculatorService/Accumulate", "@-", '{"number":1} {"number":2} {"number":4}');
      expect(result.code).toBe(0);
      expect(jsonDocuments(result.stdout)).toEqual([{ total: "1" }, { total: "3" }, { total: "7" }]);
    });
  });

  // buf curl sends its reflection stream in the protocol chosen with --protocol, so these cover
  // reflection itself over Connect streaming and gRPC-web (both bidi over HTTP/2), not just the call.
  describe.each(["connect", "grpcweb"])("buf curl --protocol %s", (protocol) => {
    it("lists services over reflection in that protocol", async () => {
      const result = await bufCurl(["--protocol", protocol, "--list-services", server.url]);
      expect(result.code).toBe(0);
      expect(lines(result.stdout)).toContain("demo.v1.GreeterService");
    });

    it("calls Greet with the schema from reflection", async () => {
      const result = await bufCurl(["--protocol", protocol, "-d", '{"name":"Ada"}', `${server.url}/demo.v1.GreeterService/Greet`]);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ greeting: "Hello, Ada!" });
    });
  });

  it("buf curl reports a service the server does not reflect", async () => {
    const result = await bufCurl(["--protocol", "grpc", "-d", "{}", `${server.url}/demo.v1.MissingService/Get`]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("demo.v1.MissingService");
  });

  describe.each([
    ["v1", v1],
    ["v1alpha", v1alpha],
  ] as const)("@grpc/grpc-js client speaking grpc.reflection.%s", (version, api) => {
    let client: grpc.Client;
    beforeAll(() => {
      client = reflectionClient(server.port, version);
    });
    afterAll(() => client.close());

    it("lists services", async () => {
      const stream = openStream(client, api);
      const response = await stream.ask({ host: "localhost", messageRequest: { case: "listServices", value: "" } });
      expect(response.validHost).toBe("localhost");
      expect(response.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "" });
      const listed = answerOf(response, "listServicesResponse").service.map((s) => s.name);
      expect(listed).toEqual(server.gateway.serviceNames);
      expect(listed).toContain(`grpc.reflection.${version}.ServerReflection`);
      stream.end();
    });

    it("answers a nested message with its file first and the whole dependency closure", async () => {
      const stream = openStream(client, api);
      const response = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "demo.v1.GreetResponse.Metadata" } });
      const files = decodeFiles(response);
      expect(files.map((f) => f.name)).toEqual([
        "demo/v1/greeter.proto",
        "demo/v1/common.proto",
        "google/protobuf/timestamp.proto",
      ]);
      const greetResponse = files[0].messageType.find((m) => m.name === "GreetResponse");
      expect(greetResponse?.nestedType.map((m) => m.name)).toEqual(["Metadata"]);
      stream.end();
    });

    it("answers a method symbol", async () => {
      const stream = openStream(client, api);
      const response = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "demo.v1.CalculatorService.Divide" } });
      const [calculator, ...others] = decodeFiles(response);
      expect(calculator.name).toBe("demo/v1/calculator.proto");
      expect(others).toEqual([]);
      expect(calculator.service[0].method.map((m) => m.name)).toContain("Divide");
      stream.end();
    });

    it("answers an unknown symbol with NOT_FOUND and keeps the stream usable", async () => {
      const stream = openStream(client, api);
      const missing = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "demo.v1.Missing" } });
      expect(answerOf(missing, "errorResponse")).toMatchObject({ errorCode: NOT_FOUND, errorMessage: expect.stringContaining("demo.v1.Missing") });
      expect(missing.originalRequest?.messageRequest).toEqual({ case: "fileContainingSymbol", value: "demo.v1.Missing" });
      const missingFile = await stream.ask({ messageRequest: { case: "fileByFilename", value: "demo/v1/missing.proto" } });
      expect(answerOf(missingFile, "errorResponse").errorCode).toBe(NOT_FOUND);
      const empty = await stream.ask({});
      expect(answerOf(empty, "errorResponse").errorCode).toBe(INVALID_ARGUMENT);
      const after = await stream.ask({ messageRequest: { case: "fileByFilename", value: "demo/v1/calculator.proto" } });
      expect(decodeFiles(after).map((f) => f.name)).toEqual(["demo/v1/calculator.proto"]);
      stream.end();
    });

    it("leaves out files this stream already received, but never the one asked for", async () => {
      const stream = openStream(client, api);
      const first = await stream.ask({ messageRequest: { case: "fileByFilename", value: "demo/v1/greeter.proto" } });
      expect(decodeFiles(first).map((f) => f.name)).toHaveLength(3);
      const again = await stream.ask({ messageRequest: { case: "fileByFilename", value: "demo/v1/greeter.proto" } });
      expect(decodeFiles(again).map((f) => f.name)).toEqual(["demo/v1/greeter.proto"]);
      const dependency = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "google.protobuf.Timestamp" } });
      expect(decodeFiles(dependency).map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto"]);
      stream.end();

      // A new stream knows nothing yet.
      const fresh = openStream(client, api);
      const full = await fresh.ask({ messageRequest: { case: "fileByFilename", value: "demo/v1/greeter.proto" } });
      expect(decodeFiles(full).map((f) => f.name)).toHaveLength(3);
      fresh.end();
    });

    it("answers extension questions from the known files", async () => {
      const stream = openStream(client, api);
      const none = await stream.ask({ messageRequest: { case: "allExtensionNumbersOfType", value: "demo.v1.GreetRequest" } });
      expect(answerOf(none, "allExtensionNumbersResponse")).toMatchObject({ baseTypeName: "demo.v1.GreetRequest", extensionNumber: [] });
      const unknownType = await stream.ask({ messageRequest: { case: "allExtensionNumbersOfType", value: "demo.v1.Missing" } });
      expect(answerOf(unknownType, "errorResponse").errorCode).toBe(NOT_FOUND);
      const unknownExtension = await stream.ask({
        messageRequest: { case: "fileContainingExtension", value: { containingType: "demo.v1.GreetRequest", extensionNumber: 100 } },
      });
      expect(answerOf(unknownExtension, "errorResponse").errorCode).toBe(NOT_FOUND);
      stream.end();
    });
  });
});

describe("server reflection switched off", () => {
  let server: StartedGateway;
  beforeAll(async () => {
    server = await startGateway({ reflection: { enabled: false } });
  });
  afterAll(() => server.close());

  it("is not listed", () => {
    expect(server.gateway.serviceNames).not.toContain("grpc.reflection.v1.ServerReflection");
  });

  it.each(["grpc-v1", "grpc-v1alpha"])("makes buf curl --reflect-protocol %s report Unimplemented", async (reflectProtocol) => {
    const result = await bufCurl(["--protocol", "grpc", "--reflect-protocol", reflectProtocol, "--list-services", server.url]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/unimplemented/i);
  });

  // grpc-js only sees the status of a trailers-only answer sent as a single HEADERS frame.
  it.each(["v1", "v1alpha"] as const)("answers grpc.reflection.%s with UNIMPLEMENTED to grpc-js", async (version) => {
    const client = reflectionClient(server.port, version);
    try {
      const stream = openStream(client, version === "v1" ? v1 : v1alpha);
      await expect(stream.ask({ messageRequest: { case: "listServices", value: "" } })).rejects.toMatchObject({
        code: grpc.status.UNIMPLEMENTED,
      });
    } finally {
      client.close();
    }
  });
});

type ReflectionApi = typeof v1 | typeof v1alpha;
/** v1alpha responses have the same fields as v1; the tests only read fields, so one type serves both. */
type Response = v1.ServerReflectionResponse;
interface AnswerValues {
  fileDescriptorResponse: v1.FileDescriptorResponse;
  allExtensionNumbersResponse: v1.ExtensionNumberResponse;
  listServicesResponse: v1.ListServiceResponse;
  errorResponse: v1.ErrorResponse;
}

/** A grpc-js client for ServerReflectionInfo, (de)serialising with the generated schemas. */
function reflectionClient(port: number, version: "v1" | "v1alpha"): grpc.Client {
  const api = version === "v1" ? v1 : v1alpha;
  const codec = <Desc extends DescMessage>(schema: Desc) => ({
    serialize: (message: MessageShape<Desc>) => Buffer.from(toBinary(schema, message)),
    deserialize: (bytes: Buffer) => fromBinary(schema, bytes),
  });
  const request = codec(api.ServerReflectionRequestSchema as DescMessage);
  const response = codec(api.ServerReflectionResponseSchema as DescMessage);
  const Client = grpc.makeGenericClientConstructor(
    {
      serverReflectionInfo: {
        path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        requestStream: true,
        responseStream: true,
        requestSerialize: request.serialize,
        requestDeserialize: request.deserialize,
        responseSerialize: response.serialize,
        responseDeserialize: response.deserialize,
      },
    },
    "ServerReflection",
  );
  return new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** One reflection stream where each question waits for its answer, as grpcurl uses it. */
function openStream(client: grpc.Client, api: ReflectionApi) {
  const call = (client as unknown as { serverReflectionInfo(): grpc.ClientDuplexStream<unknown, Response> }).serverReflectionInfo();
  const responses = call[Symbol.asyncIterator]() as AsyncIterator<Response>;
  return {
    async ask(init: MessageInitShape<typeof v1.ServerReflectionRequestSchema>): Promise<Response> {
      call.write(create(api.ServerReflectionRequestSchema as typeof v1.ServerReflectionRequestSchema, init));
      const next = await responses.next();
      if (next.done) throw new Error("the reflection stream ended early");
      return next.value;
    },
    end: () => call.end(),
  };
}

function answerOf<C extends keyof AnswerValues>(response: Response, expected: C): AnswerValues[C] {
  expect(response.messageResponse.case).toBe(expected);
  return response.messageResponse.value as AnswerValues[C];
}

function decodeFiles(response: Response) {
  return answerOf(response, "fileDescriptorResponse").fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}
