/**
 * The demo web app: the same generated clients over two transports of @connectrpc/connect-web.
 * The Connect view sends JSON, the gRPC-web view binary protobuf; both call unary and
 * server-streaming methods and show errors with their code and message.
 */
import "../shared/base.css";
import "./app.css";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { Language } from "../../gen/demo/v1/common_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { byId, formatMs, h, replaceChildren } from "../shared/dom.js";

/** The gateway to call: this page's origin, or ?gateway=<origin> when another server hosts the page. */
const gatewayUrl = new URLSearchParams(location.search).get("gateway") ?? location.origin;

interface ViewSpec {
  id: "connect" | "grpc-web";
  title: string;
  summary: string;
  transport: Transport;
}

const views: ViewSpec[] = [
  {
    id: "connect",
    title: "Connect",
    summary: "Connect protocol with JSON messages: plain HTTP POSTs that are easy to read in the browser's network tab.",
    transport: createConnectTransport({ baseUrl: gatewayUrl, useBinaryFormat: false }),
  },
  {
    id: "grpc-web",
    title: "gRPC-web",
    summary: "gRPC-web with binary protobuf: the protocol grpc-web and Envoy speak, served by the gateway without a proxy.",
    transport: createGrpcWebTransport({ baseUrl: gatewayUrl, useBinaryFormat: true }),
  },
];

const languages: [Language, string][] = [
  [Language.ENGLISH, "English"],
  [Language.FRENCH, "French"],
  [Language.GERMAN, "German"],
];

function main(): void {
  const root = byId("root");
  const initial = views.find((v) => `#${v.id}` === location.hash) ?? views[0];
  const tabs = views.map((view) =>
    h("button", { role: "tab", type: "button", id: `tab-${view.id}`, "data-tab": view.id, "aria-controls": `view-${view.id}`, onclick: () => select(view) }, view.title),
  );
  const panels = views.map((view) => renderView(view));
  const summary = h("p", { class: "view-summary muted" });
  const select = (view: ViewSpec) => {
    tabs.forEach((tab, i) => tab.setAttribute("aria-selected", String(views[i] === view)));
    panels.forEach((panel, i) => (panel.hidden = views[i] !== view));
    summary.textContent = view.summary;
    history.replaceState(null, "", `${location.pathname}${location.search}#${view.id}`);
  };
  replaceChildren(
    root,
    h(
      "header",
      { class: "topbar" },
      h("div", { class: "brand" }, h("span", { class: "brand-mark" }, "⇄"), "connect-gateway", h("span", { class: "sub" }, "· demo app")),
      h("div", { class: "spacer" }),
      h("nav", {}, h("a", { href: "", "aria-current": "page" }, "Demo app"), h("a", { href: `${gatewayUrl}/explorer` }, "API explorer")),
      h("span", { class: "origin-chip", title: "The gateway this page calls" }, gatewayUrl),
    ),
    h(
      "main",
      { class: "app" },
      h("section", { class: "intro" }, h("h1", {}, "Call the demo API from your browser"), h("p", { class: "muted" }, "Both views use the same generated clients from ", h("code", {}, "gen/demo/v1"), " with ", h("code", {}, "@connectrpc/connect-web"), "; only the transport differs.")),
      h("div", { class: "tabs", role: "tablist", "aria-label": "Transport" }, tabs),
      summary,
      panels,
    ),
  );
  select(initial);
}

function renderView(view: ViewSpec): HTMLElement {
  const greeter = createClient(GreeterService, view.transport);
  const calculator = createClient(CalculatorService, view.transport);
  return h(
    "section",
    { class: "view", id: `view-${view.id}`, role: "tabpanel", "data-view": view.id, "aria-labelledby": `tab-${view.id}` },
    greeterCard(greeter),
    streamCard(greeter),
    divideCard(calculator),
  );
}

function greeterCard(client: Client<typeof GreeterService>): HTMLElement {
  const name = h("input", { name: "name", value: "Ada", "data-testid": "name", autocomplete: "off" });
  const language = languageSelect("language");
  const output = h("div", { class: "output", "data-testid": "greet-output" }, h("p", { class: "empty" }, "No call yet."));
  const send = h("button", { class: "primary", type: "submit", "data-testid": "greet" }, "Greet");
  const form = h(
    "form",
    {
      class: "controls",
      onsubmit: (event) => {
        event.preventDefault();
        void run(send, output, async () => {
          const response = await client.greet({ name: name.value, language: Number(language.value) as Language });
          const servedAt = response.metadata?.servedAt;
          return [
            h("p", { class: "greeting", "data-testid": "greeting" }, response.greeting),
            h("p", { class: "muted small" }, `served by ${response.metadata?.servedBy ?? "?"}`, servedAt ? ` at ${timestampDate(servedAt).toLocaleTimeString()}` : ""),
          ];
        });
      },
    },
    h("label", { class: "field" }, "Name", name),
    h("label", { class: "field" }, "Language", language),
    send,
  );
  return card("GreeterService / Greet", "unary", "One request, one response. An empty name is rejected with invalid_argument.", form, output);
}

