import { toBinary, type DescEnum, type DescFile, type DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * Lookup tables for server reflection, built once from the descriptors the server serves:
 * files by path, files by fully-qualified symbol, and extensions by the message they extend.
 */
export class DescriptorIndex {
  /** Fully-qualified names of the served services, in the order given. */
  readonly serviceNames: readonly string[];
  private readonly files = new Map<string, DescFile>();
  private readonly encoded = new Map<string, Uint8Array>();
  private readonly symbols = new Map<string, DescFile>();
  /** Every known message type has an entry, so "no extensions" differs from "unknown type". */
  private readonly extensions = new Map<string, Map<number, DescFile>>();

  /** Index the files declaring `services` and everything they import, directly or not. */
  constructor(services: readonly DescService[]) {
    this.serviceNames = services.map((service) => service.typeName);
    for (const service of services) {
      for (const file of dependencyClosure(service.file)) this.addFile(file);
    }
  }

  /** The file with this path, e.g. "demo/v1/greeter.proto". */
  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /** The file declaring a service, method, message, enum, enum value, field, oneof or extension. */
  fileBySymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /** The file declaring extension `number` of message `extendee`. */
  fileByExtension(extendee: string, number: number): DescFile | undefined {
    return this.extensions.get(extendee)?.get(number);
  }

  /** Extension numbers declared for a message type, ascending; undefined when the type is unknown. */
  extensionNumbers(extendee: string): number[] | undefined {
    const byNumber = this.extensions.get(extendee);
    return byNumber && [...byNumber.keys()].sort((a, b) => a - b);
  }

  /** The serialized FileDescriptorProto of an indexed file. */
  encode(file: DescFile): Uint8Array {
    const bytes = this.encoded.get(file.proto.name);
    if (!bytes) throw new Error(`file ${file.proto.name} is not indexed`);
    return bytes;
  }

  private addFile(file: DescFile): void {
    const name = file.proto.name;
    if (this.files.has(name)) return;
    this.files.set(name, file);
    this.encoded.set(name, toBinary(FileDescriptorProtoSchema, file.proto));
    for (const type of nestedTypes(file)) {
      this.symbols.set(type.typeName, file);
      switch (type.kind) {
        case "service":
          for (const method of type.methods) this.symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case "message":
          if (!this.extensions.has(type.typeName)) this.extensions.set(type.typeName, new Map());
          for (const field of type.fields) this.symbols.set(`${type.typeName}.${field.name}`, file);
          for (const oneof of type.oneofs) this.symbols.set(`${type.typeName}.${oneof.name}`, file);
          break;
        case "enum":
          for (const value of type.values) this.symbols.set(enumValueName(type, value.name), file);
          break;
        case "extension": {
          // An extendee always lives in this file or one it imports, but those may be indexed later.
          const byNumber = this.extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
          this.extensions.set(type.extendee.typeName, byNumber.set(type.number, file));
          break;
        }
      }
    }
  }
}

/** `file` first, then every file it imports directly or transitively, each once. */
export function dependencyClosure(file: DescFile): DescFile[] {
  const seen = new Map<string, DescFile>([[file.proto.name, file]]);
  for (const current of seen.values()) {
    for (const dependency of current.dependencies) {
      if (!seen.has(dependency.proto.name)) seen.set(dependency.proto.name, dependency);
    }
  }
  return [...seen.values()];
}

// Protobuf scopes enum values like C++ enumerators: siblings of their enum, not children.
function enumValueName(enumDesc: DescEnum, valueName: string): string {
  const scope = enumDesc.typeName.slice(0, Math.max(enumDesc.typeName.lastIndexOf("."), 0));
  return scope ? `${scope}.${valueName}` : valueName;
}
