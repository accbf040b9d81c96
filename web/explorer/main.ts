/**
 * The API explorer: every method the gateway serves (from the descriptors reflection uses),
 * each with its request schema, an example request, a Send button (Connect JSON over fetch),
 * the response as it streams in, and the same call as curl, grpcurl and buf curl command lines.
 */
import "../shared/base.css";
import "./explorer.css";
import type { ExplorerCatalog, MethodInfo, ServiceInfo } from "../../src/web/explorer-types.js";
import { byId, formatMs, h, replaceChildren } from "../shared/dom.js";
import { bufCurlCommand, curlCommand, grpcurlCommand, type CommandInput } from "./commands.js";
import { callConnectJson, type CallResult } from "./connect-json.js";
import { jsonView } from "./json-view.js";
import { schemaView } from "./schema-view.js";

const baseUrl = location.origin;
const HEADERS_KEY = "explorer.headers";
const KIND_LABEL: Record<MethodInfo["kind"], string> = {
  unary: "unary",
  server_streaming: "server stream",
  client_streaming: "client stream",
  bidi_streaming: "bidi stream",
};

interface Selected {
  service: ServiceInfo;
  method: MethodInfo;
}

/** What the user typed per method, kept while they look at other methods. */
const drafts = new Map<string, string>();
/** Extra headers sent with every call (authorization...). Per tab: secrets do not outlive it. */
let headerRows: [string, string][] = loadHeaders();
let timeoutMs = "";
let inFlight: AbortController | undefined;

