/**
 * The explorer's description of the served API: method shapes, schemas and example requests
 * in protobuf JSON, for the demo API and for a message that uses every kind of field.
 */
import { create, createFileRegistry, fromJson, type DescMessage } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  file_google_protobuf_duration,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService, GreetStreamRequestSchema } from "../../gen/demo/v1/greeter_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { buildExplorerCatalog } from "../../src/web/explorer-catalog.js";
import { jsonTemplate } from "../../src/web/json-template.js";

describe("jsonTemplate", () => {
  it("writes the demo requests with every field and enum names", () => {
    const catalog = buildExplorerCatalog([GreeterService]);
    const [greet, greetStream] = catalog.services[0].methods;
    expect(greet.template).toEqual({ name: "", language: "LANGUAGE_UNSPECIFIED" });
    expect(greetStream.template).toEqual({ name: "", language: "LANGUAGE_UNSPECIFIED", count: 0, intervalMs: 0 });
    // The template is valid protobuf JSON for its type.
    expect(() => fromJson(GreetStreamRequestSchema, greetStream.template)).not.toThrow();
  });

  it("covers scalars, 64-bit integers, enums, lists, maps, oneofs, optionals, well-known and recursive types", () => {
    const kitchen = kitchenSink();
    const template = jsonTemplate(kitchen);
    expect(template).toEqual({
      id: "0",
      name: "",
      tags: [""],
      labels: { key: "0" },
      color: "COLOR_UNSPECIFIED",
      createdAt: "1970-01-01T00:00:00Z",
      ttl: "0s",
      extra: {},
      nickname: "",
      text: "",
      child: {},
      children: [],
      optionalFlag: false,
      raw: "",
      ratio: 0,
      byColor: { key: "COLOR_UNSPECIFIED" },
    });
    // Only the first member of the oneof is set: setting both would be rejected.
    expect(template).not.toHaveProperty("number");
    expect(() => fromJson(kitchen, template)).not.toThrow();
  });
});

describe("buildExplorerCatalog", () => {
  it("lists every service and method with its shape, path and types", () => {
    const catalog = buildExplorerCatalog([GreeterService, CalculatorService, Health], new Set(["grpc.health.v1.Health"]));
    expect(catalog.services.map((s) => [s.name, s.origin, s.file])).toEqual([
      ["demo.v1.GreeterService", "local", "demo/v1/greeter.proto"],
      ["demo.v1.CalculatorService", "local", "demo/v1/calculator.proto"],
      ["grpc.health.v1.Health", "upstream", "grpc/health/v1/health.proto"],
    ]);
    const methods = catalog.services.flatMap((s) => s.methods.map((m) => [m.path, m.kind, m.idempotency, m.browserCallable]));
    expect(methods).toEqual([
      ["/demo.v1.GreeterService/Greet", "unary", "no_side_effects", true],
      ["/demo.v1.GreeterService/GreetStream", "server_streaming", "unknown", true],
      ["/demo.v1.CalculatorService/Divide", "unary", "no_side_effects", true],
      ["/demo.v1.CalculatorService/Sum", "client_streaming", "unknown", true],
      ["/demo.v1.CalculatorService/Accumulate", "bidi_streaming", "unknown", false],
      ["/grpc.health.v1.Health/Check", "unary", "unknown", true],
      ["/grpc.health.v1.Health/List", "unary", "unknown", true],
      ["/grpc.health.v1.Health/Watch", "server_streaming", "unknown", true],
    ]);
    expect(catalog.services[0].methods[0]).toMatchObject({ input: "demo.v1.GreetRequest", output: "demo.v1.GreetResponse" });
  });

  it("describes every message reachable from a method, nested ones and well-known types included", () => {
    const catalog = buildExplorerCatalog([GreeterService]);
    expect(Object.keys(catalog.messages).sort()).toEqual([
      "demo.v1.GreetRequest",
      "demo.v1.GreetResponse",
      "demo.v1.GreetResponse.Metadata",
      "demo.v1.GreetStreamRequest",
      "demo.v1.GreetStreamResponse",
      "google.protobuf.Timestamp",
    ]);
    expect(catalog.messages["demo.v1.GreetResponse.Metadata"].fields).toEqual([
      { name: "served_at", jsonName: "servedAt", number: 1, label: "singular", type: "google.protobuf.Timestamp", typeKind: "message", deprecated: false },
      { name: "served_by", jsonName: "servedBy", number: 2, label: "singular", type: "string", typeKind: "scalar", deprecated: false },
    ]);
    expect(catalog.messages["google.protobuf.Timestamp"]).toMatchObject({ fields: [], jsonForm: expect.stringContaining("RFC 3339") });
    expect(catalog.enums["demo.v1.Language"].values.map((v) => v.name)).toEqual([
      "LANGUAGE_UNSPECIFIED",
      "LANGUAGE_ENGLISH",
      "LANGUAGE_FRENCH",
      "LANGUAGE_GERMAN",
    ]);
  });

  it("labels repeated, map, optional and oneof fields", () => {
    const kitchen = kitchenSink();
    // A service stand-in with one method: the catalog only reads these properties.
    const service = {
      typeName: "fixture.v1.KitchenService",
      file: kitchen.file,
      methods: [{ name: "Cook", methodKind: "unary", input: kitchen, output: kitchen, idempotency: 0, deprecated: false }],
    };
    const described = buildExplorerCatalog([service as never]);
    const fields = Object.fromEntries(described.messages["fixture.v1.Kitchen"].fields.map((f) => [f.jsonName, f]));
    expect(fields.tags).toMatchObject({ label: "repeated", type: "string", typeKind: "scalar" });
    expect(fields.labels).toMatchObject({ label: "map", mapKey: "string", type: "int64" });
    expect(fields.byColor).toMatchObject({ label: "map", mapKey: "string", type: "fixture.v1.Color", typeKind: "enum" });
    expect(fields.optionalFlag).toMatchObject({ label: "optional", type: "bool" });
    expect(fields.text).toMatchObject({ label: "singular", oneof: "choice" });
    expect(fields.number).toMatchObject({ oneof: "choice" });
    expect(fields.child).toMatchObject({ type: "fixture.v1.Kitchen", typeKind: "message" });
    expect(described.messages["google.protobuf.Duration"].jsonForm).toContain("seconds");
    expect(described.enums["fixture.v1.Color"].values).toEqual([
      { name: "COLOR_UNSPECIFIED", number: 0 },
      { name: "COLOR_RED", number: 1 },
    ]);
  });
});

