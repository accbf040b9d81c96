/**
 * protovalidate: a violation is invalid_argument with buf.validate.Violations in the error
 * details, seen by real connect-node clients (gRPC and Connect) over HTTP/2.
 *
 * The demo protos carry no buf.validate annotations (buf cannot fetch buf/validate/validate.proto
 * from the BSR offline), so this test builds an annotated service descriptor in code, on top of
 * the validate.proto descriptor that @bufbuild/protovalidate ships.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, createFileRegistry, setExtension, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { field as fieldRules, FieldRulesSchema, file_buf_validate_validate, ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { methodsWithRules, validationInterceptor } from "../../src/interceptors/validation.js";
import { createLogger } from "../../src/ops/logger.js";
import { demoServices } from "../../src/services/demo-services.js";

function annotatedService(): DescService {
  const rules = (init: Parameters<typeof create<typeof FieldRulesSchema>>[1]) => {
    const options = create(FieldOptionsSchema);
    setExtension(options, fieldRules, create(FieldRulesSchema, init));
    return options;
  };
  const scalar = (name: string, number: number, type: FieldDescriptorProto_Type, options: ReturnType<typeof rules>) => ({
    name,
    number,
    type,
    label: FieldDescriptorProto_Label.OPTIONAL,
    jsonName: name,
    options,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "test/validation/v1/validation.proto",
    package: "test.validation.v1",
    syntax: "proto3",
    dependency: ["buf/validate/validate.proto"],
    messageType: [
      {
        name: "CreateRequest",
        field: [
          scalar("name", 1, FieldDescriptorProto_Type.STRING, rules({ type: { case: "string", value: { minLen: 1n, maxLen: 10n } } })),
          scalar("count", 2, FieldDescriptorProto_Type.INT32, rules({ type: { case: "int32", value: { greaterThan: { case: "gt", value: 0 } } } })),
        ],
      },
      { name: "CreateResponse", field: [scalar("name", 1, FieldDescriptorProto_Type.STRING, create(FieldOptionsSchema))] },
    ],
    service: [
      {
        name: "ValidationService",
        method: [
          { name: "Create", inputType: ".test.validation.v1.CreateRequest", outputType: ".test.validation.v1.CreateResponse" },
          { name: "CreateMany", inputType: ".test.validation.v1.CreateRequest", outputType: ".test.validation.v1.CreateResponse", clientStreaming: true },
        ],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) => (name === file_buf_validate_validate.proto.name ? file_buf_validate_validate : undefined));
  return registry.getService("test.validation.v1.ValidationService")!;
}

const service = annotatedService();
let server: http2.Http2Server;
let sessions: Http2SessionManager[] = [];
let clients: Record<"grpc" | "connect", Client<DescService>>;

beforeAll(async () => {
  const logger = createLogger("silent");
  const interceptor = validationInterceptor(methodsWithRules([service]), logger);
  server = http2.createServer(
    connectNodeAdapter({
      interceptors: [interceptor],
      routes: (router) =>
        router.service(service, {
          create: (req: { name: string }) => ({ name: req.name }),
          createMany: async (reqs: AsyncIterable<{ name: string }>) => {
            let last = "";
            for await (const req of reqs) last = req.name;
            return { name: last };
          },
        } as never),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const session = () => {
    const manager = new Http2SessionManager(baseUrl);
    sessions.push(manager);
    return manager;
  };
  clients = {
    grpc: createClient(service, createGrpcTransport({ baseUrl, sessionManager: session() })),
    connect: createClient(service, createConnectTransport({ baseUrl, httpVersion: "2", sessionManager: session() })),
  };
});
afterAll(async () => {
  for (const manager of sessions) manager.abort();
  sessions = [];
  await new Promise((resolve) => server?.close(resolve));
});

describe("protovalidate", () => {
  it("finds the annotated methods, and none in the demo protos (then the interceptor is left out)", () => {
    expect([...methodsWithRules([service])].map((m) => m.name).sort()).toEqual(["Create", "CreateMany"]);
    expect(methodsWithRules(demoServices).size).toBe(0);
  });

  for (const protocol of ["grpc", "connect"] as const) {
    it(`${protocol}: invalid fields → invalid_argument with every field violation in the details`, async () => {
      const client = clients[protocol] as unknown as { create(req: object): Promise<{ name: string }> };
      let error: ConnectError | undefined;
      try {
        await client.create({ name: "", count: 0 });
      } catch (e) {
        error = ConnectError.from(e);
      }
      expect(error?.code).toBe(Code.InvalidArgument);
      const [details] = error!.findDetails(ViolationsSchema);
      const fields = details.violations.map((v) => v.field?.elements.map((e) => e.fieldName).join(".")).sort();
      expect(fields).toEqual(["count", "name"]);
      expect(details.violations.map((v) => v.ruleId).sort()).toEqual(["int32.gt", "string.min_len"]);
      expect((await client.create({ name: "ok", count: 1 })).name).toBe("ok");
    });
  }

  it("checks every message of a client stream", async () => {
    const client = clients.grpc as unknown as { createMany(reqs: AsyncIterable<object>): Promise<{ name: string }> };
    async function* requests(bad: boolean) {
      yield { name: "first", count: 1 };
      yield { name: bad ? "much-too-long-name" : "second", count: 1 };
    }
    expect((await client.createMany(requests(false))).name).toBe("second");
    await expect(client.createMany(requests(true))).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});
