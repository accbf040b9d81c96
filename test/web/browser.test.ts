/**
 * Browsers as real clients: Debian's Chromium, driven by playwright-core, loads the demo app
 * and the API explorer from the gateway and calls the demo API with them. A second and a third
 * local web server host the app on other origins: one allowed by the CORS config, one not.
 * Each test leaves a screenshot in test-output/web/.
 */
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildAssetsForTest } from "../support/browser-assets.js";
import { browserAvailable, launchBrowser, type BrowserSession } from "../support/browser.js";
import { logCursor } from "../support/rpc-logs.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

describe.skipIf(!browserAvailable)("in Chromium", () => {
  let assets: Awaited<ReturnType<typeof buildAssetsForTest>>;
  let gw: StartedGateway;
  let browser: BrowserSession;
  let allowedSite: StaticSite;
  let otherSite: StaticSite;

  beforeAll(async () => {
    assets = await buildAssetsForTest();
    allowedSite = await serveStatic(assets.dir);
    otherSite = await serveStatic(assets.dir);
    gw = await startGateway({ web: { assetsDir: assets.dir, cors: { allowedOrigins: [allowedSite.origin] } } });
    browser = await launchBrowser();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await allowedSite?.close();
    await otherSite?.close();
    await assets?.remove();
  });

  /** A page that fails the test on any uncaught script error. */
  async function openPage(url: string): Promise<{ page: Page; consoleErrors: string[] }> {
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    await page.goto(url);
    return { page, consoleErrors };
  }
  const uncaught = (errors: string[]) => errors.filter((e) => e.startsWith("uncaught:"));

  for (const view of [
    { id: "connect", protocol: "connect", screenshot: "app-connect" },
    { id: "grpc-web", protocol: "grpc-web", screenshot: "app-grpc-web" },
  ] as const) {
    it(`the app's ${view.id} view makes unary, streaming and failing calls`, async () => {
      const { page, consoleErrors } = await openPage(`${gw.url}/app/`);
      const log = logCursor(gw);
      try {
        await page.click(`[data-tab=${view.id}]`);
        const panel = page.locator(`[data-view=${view.id}]`);
        await expect.poll(() => panel.isVisible()).toBe(true);

        await panel.getByTestId("name").fill("Ada");
        await panel.locator("select[name=language]").selectOption({ label: "French" });
        await panel.getByTestId("greet").click();
        await panel.locator("[data-testid=greet-output][data-state=ok]").waitFor();
        expect(await panel.getByTestId("greeting").textContent()).toBe("Bonjour, Ada!");

        await panel.getByTestId("count").fill("3");
        await panel.getByTestId("interval").fill("100");
        await panel.getByTestId("stream").click();
        await panel.locator("[data-testid=stream-status][data-state=done]").waitFor();
        expect(await panel.getByTestId("stream-item").allTextContents()).toEqual([
          expect.stringMatching(/^#1Hello, Grace!\+[\d.]+ m?s$/),
          expect.stringMatching(/^#2Hello, Grace!\+[\d.]+ m?s$/),
          expect.stringMatching(/^#3Hello, Grace!\+[\d.]+ m?s$/),
        ]);

        await panel.getByTestId("dividend").fill("1");
        await panel.getByTestId("divisor").fill("0");
        await panel.getByTestId("divide").click();
        const error = panel.locator("[data-testid=divide-output] [data-testid=error]");
        await error.waitFor();
        expect(await error.getAttribute("data-code")).toBe("invalid_argument");
        expect(await error.getByTestId("error-message").textContent()).toBe("cannot divide by zero");

        // The server saw each call in the protocol this view claims to use.
        expect(log.rpcLines().map(({ method, protocol, code }) => ({ method, protocol, code }))).toEqual([
          { method: "demo.v1.GreeterService/Greet", protocol: view.protocol, code: "ok" },
          { method: "demo.v1.GreeterService/GreetStream", protocol: view.protocol, code: "ok" },
          { method: "demo.v1.CalculatorService/Divide", protocol: view.protocol, code: "invalid_argument" },
        ]);
        expect(uncaught(consoleErrors)).toEqual([]);
      } finally {
        await browser.screenshot(page, view.screenshot);
        await page.close();
      }
    });
  }

  it("the explorer lists every service and method the gateway serves", async () => {
    const { page, consoleErrors } = await openPage(`${gw.url}/explorer`);
    try {
      await page.getByTestId("overview").waitFor();
      const listed = await page.locator("[data-testid=service]").evaluateAll((nodes) => nodes.map((n) => n.getAttribute("data-name")));
      expect(listed).toEqual([...new Set(gw.gateway.serviceNames)]);
      const methods = await page.locator("[data-testid=method]").evaluateAll((nodes) => nodes.map((n) => n.getAttribute("data-path")));
      expect(methods).toContain("/demo.v1.GreeterService/GreetStream");
      expect(methods).toContain("/demo.v1.CalculatorService/Accumulate");
      expect(methods).toContain("/grpc.health.v1.Health/Check");

      // The filter narrows the list.
      await page.getByTestId("filter").fill("calc");
      await expect.poll(() => page.locator("[data-testid=service]").count()).toBe(1);
      await page.getByTestId("filter").fill("");
      expect(uncaught(consoleErrors)).toEqual([]);
    } finally {
      await browser.screenshot(page, "explorer-services");
      await page.close();
    }
  });

  it("the explorer runs a unary call with the user's headers and shows response, status, headers and commands", async () => {
    const { page, consoleErrors } = await openPage(`${gw.url}/explorer`);
    try {
      await page.locator("[data-testid=method][data-path='/demo.v1.GreeterService/Greet']").click();
      await page.getByTestId("method-view").waitFor();
      // The example request comes from the schema, and the schema is shown.
      expect(JSON.parse(await page.getByTestId("request-editor").inputValue())).toEqual({ name: "", language: "LANGUAGE_UNSPECIFIED" });
      expect(await page.locator("[data-testid=schema] [data-field]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-field")))).toEqual(["name", "language"]);

      await page.getByTestId("request-editor").fill(JSON.stringify({ name: "Ada", language: "LANGUAGE_GERMAN" }, null, 2));
      await page.getByTestId("add-header").click();
      await page.getByTestId("header-name").fill("authorization");
      await page.getByTestId("header-value").fill("Bearer explorer-test");
      const sent = page.waitForRequest((request) => request.url().endsWith("/demo.v1.GreeterService/Greet"));
      await page.getByTestId("send").click();
      expect((await sent).headers().authorization).toBe("Bearer explorer-test");

      await page.locator("[data-testid=status][data-state=done]").waitFor();
      expect(await page.getByTestId("status-code").textContent()).toBe("ok");
      expect(await page.getByTestId("timing").textContent()).toMatch(/headers [\d.]+ m?s · total [\d.]+ m?s/);
      const message = JSON.parse((await page.getByTestId("response-message").textContent()) ?? "") as { greeting: string };
      expect(message.greeting).toBe("Hallo, Ada!");

      await page.locator(".response [role=tab][data-tab=headers]").click();
      expect(await page.getByTestId("response-headers").textContent()).toContain("content-type");

      const curlText = await page.getByTestId("command-curl").textContent();
      expect(curlText).toContain(`${gw.url}/demo.v1.GreeterService/Greet`);
      expect(curlText).toContain("-H 'authorization: Bearer explorer-test'");
      await page.locator(".commands [role=tab][data-tab=grpcurl]").click();
      expect(await page.getByTestId("command-grpcurl").textContent()).toContain(`127.0.0.1:${gw.port} demo.v1.GreeterService/Greet`);
      await browser.screenshot(page, "explorer-unary");

      // An error shows its code and message.
      await page.locator("[data-testid=method][data-path='/demo.v1.CalculatorService/Divide']").click();
      await page.getByTestId("request-editor").fill('{"dividend": 1, "divisor": 0}');
      await page.getByTestId("send").click();
      await page.locator("[data-testid=status][data-state=done]").waitFor();
      expect(await page.getByTestId("status-code").textContent()).toBe("invalid_argument");
      expect(await page.getByTestId("response-error").textContent()).toBe("invalid_argumentcannot divide by zero");
      expect(uncaught(consoleErrors)).toEqual([]);
    } finally {
      await browser.screenshot(page, "explorer-error");
      await page.close();
    }
  });

  it("the explorer shows streamed messages as they arrive", async () => {
    const { page, consoleErrors } = await openPage(`${gw.url}/explorer#/demo.v1.GreeterService/GreetStream`);
    try {
      await page.getByTestId("method-view").waitFor();
      await page.getByTestId("request-editor").fill(JSON.stringify({ name: "Grace", language: "LANGUAGE_FRENCH", count: 4, intervalMs: 400 }, null, 2));
      await page.getByTestId("send").click();
      // The first message is on screen while the stream is still open.
      await page.getByTestId("response-message").first().waitFor();
      expect(await page.getByTestId("status").getAttribute("data-state")).toBe("running");
      expect(await page.getByTestId("response-message").count()).toBeLessThan(4);

      await page.locator("[data-testid=status][data-state=done]").waitFor();
      expect(await page.getByTestId("status-code").textContent()).toBe("ok");
      const items = await page.getByTestId("response-message").allTextContents();
      expect(items).toEqual([1, 2, 3, 4].map((n) => expect.stringMatching(new RegExp(`^#${n}\\+[\\d.]+ m?s\\{"greeting": "Bonjour, Grace!", "sequence": ${n}\\}$`))));
      expect(await page.getByTestId("timing").textContent()).toContain("4 messages");
      expect(await page.getByTestId("command-curl").textContent()).toMatch(/^printf '\\000\\000\\000\\000/);
      expect(uncaught(consoleErrors)).toEqual([]);
    } finally {
      await browser.screenshot(page, "explorer-stream");
      await page.close();
    }
  });

  it("a page from an allowed origin calls the gateway; a page from another origin is refused", async () => {
    const allowed = await openPage(`${allowedSite.origin}/app/?gateway=${encodeURIComponent(gw.url)}`);
    try {
      const panel = allowed.page.locator("[data-view=connect]");
      await panel.getByTestId("greet").click();
      await panel.locator("[data-testid=greet-output][data-state=ok]").waitFor();
      expect(await panel.getByTestId("greeting").textContent()).toBe("Hello, Ada!");
      // gRPC-web needs its own response headers exposed to read the status: a streaming call shows it.
      await allowed.page.click("[data-tab=grpc-web]");
      const grpcWeb = allowed.page.locator("[data-view=grpc-web]");
      await grpcWeb.getByTestId("count").fill("2");
      await grpcWeb.getByTestId("interval").fill("0");
      await grpcWeb.getByTestId("stream").click();
      await grpcWeb.locator("[data-testid=stream-status][data-state=done]").waitFor();
      expect(await grpcWeb.getByTestId("stream-item").count()).toBe(2);
    } finally {
      await browser.screenshot(allowed.page, "cors-allowed-origin");
      await allowed.page.close();
    }

    const other = await openPage(`${otherSite.origin}/app/?gateway=${encodeURIComponent(gw.url)}`);
    const log = logCursor(gw);
    try {
      const panel = other.page.locator("[data-view=connect]");
      await panel.getByTestId("greet").click();
      const error = panel.locator("[data-testid=greet-output] [data-testid=error]");
      await error.waitFor();
      expect(await panel.getByTestId("greeting").count()).toBe(0);
      expect(await panel.getByTestId("error-hint").textContent()).toContain(`include ${otherSite.origin}?`);
      // The browser blocked it after the preflight: the call itself never reached the gateway.
      expect(log.rpcLines()).toEqual([]);
      await expect.poll(() => other.consoleErrors.some((text) => text.includes("CORS policy"))).toBe(true);
    } finally {
      await browser.screenshot(other.page, "cors-refused-origin");
      await other.page.close();
    }
  });
});

interface StaticSite {
  origin: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };

/** Another origin: a bare web server on its own port hosting the built pages. */
async function serveStatic(root: string): Promise<StaticSite> {
  const server: Server = createServer((req, res) => {
    let path = normalize(decodeURIComponent((req.url ?? "/").split("?", 1)[0]));
    if (path.endsWith("/")) path += "index.html";
    if (path.includes("..")) {
      res.writeHead(400).end();
      return;
    }
    readFile(join(root, path)).then(
      (body) => res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
