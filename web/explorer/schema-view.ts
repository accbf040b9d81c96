/** The fields of a message type as a table, nested message types expandable in place. */
import type { ExplorerCatalog, FieldInfo, MessageInfo } from "../../src/web/explorer-types.js";
import { h } from "../shared/dom.js";

const MAX_ENUM_VALUES_SHOWN = 12;

export function schemaView(catalog: ExplorerCatalog, typeName: string): HTMLElement {
  const message = catalog.messages[typeName];
  if (!message) return h("p", { class: "empty" }, `No schema for ${typeName}.`);
  return h(
    "div",
    { class: "schema", "data-testid": "schema", "data-type": typeName },
    h("p", { class: "schema-type" }, h("code", {}, typeName), h("span", { class: "muted small mono" }, message.file)),
    messageTable(catalog, message, new Set([typeName])),
  );
}

function messageTable(catalog: ExplorerCatalog, message: MessageInfo, path: Set<string>): HTMLElement {
  if (message.jsonForm) return h("p", { class: "json-form" }, h("span", { class: "muted" }, "JSON: "), message.jsonForm);
  if (message.fields.length === 0) return h("p", { class: "empty" }, "No fields: send {}.");
  return h(
    "table",
    { class: "fields" },
    h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Type"), h("th", { class: "num" }, "#"))),
    h(
      "tbody",
      {},
      message.fields.map((field) => fieldRow(catalog, field, path)),
    ),
  );
}

function fieldRow(catalog: ExplorerCatalog, field: FieldInfo, path: Set<string>): HTMLElement {
  const nested = field.typeKind === "message" ? catalog.messages[field.type] : undefined;
  const enumInfo = field.typeKind === "enum" ? catalog.enums[field.type] : undefined;
  const typeCell = h("td", { class: "type" }, typeLabel(field));
  if (enumInfo) {
    const shown = enumInfo.values.slice(0, MAX_ENUM_VALUES_SHOWN);
    typeCell.append(
      h(
        "div",
        { class: "enum-values" },
        shown.map((v) => h("code", { title: `= ${v.number}` }, v.name)),
        enumInfo.values.length > shown.length ? h("span", { class: "muted" }, ` +${enumInfo.values.length - shown.length} more`) : null,
      ),
    );
  }
  if (nested?.jsonForm) typeCell.append(h("div", { class: "muted small" }, "JSON: ", nested.jsonForm));
  else if (nested && !path.has(nested.name)) {
    const inner = new Set(path).add(nested.name);
    const details = h("details", { class: "nested" }, h("summary", {}, `${nested.fields.length} field${nested.fields.length === 1 ? "" : "s"}`));
    // Built when opened: recursive and deep types stay cheap until someone looks.
    details.addEventListener("toggle", () => {
      if (details.open && details.childElementCount === 1) details.append(messageTable(catalog, nested, inner));
    }, { once: false });
    typeCell.append(details);
  } else if (nested) {
    typeCell.append(h("div", { class: "muted small" }, "recursive: see above"));
  }
  return h(
    "tr",
    { "data-field": field.jsonName },
    h(
      "td",
      { class: "name" },
      h("code", { class: "json-name" }, field.jsonName),
      field.jsonName !== field.name ? h("div", { class: "muted small mono", title: "name in the .proto file" }, field.name) : null,
      h(
        "div",
        { class: "tags" },
        field.label !== "singular" ? h("span", { class: "tag" }, field.label) : null,
        field.oneof ? h("span", { class: "tag", title: "at most one field of a oneof may be set" }, `oneof ${field.oneof}`) : null,
        field.deprecated ? h("span", { class: "tag warn" }, "deprecated") : null,
      ),
    ),
    typeCell,
    h("td", { class: "num muted" }, String(field.number)),
  );
}

function typeLabel(field: FieldInfo): HTMLElement {
  const type = field.typeKind === "scalar" ? field.type : shortName(field.type);
  const text = field.label === "map" ? `map<${field.mapKey}, ${type}>` : field.label === "repeated" ? `${type}[]` : type;
  return h("code", { class: `t-${field.typeKind}`, title: field.type }, text);
}

function shortName(typeName: string): string {
  // Keep nested names readable (GreetResponse.Metadata) by dropping only the lower-case package.
  return typeName.split(".").filter((part, i, parts) => i === parts.length - 1 || /^[A-Z]/.test(part)).join(".");
}
