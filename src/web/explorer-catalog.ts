import type { DescEnum, DescField, DescMessage, DescService } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { EnumInfo, ExplorerCatalog, FieldInfo, MessageInfo, MethodInfo, ServiceInfo } from "./explorer-types.js";
import { jsonTemplate, scalarName, wellKnownJsonForm } from "./json-template.js";

/**
 * Describe the served services for the explorer from the same DescService list that health and
 * reflection use, so the explorer can never list something the gateway does not serve.
 */
export function buildExplorerCatalog(
  services: readonly DescService[],
  upstreamServices: ReadonlySet<string> = new Set(),
): ExplorerCatalog {
  const messages: Record<string, MessageInfo> = {};
  const enums: Record<string, EnumInfo> = {};
  const describeEnum = (desc: DescEnum) => {
    enums[desc.typeName] ??= { name: desc.typeName, values: desc.values.map((v) => ({ name: v.name, number: v.number })) };
  };
  const describeMessage = (desc: DescMessage): void => {
    if (messages[desc.typeName]) return;
    const jsonForm = wellKnownJsonForm(desc.typeName);
    const info: MessageInfo = { name: desc.typeName, file: desc.file.proto.name, fields: [], ...(jsonForm && { jsonForm }) };
    // Registered before the fields are walked, so a recursive type ends the walk.
    messages[desc.typeName] = info;
    if (jsonForm) return;
    for (const field of desc.fields) {
      info.fields.push(describeField(field));
      if (field.message) describeMessage(field.message);
      if (field.enum) describeEnum(field.enum);
    }
  };

  const seen = new Set<string>();
  const list: ServiceInfo[] = [];
  for (const service of services) {
    // The same service may be listed twice (e.g. while routes are being assembled); show it once.
    if (seen.has(service.typeName)) continue;
    seen.add(service.typeName);
    const methods = service.methods.map((method): MethodInfo => {
      describeMessage(method.input);
      describeMessage(method.output);
      return {
        name: method.name,
        path: `/${service.typeName}/${method.name}`,
        kind: method.methodKind,
        input: method.input.typeName,
        output: method.output.typeName,
        idempotency:
          method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
            ? "no_side_effects"
            : method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT
              ? "idempotent"
              : "unknown",
        deprecated: method.deprecated,
        template: jsonTemplate(method.input),
        browserCallable: method.methodKind !== "bidi_streaming",
      };
    });
    list.push({
      name: service.typeName,
      file: service.file.proto.name,
      origin: upstreamServices.has(service.typeName) ? "upstream" : "local",
      methods,
    });
  }
  return { services: list, messages, enums };
}

function describeField(field: DescField): FieldInfo {
  const common = {
    name: field.name,
    jsonName: field.jsonName,
    number: field.number,
    deprecated: field.deprecated,
    ...(field.oneof && { oneof: field.oneof.name }),
  };
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
    case "message": {
      const label = field.presence === FeatureSet_FieldPresence.EXPLICIT && !field.oneof && field.fieldKind !== "message" ? "optional" : "singular";
      return { ...common, label, ...elementType(field) };
    }
    case "list":
      return { ...common, label: "repeated", ...elementType(field) };
    case "map":
      return { ...common, label: "map", mapKey: scalarName(field.mapKey), ...elementType(field) };
  }
}

function elementType(field: DescField): Pick<FieldInfo, "type" | "typeKind"> {
  if (field.message) return { type: field.message.typeName, typeKind: "message" };
  if (field.enum) return { type: field.enum.typeName, typeKind: "enum" };
  return { type: scalarName(field.scalar!), typeKind: "scalar" };
}
