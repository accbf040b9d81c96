/**
 * The document GET /explorer/api/services answers: every served method with what a browser
 * needs to call it, and the schema of every message type those methods use.
 * Shared by the gateway (which builds it) and the explorer page (which reads it), so keep it
 * free of runtime imports.
 */
export interface ExplorerCatalog {
  services: ServiceInfo[];
  /** Every message type reachable from a method's input or output, by fully-qualified name. */
  messages: Record<string, MessageInfo>;
  /** Every enum type those messages use, by fully-qualified name. */
  enums: Record<string, EnumInfo>;
}

export type MethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";

export interface ServiceInfo {
  /** Fully-qualified name, e.g. "demo.v1.GreeterService". */
  name: string;
  /** The .proto file that declares it. */
  file: string;
  /** "local": implemented in this process; "upstream": forwarded to an upstream route. */
  origin: "local" | "upstream";
  methods: MethodInfo[];
}

export interface MethodInfo {
  name: string;
  /** The request path, e.g. "/demo.v1.GreeterService/Greet". */
  path: string;
  kind: MethodKind;
  /** Fully-qualified request and response message types. */
  input: string;
  output: string;
  idempotency: "unknown" | "no_side_effects" | "idempotent";
  deprecated: boolean;
  /** A request message in protobuf JSON with every field set to an example of its type. */
  template: JsonValue;
  /**
   * Whether a browser can make this call with fetch over HTTP/1.1. Bidirectional streaming needs
   * a full-duplex HTTP/2 request body, which fetch cannot send.
   */
  browserCallable: boolean;
}

export interface MessageInfo {
  name: string;
  file: string;
  fields: FieldInfo[];
  /**
   * Set for well-known types whose JSON is not an object of their fields (Timestamp, Duration,
   * Struct, wrappers...): how to write them in JSON. Their fields are then not listed.
   */
  jsonForm?: string;
}

export interface FieldInfo {
  /** Name in the .proto file. */
  name: string;
  /** Name in protobuf JSON (lowerCamelCase): the key to use in a request. */
  jsonName: string;
  number: number;
  /** "optional": explicit presence; "repeated": a JSON array; "map": a JSON object. */
  label: "singular" | "optional" | "repeated" | "map";
  /** For scalars the protobuf type ("string", "int64"...); otherwise the fully-qualified type name. */
  type: string;
  typeKind: "scalar" | "enum" | "message";
  /** Map fields: the key's scalar type. */
  mapKey?: string;
  /** The oneof group the field belongs to: at most one field of a group may be set. */
  oneof?: string;
  deprecated: boolean;
}

export interface EnumInfo {
  name: string;
  values: { name: string; number: number }[];
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
