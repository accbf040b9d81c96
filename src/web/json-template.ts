import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { JsonValue } from "./explorer-types.js";

/**
 * Well-known types that protobuf JSON writes as something other than an object of their fields,
 * with an example value and a one-line description of the form.
 */
const WELL_KNOWN_JSON: Readonly<Record<string, { example: JsonValue; form: string }>> = {
  "google.protobuf.Timestamp": { example: "1970-01-01T00:00:00Z", form: 'RFC 3339 string in UTC, e.g. "2024-05-01T12:30:00.5Z"' },
  "google.protobuf.Duration": { example: "0s", form: 'seconds with an "s" suffix, e.g. "1.5s"' },
  "google.protobuf.FieldMask": { example: "", form: 'comma-separated lowerCamelCase paths, e.g. "name,metadata.servedAt"' },
  "google.protobuf.Struct": { example: {}, form: "any JSON object" },
  "google.protobuf.Value": { example: null, form: "any JSON value" },
  "google.protobuf.ListValue": { example: [], form: "any JSON array" },
  "google.protobuf.Empty": { example: {}, form: "an empty object: {}" },
  "google.protobuf.Any": { example: { "@type": "" }, form: 'an object with "@type" (a type URL) and the fields of that type' },
  "google.protobuf.DoubleValue": { example: 0, form: "a JSON number, or null" },
  "google.protobuf.FloatValue": { example: 0, form: "a JSON number, or null" },
  "google.protobuf.Int32Value": { example: 0, form: "a JSON number, or null" },
  "google.protobuf.UInt32Value": { example: 0, form: "a JSON number, or null" },
  "google.protobuf.Int64Value": { example: "0", form: "a decimal string (64-bit), or null" },
  "google.protobuf.UInt64Value": { example: "0", form: "a decimal string (64-bit), or null" },
  "google.protobuf.BoolValue": { example: false, form: "true or false, or null" },
  "google.protobuf.StringValue": { example: "", form: "a string, or null" },
  "google.protobuf.BytesValue": { example: "", form: "base64 string, or null" },
};

/** How protobuf JSON writes a well-known type that is not a plain object; undefined for other types. */
export function wellKnownJsonForm(typeName: string): string | undefined {
  return WELL_KNOWN_JSON[typeName]?.form;
}

/**
 * An example request in protobuf JSON: every field present with a value of its type, nested
 * messages filled in, one element per list and map, and only the first field of each oneof
 * (setting two members of a oneof is an error).
 */
export function jsonTemplate(message: DescMessage): JsonValue {
  return messageTemplate(message, new Set());
}

function messageTemplate(message: DescMessage, path: Set<string>): JsonValue {
  const wellKnown = WELL_KNOWN_JSON[message.typeName];
  if (wellKnown) return structuredClone(wellKnown.example);
  // A message that contains itself (directly or not) would never end; stop at the second visit.
  if (path.has(message.typeName)) return {};
  path.add(message.typeName);
  const result: Record<string, JsonValue> = {};
  const oneofsSeen = new Set<string>();
  for (const field of message.fields) {
    if (field.oneof) {
      if (oneofsSeen.has(field.oneof.name)) continue;
      oneofsSeen.add(field.oneof.name);
    }
    result[field.jsonName] = fieldTemplate(field, path);
  }
  path.delete(message.typeName);
  return result;
}

function fieldTemplate(field: DescField, path: Set<string>): JsonValue {
  switch (field.fieldKind) {
    case "scalar":
      return scalarTemplate(field.scalar);
    case "enum":
      return enumTemplate(field.enum);
    case "message":
      return messageTemplate(field.message, path);
    case "list":
      switch (field.listKind) {
        case "scalar":
          return [scalarTemplate(field.scalar)];
        case "enum":
          return [enumTemplate(field.enum)];
        case "message":
          return path.has(field.message.typeName) ? [] : [messageTemplate(field.message, path)];
      }
      break;
    case "map": {
      const key = mapKeyTemplate(field.mapKey);
      switch (field.mapKind) {
        case "scalar":
          return { [key]: scalarTemplate(field.scalar) };
        case "enum":
          return { [key]: enumTemplate(field.enum) };
        case "message":
          return path.has(field.message.typeName) ? {} : { [key]: messageTemplate(field.message, path) };
      }
    }
  }
}

/** The value protobuf JSON uses for a scalar's zero value (64-bit integers are strings). */
export function scalarTemplate(scalar: ScalarType): JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return "0";
    default:
      return 0;
  }
}

function enumTemplate(enumDesc: DescEnum): JsonValue {
  if (enumDesc.typeName === "google.protobuf.NullValue") return null;
  return enumDesc.values[0]?.name ?? 0;
}

function mapKeyTemplate(scalar: ScalarType): string {
  if (scalar === ScalarType.STRING) return "key";
  if (scalar === ScalarType.BOOL) return "true";
  return "0";
}

/** The protobuf name of a scalar type: "string", "int64", "bytes"... */
export function scalarName(scalar: ScalarType): string {
  return ScalarType[scalar].toLowerCase();
}
