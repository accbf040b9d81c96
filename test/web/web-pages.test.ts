/**
 * The pages and the explorer's data over plain HTTP, on both HTTP versions: what is served
 * where, caching and compression, the switches in the config, and a clear answer when the
 * pages were never built.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, ConfigError } from "../../src/config/load-config.js";
import type { ExplorerCatalog } from "../../src/web/explorer-types.js";
import { buildAssetsForTest } from "../support/browser-assets.js";
import { curl } from "../support/curl.js";
import { startGateway, type StartedGateway } from "../support/start-gateway.js";

let assets: Awaited<ReturnType<typeof buildAssetsForTest>>;
beforeAll(async () => {
  assets = await buildAssetsForTest();
});
afterAll(async () => {
  await assets?.remove();
});

describe("enabled (the default)", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway({ web: { assetsDir: assets.dir } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  for (const http of ["1.1", "2"] as const) {
    it(`lists every served service and method at /explorer/api/services (HTTP/${http})`, async () => {
      const res = await curl(`${gw.url}/explorer/api/services`, { http });
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^application\/json/);
      const catalog = JSON.parse(res.text) as ExplorerCatalog;
      // Exactly what health and reflection list: the same DescService list.
      expect(catalog.services.map((s) => s.name)).toEqual([...new Set(gw.gateway.serviceNames)]);
      const greet = catalog.services[0].methods[0];
      expect(greet).toMatchObject({ path: "/demo.v1.GreeterService/Greet", kind: "unary", template: { name: "", language: "LANGUAGE_UNSPECIFIED" } });
      expect(catalog.messages["demo.v1.GreetRequest"].fields.map((f) => f.jsonName)).toEqual(["name", "language"]);
    });

    it(`serves the explorer and the app pages with their scripts (HTTP/${http})`, async () => {
      const explorer = await curl(`${gw.url}/explorer`, { http });
      expect(explorer.status).toBe(200);
      expect(explorer.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(explorer.text).toContain('src="/explorer/explorer.js"');
      expect(explorer.headers["content-security-policy"]).toContain("connect-src 'self'");
      const script = await curl(`${gw.url}/explorer/explorer.js`, { http });
      expect(script.status).toBe(200);
      expect(script.headers["content-type"]).toBe("text/javascript; charset=utf-8");
      const app = await curl(`${gw.url}/app/`, { http });
      expect(app.status).toBe(200);
      expect(app.text).toContain('src="app.js"');
      expect((await curl(`${gw.url}/app/app.css`, { http })).headers["content-type"]).toBe("text/css; charset=utf-8");
    });
  }

  it("redirects / and /app to the app", async () => {
    const root = await curl(`${gw.url}/`, { http: "1.1" });
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe("/app/");
    expect((await curl(`${gw.url}/app`, { http: "2" })).headers.location).toBe("/app/");
  });

  it("revalidates by ETag and compresses for clients that accept gzip", async () => {
    const first = await curl(`${gw.url}/app/app.js`, { http: "1.1", headers: { "accept-encoding": "gzip" } });
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(first.headers["cache-control"]).toBe("no-cache");
    const etag = first.headers.etag;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await curl(`${gw.url}/app/app.js`, { http: "2", headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it("answers 404 for files that are not there and leaves other paths alone", async () => {
    expect((await curl(`${gw.url}/explorer/nope.js`, { http: "1.1" })).status).toBe(404);
    // Files are looked up by name in the build, never joined onto a disk path.
    expect(await rawGetStatus(gw.port, "/app/../../package.json")).toBe(404);
    expect(await rawGetStatus(gw.port, "/app/%2e%2e/%2e%2e/package.json")).toBe(404);
    expect((await curl(`${gw.url}/healthz`, { http: "1.1" })).status).toBe(200);
    expect((await curl(`${gw.url}/healthz`, { http: "2" })).status).toBe(200);
  });
});

describe("switched off", () => {
  let gw: StartedGateway;
  beforeAll(async () => {
    gw = await startGateway({ web: { assetsDir: assets.dir, explorer: { enabled: false } } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  for (const http of ["1.1", "2"] as const) {
    it(`the explorer and its data are gone, the app stays (HTTP/${http})`, async () => {
      expect((await curl(`${gw.url}/explorer`, { http })).status).toBe(404);
      expect((await curl(`${gw.url}/explorer/api/services`, { http })).status).toBe(404);
      expect((await curl(`${gw.url}/explorer/explorer.js`, { http })).status).toBe(404);
      expect((await curl(`${gw.url}/app/`, { http })).status).toBe(200);
    });
  }

  it("both off: no pages, no redirect", async () => {
    const bare = await startGateway({ web: { assetsDir: assets.dir, explorer: { enabled: false }, app: { enabled: false } } });
    try {
      expect((await curl(`${bare.url}/`, { http: "1.1" })).status).toBe(404);
      expect((await curl(`${bare.url}/app/`, { http: "2" })).status).toBe(404);
    } finally {
      await bare.close();
    }
  });
});

describe("pages not built", () => {
  it("says how to build them instead of a bare 404", async () => {
    const gw = await startGateway({ web: { assetsDir: "/nonexistent/connect-gateway-web" } });
    try {
      const res = await curl(`${gw.url}/explorer`, { http: "1.1" });
      expect(res.status).toBe(503);
      expect(res.text).toContain("npm run build:web");
      // The data does not depend on the build.
      expect((await curl(`${gw.url}/explorer/api/services`, { http: "1.1" })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

describe("config", () => {
  it("defaults: app and explorer on, no CORS", () => {
    const { web } = loadConfig({});
    expect(web).toEqual({
      app: { enabled: true },
      explorer: { enabled: true },
      cors: { allowedOrigins: [], allowedHeaders: ["authorization"], exposedHeaders: [], maxAgeSeconds: 7200 },
    });
  });

  it("reads the switches and a comma-separated origin list from the environment", () => {
    const { web } = loadConfig({
      GATEWAY_EXPLORER: "off",
      GATEWAY_WEB_APP: "false",
      GATEWAY_CORS_ALLOWED_ORIGINS: "https://app.example.com, http://127.0.0.1:5173",
    });
    expect(web.explorer.enabled).toBe(false);
    expect(web.app.enabled).toBe(false);
    expect(web.cors.allowedOrigins).toEqual(["https://app.example.com", "http://127.0.0.1:5173"]);
  });

  it("rejects anything that is not an origin, each entry on its own", () => {
    let problems: string[] = [];
    try {
      loadConfig({ GATEWAY_CORS_ALLOWED_ORIGINS: "https://app.example.com/,app.example.com" });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems).toHaveLength(2);
    expect(problems.join("\n")).toMatch(/web\.cors\.allowedOrigins\.0.*expected an origin/);
    expect(problems.join("\n")).toMatch(/web\.cors\.allowedOrigins\.1/);
  });
});

/** GET with the path sent exactly as given (curl would normalise the dot segments away). */
function rawGetStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET", timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}