/** A message with every kind of field, built from a descriptor (the demo API has no maps or oneofs). */
function kitchenSink(): DescMessage {
  const field = (name: string, number: number, type: Type, extra: Record<string, unknown> = {}) => ({
    name,
    number,
    type,
    label: Label.OPTIONAL,
    // protoc always fills json_name in; the runtime relies on it.
    jsonName: name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    ...extra,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "fixture/v1/kitchen.proto",
    package: "fixture.v1",
    syntax: "proto3",
    dependency: [
      "google/protobuf/timestamp.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/wrappers.proto",
    ],
    enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "COLOR_RED", number: 1 }] }],
    messageType: [
      {
        name: "Kitchen",
        field: [
          field("id", 1, Type.INT64),
          field("name", 2, Type.STRING),
          field("tags", 3, Type.STRING, { label: Label.REPEATED }),
          field("labels", 4, Type.MESSAGE, { label: Label.REPEATED, typeName: ".fixture.v1.Kitchen.LabelsEntry" }),
          field("color", 5, Type.ENUM, { typeName: ".fixture.v1.Color" }),
          field("created_at", 6, Type.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
          field("ttl", 7, Type.MESSAGE, { typeName: ".google.protobuf.Duration" }),
          field("extra", 8, Type.MESSAGE, { typeName: ".google.protobuf.Struct" }),
          field("nickname", 9, Type.MESSAGE, { typeName: ".google.protobuf.StringValue" }),
          field("text", 10, Type.STRING, { oneofIndex: 0 }),
          field("number", 11, Type.INT32, { oneofIndex: 0 }),
          field("child", 12, Type.MESSAGE, { typeName: ".fixture.v1.Kitchen" }),
          field("children", 13, Type.MESSAGE, { label: Label.REPEATED, typeName: ".fixture.v1.Kitchen" }),
          field("optional_flag", 14, Type.BOOL, { oneofIndex: 1, proto3Optional: true }),
          field("raw", 15, Type.BYTES),
          field("ratio", 16, Type.DOUBLE),
          field("by_color", 17, Type.MESSAGE, { label: Label.REPEATED, typeName: ".fixture.v1.Kitchen.ByColorEntry" }),
        ],
        oneofDecl: [{ name: "choice" }, { name: "_optional_flag" }],
        nestedType: [
          { name: "LabelsEntry", options: { mapEntry: true }, field: [field("key", 1, Type.STRING), field("value", 2, Type.INT64)] },
          {
            name: "ByColorEntry",
            options: { mapEntry: true },
            field: [field("key", 1, Type.STRING), field("value", 2, Type.ENUM, { typeName: ".fixture.v1.Color" })],
          },
        ],
      },
    ],
  });
  const dependencies = {
    "google/protobuf/timestamp.proto": file_google_protobuf_timestamp,
    "google/protobuf/duration.proto": file_google_protobuf_duration,
    "google/protobuf/struct.proto": file_google_protobuf_struct,
    "google/protobuf/wrappers.proto": file_google_protobuf_wrappers,
  } as Record<string, typeof file_google_protobuf_timestamp>;
  const registry = createFileRegistry(file, (name) => dependencies[name]);
  const message = registry.getMessage("fixture.v1.Kitchen");
  if (!message) throw new Error("fixture message missing");
  return message;
}