async function main(): Promise<void> {
  const root = byId("root");
  let catalog: ExplorerCatalog;
  try {
    const response = await fetch("/explorer/api/services", { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`GET /explorer/api/services answered HTTP ${response.status}`);
    catalog = (await response.json()) as ExplorerCatalog;
  } catch (error) {
    replaceChildren(root, topbar(), h("main", { class: "fatal" }, h("div", { class: "error-box" }, h("span", { class: "code" }, "unavailable"), `Cannot load the service list: ${(error as Error).message}`)));
    return;
  }

  const content = h("main", { class: "content", "data-testid": "content" });
  const search = h("input", { type: "search", placeholder: "Filter methods…", "aria-label": "Filter methods", "data-testid": "filter" });
  const list = h("nav", { class: "services", "aria-label": "Services and methods", "data-testid": "services" });
  const renderList = () => replaceChildren(list, serviceList(catalog, search.value.trim().toLowerCase(), currentPath()));
  search.addEventListener("input", renderList);
  const methodCount = catalog.services.reduce((n, s) => n + s.methods.length, 0);

  replaceChildren(
    root,
    topbar(),
    h(
      "div",
      { class: "layout" },
      h(
        "aside",
        { class: "sidebar" },
        h("div", { class: "search" }, search),
        list,
        h("p", { class: "sidebar-foot muted" }, `${catalog.services.length} services · ${methodCount} methods`),
      ),
      content,
    ),
  );

  const route = () => {
    const selected = find(catalog, currentPath());
    renderList();
    inFlight?.abort();
    inFlight = undefined;
    if (selected) {
      replaceChildren(content, methodView(catalog, selected));
      document.title = `${selected.method.name} · API explorer`;
    } else {
      replaceChildren(content, overview(catalog));
      document.title = "API explorer · connect-gateway";
    }
    window.scrollTo(0, 0);
  };
  window.addEventListener("hashchange", route);
  route();
}

function topbar(): HTMLElement {
  return h(
    "header",
    { class: "topbar" },
    h("div", { class: "brand" }, h("span", { class: "brand-mark" }, "⇄"), "connect-gateway", h("span", { class: "sub" }, "· API explorer")),
    h("div", { class: "spacer" }),
    h("nav", {}, h("a", { href: "/app/" }, "Demo app"), h("a", { href: "/explorer", "aria-current": "page" }, "API explorer")),
    h("span", { class: "origin-chip", title: "Calls go to this gateway" }, baseUrl),
  );
}

function currentPath(): string {
  return decodeURIComponent(location.hash.replace(/^#/, ""));
}

function find(catalog: ExplorerCatalog, path: string): Selected | undefined {
  for (const service of catalog.services) {
    const method = service.methods.find((m) => m.path === path);
    if (method) return { service, method };
  }
  return undefined;
}

function splitName(name: string): [pkg: string, short: string] {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? ["", name] : [name.slice(0, dot + 1), name.slice(dot + 1)];
}

function serviceList(catalog: ExplorerCatalog, filter: string, selectedPath: string): HTMLElement[] {
  const sections: HTMLElement[] = [];
  for (const service of catalog.services) {
    const methods = service.methods.filter((m) => filter === "" || m.path.toLowerCase().includes(filter));
    if (methods.length === 0) continue;
    const [pkg, short] = splitName(service.name);
    sections.push(
      h(
        "section",
        { class: "service", "data-testid": "service", "data-name": service.name },
        h("h3", { title: service.name }, h("span", { class: "pkg" }, pkg), h("span", { class: "svc" }, short), service.origin === "upstream" ? h("span", { class: "badge muted" }, "upstream") : null),
        h(
          "ul",
          {},
          methods.map((method) =>
            h(
              "li",
              {},
              h(
                "a",
                { href: `#${method.path}`, class: "method", "data-testid": "method", "data-path": method.path, "aria-current": method.path === selectedPath ? "page" : undefined },
                h("span", { class: `dot kind-${method.kind}`, "aria-hidden": "true" }),
                h("span", { class: "mname" }, method.name),
                h("span", { class: `kind kind-${method.kind}` }, KIND_LABEL[method.kind]),
              ),
            ),
          ),
        ),
      ),
    );
  }
  if (sections.length === 0) sections.push(h("p", { class: "empty pad" }, "No method matches."));
  return sections;
}

function overview(catalog: ExplorerCatalog): HTMLElement {
  const methodCount = catalog.services.reduce((n, s) => n + s.methods.length, 0);
  return h(
    "div",
    { class: "overview", "data-testid": "overview" },
    h("h1", {}, "API explorer"),
    h(
      "p",
      { class: "lead muted" },
      `This gateway serves ${catalog.services.length} services with ${methodCount} methods. The list comes from the same descriptors as gRPC server reflection. Pick a method to see its request schema, send a call and get the equivalent curl, grpcurl and buf curl commands.`,
    ),
    h(
      "div",
      { class: "service-grid" },
      catalog.services.map((service) => {
        const [pkg, short] = splitName(service.name);
        return h(
          "article",
          { class: "card service-card" },
          h("header", {}, h("div", {}, h("div", { class: "pkg muted mono" }, pkg.replace(/\.$/, "")), h("h2", {}, short)), h("span", { class: "spacer" }), service.origin === "upstream" ? h("span", { class: "badge muted", title: "forwarded to an upstream server" }, "upstream") : null),
          h(
            "div",
            { class: "body" },
            h("p", { class: "muted small mono" }, service.file),
            h(
              "ul",
              { class: "chips" },
              service.methods.map((method) => h("li", {}, h("a", { href: `#${method.path}`, class: "chip" }, h("span", { class: `dot kind-${method.kind}` }), method.name))),
            ),
          ),
        );
      }),
    ),
    h(
      "p",
      { class: "legend muted" },
      (Object.keys(KIND_LABEL) as MethodInfo["kind"][]).map((kind) => h("span", {}, h("span", { class: `dot kind-${kind}` }), KIND_LABEL[kind])),
    ),
  );
}

function methodView(catalog: ExplorerCatalog, { service, method }: Selected): HTMLElement {
  const streamsRequests = method.kind === "client_streaming" || method.kind === "bidi_streaming";
  const example = JSON.stringify(streamsRequests ? [method.template, method.template] : method.template, null, 2);
  const editor = h("textarea", {
    class: "code editor",
    spellcheck: "false",
    rows: Math.min(18, Math.max(6, example.split("\n").length + 1)),
    "aria-label": "Request message (JSON)",
    "data-testid": "request-editor",
  });
  editor.value = drafts.get(method.path) ?? example;
  const editorError = h("p", { class: "editor-error", "data-testid": "editor-error", role: "alert" });
  const response = responsePanel();
  const commands = commandPanel(method);
  const send = h("button", { class: "primary send", type: "button", "data-testid": "send", disabled: !method.browserCallable }, "Send");
  const timeout = h("input", { type: "number", min: 0, step: 100, placeholder: "none", value: timeoutMs, class: "timeout", "aria-label": "Timeout in milliseconds", "data-testid": "timeout" });

  /** The request messages in the editor, or an error message for the user. */
  const parse = (): unknown[] | string => {
    let value: unknown;
    try {
      value = JSON.parse(editor.value);
    } catch (error) {
      return `Not valid JSON: ${(error as Error).message}`;
    }
    if (streamsRequests) {
      if (!Array.isArray(value)) return "This method takes a stream of requests: write a JSON array with one element per message.";
      return value;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) return "Write the request as a JSON object.";
    return [value];
  };
  const commandInput = (): CommandInput | undefined => {
    const messages = parse();
    if (typeof messages === "string") return undefined;
    return { baseUrl, path: method.path, kind: method.kind, messages, headers: activeHeaders(), timeoutMs: Number(timeout.value) || undefined };
  };
  const refresh = () => {
    drafts.set(method.path, editor.value);
    timeoutMs = timeout.value;
    const parsed = parse();
    editorError.textContent = typeof parsed === "string" ? parsed : "";
    editor.classList.toggle("invalid", typeof parsed === "string");
    commands.update(commandInput());
  };

  const run = async () => {
    if (inFlight) {
      inFlight.abort();
      return;
    }
    const messages = parse();
    if (typeof messages === "string") {
      editorError.textContent = messages;
      return;
    }
    const controller = (inFlight = new AbortController());
    send.textContent = "Cancel";
    send.classList.remove("primary");
    response.start(method);
    const result = await callConnectJson(
      { baseUrl, path: method.path, kind: method.kind, messages, headers: activeHeaders(), timeoutMs: Number(timeout.value) || undefined, signal: controller.signal },
      { onHeaders: (status, headers, at) => response.headers(status, headers, at), onMessage: (message, at) => response.message(message, at) },
    );
    if (inFlight === controller) inFlight = undefined;
    send.textContent = "Send";
    send.classList.add("primary");
    response.finish(result);
  };

  send.addEventListener("click", () => void run());
  editor.addEventListener("input", refresh);
  timeout.addEventListener("input", refresh);
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (method.browserCallable) void run();
    }
  });

  const [pkg, short] = splitName(service.name);
  const schemaTabs = tabbed([
    { id: "request", label: "Request", render: () => schemaView(catalog, method.input) },
    { id: "response", label: "Response", render: () => schemaView(catalog, method.output) },
  ]);
  const view = h(
    "div",
    { class: "method-view", "data-testid": "method-view", "data-path": method.path },
    h(
      "section",
      { class: "method-head" },
      h("div", { class: "crumbs muted" }, h("span", { class: "mono" }, pkg.replace(/\.$/, "")), " / ", short),
      h(
        "div",
        { class: "title-row" },
        h("h1", {}, method.name),
        h("span", { class: `badge kind-${method.kind}` }, KIND_LABEL[method.kind]),
        method.idempotency === "no_side_effects" ? h("span", { class: "badge muted", title: "Connect clients may call it with HTTP GET" }, "no side effects") : null,
        method.idempotency === "idempotent" ? h("span", { class: "badge muted" }, "idempotent") : null,
        method.deprecated ? h("span", { class: "badge warn" }, "deprecated") : null,
        service.origin === "upstream" ? h("span", { class: "badge muted" }, "upstream") : null,
      ),
      h("p", { class: "signature mono" }, h("span", { class: "verb" }, "POST"), ` ${method.path}`),
      h("p", { class: "types muted" }, h("code", {}, method.input), "  →  ", h("code", {}, method.output)),
    ),
    h(
      "div",
      { class: "columns" },
      h(
        "div",
        { class: "col" },
        h(
          "article",
          { class: "card request" },
          h(
            "header",
            {},
            h("h2", {}, "Request"),
            h("span", { class: "hint" }, streamsRequests ? "a JSON array, one per message" : "protobuf JSON"),
            h("span", { class: "spacer" }),
            h("button", { class: "small ghost", type: "button", "data-testid": "reset", onclick: () => { editor.value = example; refresh(); } }, "Reset to example"),
          ),
          h(
            "div",
            { class: "body" },
            method.browserCallable
              ? null
              : h("p", { class: "notice", "data-testid": "not-callable" }, "Bidirectional streaming needs a full-duplex HTTP/2 request, which a browser's fetch cannot send. Use grpcurl or buf curl below."),
            editor,
            editorError,
            headersEditor(refresh),
            h(
              "div",
              { class: "send-row" },
              h("label", { class: "inline muted" }, "Timeout (ms)", timeout),
              h("span", { class: "spacer" }),
              h("span", { class: "kbd-hint muted" }, h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "Enter")),
              send,
            ),
          ),
        ),
        h("article", { class: "card" }, h("header", {}, h("h2", {}, "Schema")), h("div", { class: "body" }, schemaTabs)),
      ),
      h("div", { class: "col" }, response.element, commands.element),
    ),
  );
  refresh();
  return view;
}

