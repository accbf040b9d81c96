import { describe, expect, it } from "vitest";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { DescriptorIndex, dependencyClosure } from "../../src/ops/descriptor-index.js";

describe("DescriptorIndex over the demo services", () => {
  const index = new DescriptorIndex([GreeterService, CalculatorService]);
  const fileOf = (symbol: string) => index.fileBySymbol(symbol)?.proto.name;

  it("lists the services in the order given", () => {
    expect(index.serviceNames).toEqual(["demo.v1.GreeterService", "demo.v1.CalculatorService"]);
  });

  it("indexes the served files and everything they import", () => {
    expect(index.fileByName("demo/v1/greeter.proto")).toBe(GreeterService.file);
    expect(index.fileByName("demo/v1/common.proto")?.proto.name).toBe("demo/v1/common.proto");
    expect(index.fileByName("google/protobuf/timestamp.proto")?.proto.name).toBe("google/protobuf/timestamp.proto");
    expect(index.fileByName("demo/v1/nope.proto")).toBeUndefined();
  });

  it.each([
    ["demo.v1.GreeterService", "demo/v1/greeter.proto"],
    ["demo.v1.GreeterService.GreetStream", "demo/v1/greeter.proto"],
    ["demo.v1.CalculatorService.Divide", "demo/v1/calculator.proto"],
    ["demo.v1.GreetResponse", "demo/v1/greeter.proto"],
    ["demo.v1.GreetResponse.Metadata", "demo/v1/greeter.proto"],
    ["demo.v1.GreetResponse.Metadata.served_at", "demo/v1/greeter.proto"],
    ["demo.v1.GreetRequest.name", "demo/v1/greeter.proto"],
    ["demo.v1.Language", "demo/v1/common.proto"],
    ["demo.v1.LANGUAGE_FRENCH", "demo/v1/common.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    [".demo.v1.SumRequest", "demo/v1/calculator.proto"],
  ])("finds the file declaring %s", (symbol, file) => {
    expect(fileOf(symbol)).toBe(file);
  });

  it.each(["demo.v1", "demo.v1.Missing", "demo.v1.Language.LANGUAGE_FRENCH", "GreetRequest"])(
    "does not know %s",
    (symbol) => expect(index.fileBySymbol(symbol)).toBeUndefined(),
  );

  it("tells a message without extensions from an unknown type", () => {
    expect(index.extensionNumbers("demo.v1.GreetRequest")).toEqual([]);
    expect(index.extensionNumbers("demo.v1.Missing")).toBeUndefined();
  });

  it("encodes each file as the FileDescriptorProto it was generated from", () => {
    const decoded = fromBinary(FileDescriptorProtoSchema, index.encode(GreeterService.file));
    expect(decoded.name).toBe("demo/v1/greeter.proto");
    expect(decoded.dependency).toEqual(["demo/v1/common.proto", "google/protobuf/timestamp.proto"]);
    expect(decoded.service.map((s) => s.name)).toEqual(["GreeterService"]);
  });
});

describe("dependencyClosure", () => {
  it("puts the file first and each transitive import once", () => {
    expect(dependencyClosure(GreeterService.file).map((f) => f.proto.name)).toEqual([
      "demo/v1/greeter.proto",
      "demo/v1/common.proto",
      "google/protobuf/timestamp.proto",
    ]);
    expect(dependencyClosure(CalculatorService.file).map((f) => f.proto.name)).toEqual(["demo/v1/calculator.proto"]);
  });
});

describe("DescriptorIndex with extensions", () => {
  // proto2: `message Base { extensions 100 to 200; oneof choice { string a = 1; } enum Kind {...} }`,
  // `extend Base { note = 100 }` at file level and `extend Base { level = 150 }` nested in Holder.
  const extension = (name: string, number: number) => ({
    name,
    number,
    label: Label.OPTIONAL,
    type: Type.STRING,
    extendee: ".ext.v1.Base",
    jsonName: name,
  });
  const fileSet = create(FileDescriptorSetSchema, {
    file: [
      {
        name: "ext/v1/ext.proto",
        package: "ext.v1",
        syntax: "proto2",
        messageType: [
          {
            name: "Base",
            field: [{ name: "a", number: 1, label: Label.OPTIONAL, type: Type.STRING, oneofIndex: 0, jsonName: "a" }],
            oneofDecl: [{ name: "choice" }],
            enumType: [{ name: "Kind", value: [{ name: "KIND_UNSPECIFIED", number: 0 }] }],
            extensionRange: [{ start: 100, end: 201 }],
          },
          { name: "Holder", extension: [extension("level", 150)] },
        ],
        extension: [extension("note", 100)],
        service: [{ name: "ExtService", method: [{ name: "Get", inputType: ".ext.v1.Base", outputType: ".ext.v1.Base" }] }],
      },
    ],
  });
  const service = createFileRegistry(fileSet).getService("ext.v1.ExtService")!;
  const index = new DescriptorIndex([service]);

  it("lists extension numbers of a type, whichever scope declares them", () => {
    expect(index.extensionNumbers("ext.v1.Base")).toEqual([100, 150]);
    expect(index.extensionNumbers("ext.v1.Holder")).toEqual([]);
  });

  it("finds the file declaring an extension by extendee and number", () => {
    expect(index.fileByExtension("ext.v1.Base", 150)?.proto.name).toBe("ext/v1/ext.proto");
    expect(index.fileByExtension("ext.v1.Base", 101)).toBeUndefined();
    expect(index.fileByExtension("ext.v1.Holder", 100)).toBeUndefined();
  });

  it.each(["ext.v1.note", "ext.v1.Holder.level", "ext.v1.Base.choice", "ext.v1.Base.a", "ext.v1.Base.Kind", "ext.v1.Base.KIND_UNSPECIFIED"])(
    "finds the file declaring %s",
    (symbol) => expect(index.fileBySymbol(symbol)?.proto.name).toBe("ext/v1/ext.proto"),
  );
});