function streamCard(client: Client<typeof GreeterService>): HTMLElement {
  const name = h("input", { name: "stream-name", value: "Grace", "data-testid": "stream-name", autocomplete: "off" });
  const language = languageSelect("stream-language");
  const count = h("input", { name: "count", type: "number", min: 0, max: 1000, value: 5, "data-testid": "count" });
  const interval = h("input", { name: "interval", type: "number", min: 0, max: 60000, step: 50, value: 200, "data-testid": "interval" });
  const items = h("ol", { class: "stream", "data-testid": "stream-items" });
  const status = h("p", { class: "stream-status muted", "data-testid": "stream-status" }, "No call yet.");
  const output = h("div", { class: "output" }, status, items);
  const send = h("button", { class: "primary", type: "submit", "data-testid": "stream" }, "Start stream");
  let abort: AbortController | undefined;
  const form = h(
    "form",
    {
      class: "controls",
      onsubmit: async (event) => {
        event.preventDefault();
        abort?.abort();
        const controller = (abort = new AbortController());
        replaceChildren(items);
        status.dataset.state = "running";
        status.className = "stream-status muted";
        status.textContent = "Streaming…";
        send.disabled = true;
        const started = performance.now();
        let received = 0;
        try {
          const stream = client.greetStream(
            { name: name.value, language: Number(language.value) as Language, count: Number(count.value), intervalMs: Number(interval.value) },
            { signal: controller.signal },
          );
          for await (const message of stream) {
            received++;
            items.append(
              h("li", { "data-testid": "stream-item" }, h("span", { class: "seq" }, `#${message.sequence}`), h("span", {}, message.greeting), h("span", { class: "muted at" }, `+${formatMs(performance.now() - started)}`)),
            );
            status.textContent = `Streaming… ${received} received`;
          }
          status.dataset.state = "done";
          status.textContent = `Done: ${received} message${received === 1 ? "" : "s"} in ${formatMs(performance.now() - started)}`;
        } catch (error) {
          status.dataset.state = "error";
          status.className = "stream-status";
          replaceChildren(status, errorBox(error, received));
        } finally {
          send.disabled = false;
        }
      },
    },
    h("label", { class: "field" }, "Name", name),
    h("label", { class: "field" }, "Language", language),
    h("label", { class: "field narrow" }, "Count", count),
    h("label", { class: "field narrow" }, "Interval (ms)", interval),
    send,
  );
  return card("GreeterService / GreetStream", "server_streaming", "Greetings arrive one by one as the server sends them. A count of 0 fails.", form, output);
}

function divideCard(client: Client<typeof CalculatorService>): HTMLElement {
  const dividend = h("input", { name: "dividend", type: "number", value: 1, step: "any", "data-testid": "dividend" });
  const divisor = h("input", { name: "divisor", type: "number", value: 0, step: "any", "data-testid": "divisor" });
  const output = h("div", { class: "output", "data-testid": "divide-output" }, h("p", { class: "empty" }, "No call yet."));
  const send = h("button", { class: "primary", type: "submit", "data-testid": "divide" }, "Divide");
  const form = h(
    "form",
    {
      class: "controls",
      onsubmit: (event) => {
        event.preventDefault();
        void run(send, output, async () => {
          const { quotient } = await client.divide({ dividend: Number(dividend.value), divisor: Number(divisor.value) });
          return [h("p", { class: "greeting", "data-testid": "quotient" }, `${dividend.value} ÷ ${divisor.value} = ${quotient}`)];
        });
      },
    },
    h("label", { class: "field narrow" }, "Dividend", dividend),
    h("label", { class: "field narrow" }, "Divisor", divisor),
    send,
  );
  return card("CalculatorService / Divide", "unary", "Dividing by zero fails with invalid_argument: see how errors arrive.", form, output);
}

/** Run one unary call: show its result, or its error with code and message, and the time taken. */
async function run(button: HTMLButtonElement, output: HTMLElement, call: () => Promise<Node[]>): Promise<void> {
  button.disabled = true;
  output.dataset.state = "running";
  replaceChildren(output, h("p", { class: "muted" }, "Calling…"));
  const started = performance.now();
  try {
    const nodes = await call();
    output.dataset.state = "ok";
    replaceChildren(output, nodes, h("p", { class: "timing muted" }, h("span", { class: "badge ok" }, "ok"), ` in ${formatMs(performance.now() - started)}`));
  } catch (error) {
    output.dataset.state = "error";
    replaceChildren(output, errorBox(error), h("p", { class: "timing muted" }, `after ${formatMs(performance.now() - started)}`));
  } finally {
    button.disabled = false;
  }
}

function errorBox(error: unknown, receivedBefore?: number): HTMLElement {
  const connectError = ConnectError.from(error);
  // The protocol's spelling of the code (invalid_argument), as curl and the explorer show it.
  const code = Code[connectError.code].replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
  return h(
    "div",
    { class: "error-box", "data-testid": "error", "data-code": code },
    h("span", { class: "code" }, code),
    h("span", { "data-testid": "error-message" }, connectError.rawMessage),
    receivedBefore ? h("div", { class: "muted small" }, `after ${receivedBefore} message(s)`) : null,
    noResponse(connectError) ? h("div", { class: "muted small", "data-testid": "error-hint" }, noResponseHint()) : null,
  );
}

/** fetch itself failed: no HTTP response reached the page (connect-web reports that as unknown). */
function noResponse(error: ConnectError): boolean {
  return error.code === Code.Unknown && error.cause instanceof TypeError;
}

function noResponseHint(): string {
  const crossOrigin = new URL(gatewayUrl).origin !== location.origin;
  return crossOrigin
    ? `No response reached this page. Is the gateway at ${gatewayUrl} running, and does its CORS allow-list (web.cors.allowedOrigins) include ${location.origin}? The browser console says which.`
    : `No response reached this page. Is the gateway at ${gatewayUrl} running?`;
}

function card(title: string, kind: string, hint: string, ...content: Node[]): HTMLElement {
  return h(
    "article",
    { class: "card" },
    h("header", {}, h("h2", {}, title), h("span", { class: `badge kind-${kind}` }, kind.replace("_", " ")), h("span", { class: "spacer" })),
    h("div", { class: "body" }, h("p", { class: "hint muted" }, hint), content),
  );
}

function languageSelect(name: string): HTMLSelectElement {
  return h("select", { name }, languages.map(([value, label]) => h("option", { value }, label)));
}

main();