/** The response card: status line, streamed messages as they arrive, headers and trailers. */
function responsePanel() {
  const status = h("div", { class: "status-line", "data-testid": "status" }, h("span", { class: "empty" }, "Send a request to see the response."));
  const messages = h("div", { class: "messages", "data-testid": "response-messages" });
  const headersTable = h("div", { "data-testid": "response-headers" });
  const trailersTable = h("div", { "data-testid": "response-trailers" });
  let counts = { messages: 0, headers: 0, trailers: 0 };
  const tabs = tabbed([
    { id: "messages", label: () => `Messages${counts.messages ? ` (${counts.messages})` : ""}`, render: () => messages },
    { id: "headers", label: () => `Headers${counts.headers ? ` (${counts.headers})` : ""}`, render: () => headersTable },
    { id: "trailers", label: () => `Trailers${counts.trailers ? ` (${counts.trailers})` : ""}`, render: () => trailersTable },
  ]);
  const element = h("article", { class: "card response" }, h("header", {}, h("h2", {}, "Response")), h("div", { class: "body" }, status, tabs));
  let streaming = false;
  return {
    element,
    start(method: MethodInfo) {
      streaming = method.kind === "server_streaming" || method.kind === "bidi_streaming";
      counts = { messages: 0, headers: 0, trailers: 0 };
      replaceChildren(messages);
      replaceChildren(headersTable);
      replaceChildren(trailersTable);
      tabs.refreshLabels();
      tabs.select("messages");
      status.dataset.state = "running";
      delete status.dataset.code;
      replaceChildren(status, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", {}, "Waiting for the response…"));
    },
    headers(httpStatus: number, headers: [string, string][], atMs: number) {
      counts.headers = headers.length;
      replaceChildren(headersTable, pairsTable(headers, "No headers."));
      tabs.refreshLabels();
      replaceChildren(status, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", {}, `HTTP ${httpStatus} after ${formatMs(atMs)}${streaming ? ", streaming…" : ", reading…"}`));
    },
    message(value: unknown, atMs: number) {
      counts.messages++;
      messages.append(
        h(
          "div",
          { class: "message", "data-testid": "response-message" },
          streaming ? h("div", { class: "message-head muted" }, h("span", { class: "seq" }, `#${counts.messages}`), h("span", {}, `+${formatMs(atMs)}`)) : null,
          jsonView(value),
        ),
      );
      tabs.refreshLabels();
    },
    finish(result: CallResult) {
      counts.trailers = result.trailers.length;
      if (result.httpStatus === undefined) replaceChildren(headersTable, h("p", { class: "empty" }, "No response arrived."));
      replaceChildren(trailersTable, pairsTable(result.trailers, "No trailers."));
      if (result.error) {
        messages.append(
          h(
            "div",
            { class: "error-box", "data-testid": "response-error" },
            h("span", { class: "code" }, result.error.code),
            h("span", {}, result.error.message),
            result.error.details?.length ? jsonView(result.error.details, { class: "json details" }) : null,
          ),
        );
      } else if (counts.messages === 0) {
        messages.append(h("p", { class: "empty" }, "The stream ended without messages."));
      }
      tabs.refreshLabels();
      const code = result.error?.code ?? "ok";
      status.dataset.state = "done";
      status.dataset.code = code;
      replaceChildren(
        status,
        h("span", { class: `badge ${code === "ok" ? "ok" : "error"}`, "data-testid": "status-code" }, code),
        result.httpStatus !== undefined ? h("span", { class: "muted" }, `HTTP ${result.httpStatus}`) : null,
        h("span", { class: "spacer" }),
        h(
          "span",
          { class: "timing muted", "data-testid": "timing" },
          result.timeToHeadersMs !== undefined ? `headers ${formatMs(result.timeToHeadersMs)} · ` : "",
          `total ${formatMs(result.totalMs)}`,
          counts.messages > 1 ? ` · ${counts.messages} messages` : "",
        ),
      );
    },
  };
}

function pairsTable(pairs: [string, string][], empty: string): HTMLElement {
  if (pairs.length === 0) return h("p", { class: "empty" }, empty);
  return h("table", { class: "pairs" }, h("tbody", {}, pairs.map(([name, value]) => h("tr", {}, h("th", { class: "mono" }, name), h("td", { class: "mono" }, value)))));
}

/** curl, grpcurl and buf curl for the request as it is in the editor, with a copy button. */
function commandPanel(method: MethodInfo) {
  const curlNote =
    method.kind === "unary"
      ? "Connect protocol: a plain JSON POST over HTTP/1.1 or HTTP/2."
      : "Connect streaming: printf frames each message (1 flag byte, 4 length bytes); curl prints the response frames the same way.";
  const kinds = [
    { id: "curl", label: "curl", make: curlCommand, note: curlNote },
    { id: "grpcurl", label: "grpcurl", make: grpcurlCommand, note: "gRPC over HTTP/2 on the same port; the schema comes from server reflection." },
    { id: "buf-curl", label: "buf curl", make: bufCurlCommand, note: "Any of the three protocols (--protocol connect|grpc|grpcweb); schema from reflection. npx buf curl works too." },
  ] as const;
  const blocks = new Map<string, HTMLPreElement>();
  const tabs = tabbed(
    kinds.map((kind) => {
      const pre = h("pre", { class: "command", "data-testid": `command-${kind.id}` });
      blocks.set(kind.id, pre);
      return { id: kind.id, label: kind.label, render: () => h("div", { class: "command-block" }, pre, h("p", { class: "muted small" }, kind.note)) };
    }),
  );
  const copy = h("button", { class: "small", type: "button", "data-testid": "copy-command" }, "Copy");
  copy.addEventListener("click", () => {
    const text = blocks.get(tabs.current())?.textContent ?? "";
    // The clipboard API needs a secure context (https or localhost); elsewhere, say so.
    const done = navigator.clipboard ? navigator.clipboard.writeText(text) : Promise.reject(new Error("no clipboard"));
    done.then(() => flash(copy, "Copied"), () => flash(copy, "Select the text to copy"));
  });
  const element = h(
    "article",
    { class: "card commands" },
    h("header", {}, h("h2", {}, "Command line"), h("span", { class: "hint" }, "the same call from a terminal"), h("span", { class: "spacer" }), copy),
    h("div", { class: "body" }, tabs),
  );
  return {
    element,
    update(input: CommandInput | undefined) {
      for (const kind of kinds) {
        blocks.get(kind.id)!.textContent = input ? kind.make(input) : "Fix the request JSON to see the command.";
      }
    },
  };
}

function flash(button: HTMLButtonElement, text: string): void {
  const before = button.textContent;
  button.textContent = text;
  setTimeout(() => (button.textContent = before), 1200);
}

/** Rows of name/value inputs for extra request headers, kept in sessionStorage for this tab. */
function headersEditor(onChange: () => void): HTMLElement {
  const rows = h("div", { class: "header-rows", "data-testid": "headers" });
  const render = () => {
    replaceChildren(
      rows,
      headerRows.map(([name, value], index) => {
        const nameInput = h("input", { value: name, placeholder: "authorization", "aria-label": "Header name", class: "mono", "data-testid": "header-name" });
        const valueInput = h("input", { value, placeholder: "Bearer …", "aria-label": "Header value", class: "mono", "data-testid": "header-value" });
        const update = () => {
          headerRows[index] = [nameInput.value, valueInput.value];
          saveHeaders();
          onChange();
        };
        nameInput.addEventListener("input", update);
        valueInput.addEventListener("input", update);
        const remove = h("button", { class: "small ghost", type: "button", "aria-label": "Remove header", title: "Remove" }, "✕");
        remove.addEventListener("click", () => {
          headerRows.splice(index, 1);
          saveHeaders();
          render();
          onChange();
        });
        return h("div", { class: "header-row" }, nameInput, valueInput, remove);
      }),
    );
  };
  render();
  const add = h("button", { class: "small", type: "button", "data-testid": "add-header" }, "+ Header");
  add.addEventListener("click", () => {
    headerRows.push(["", ""]);
    render();
    (rows.lastElementChild?.querySelector("input") as HTMLInputElement | null)?.focus();
  });
  return h(
    "div",
    { class: "headers-editor" },
    h("div", { class: "headers-head" }, h("span", { class: "label" }, "Headers"), h("span", { class: "muted small" }, "sent with every call, e.g. authorization"), h("span", { class: "spacer" }), add),
    rows,
  );
}

function activeHeaders(): [string, string][] {
  return headerRows.filter(([name]) => name.trim() !== "").map(([name, value]) => [name.trim(), value]);
}

function loadHeaders(): [string, string][] {
  try {
    const stored = JSON.parse(sessionStorage.getItem(HEADERS_KEY) ?? "[]") as unknown;
    if (Array.isArray(stored)) return stored.filter((row): row is [string, string] => Array.isArray(row) && row.length === 2 && row.every((x) => typeof x === "string"));
  } catch {
    // a damaged entry: start empty
  }
  return [];
}

function saveHeaders(): void {
  try {
    sessionStorage.setItem(HEADERS_KEY, JSON.stringify(headerRows));
  } catch {
    // storage may be unavailable (private mode): headers then last as long as the page
  }
}

interface Tab {
  id: string;
  label: string | (() => string);
  render: () => HTMLElement;
}

/** A tab strip with lazily built panels. */
function tabbed(tabs: Tab[]) {
  const strip = h("div", { class: "tabstrip", role: "tablist" });
  const panel = h("div", { class: "tabpanel", role: "tabpanel" });
  const rendered = new Map<string, HTMLElement>();
  const buttons = tabs.map((tab) => {
    const button = h("button", { type: "button", role: "tab", "data-tab": tab.id }, labelOf(tab));
    button.addEventListener("click", () => select(tab.id));
    strip.append(button);
    return button;
  });
  let current = tabs[0].id;
  const select = (id: string) => {
    const index = Math.max(0, tabs.findIndex((t) => t.id === id));
    current = tabs[index].id;
    buttons.forEach((b, i) => b.setAttribute("aria-selected", String(i === index)));
    const tab = tabs[index];
    if (!rendered.has(tab.id)) rendered.set(tab.id, tab.render());
    replaceChildren(panel, rendered.get(tab.id)!);
  };
  select(tabs[0].id);
  const element = h("div", { class: "tabbed" }, strip, panel);
  return Object.assign(element, {
    select,
    current: () => current,
    refreshLabels: () => buttons.forEach((b, i) => (b.textContent = labelOf(tabs[i]))),
  });
}

function labelOf(tab: Tab): string {
  return typeof tab.label === "string" ? tab.label : tab.label();
}

void main();
