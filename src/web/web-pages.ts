import type { DescService } from "@bufbuild/protobuf";
import type { WebConfig } from "../config/web-config.js";
import { sendJson } from "../ops/health-endpoints.js";
import type { HttpRequest, HttpResponse } from "../server/http-types.js";
import { buildExplorerCatalog } from "./explorer-catalog.js";
import type { ExplorerCatalog } from "./explorer-types.js";
import { defaultAssetsDir, StaticAssets } from "./static-assets.js";

export interface WebPagesOptions {
  config: WebConfig;
  /** Every service the gateway serves (read per request: upstream routes join it in listen()). */
  services: () => readonly DescService[];
  /** The ones forwarded to upstream routes, so the explorer can tell them apart. */
  upstreamServices: () => readonly DescService[];
}

/** Serves a page or its data and returns true, or returns false when the path is not a page's. */
export type WebPagesHandler = (req: HttpRequest, res: HttpResponse) => boolean;

// The pages only load their own scripts and styles; the explorer only talks to this gateway.
const APP_CSP = "default-src 'self'; connect-src *; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const EXPLORER_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The demo web app at /app/, the API explorer at /explorer (page, scripts, and its data at
 * /explorer/api/services), and a redirect from / to the first of them that is enabled.
 * Plain handlers, so both HTTP versions get them.
 */
export function createWebPages(options: WebPagesOptions): WebPagesHandler | undefined {
  const { config } = options;
  if (!config.app.enabled && !config.explorer.enabled) return undefined;
  const assets = new StaticAssets(config.assetsDir ?? defaultAssetsDir());
  let catalog: { key: string; body: ExplorerCatalog } | undefined;
  const currentCatalog = () => {
    const services = options.services();
    const key = services.map((s) => s.typeName).join(",");
    if (catalog?.key !== key) {
      const upstream = new Set(options.upstreamServices().map((s) => s.typeName));
      catalog = { key, body: buildExplorerCatalog(services, upstream) };
    }
    return catalog.body;
  };

  const page = (name: "app" | "explorer", file: string, req: HttpRequest, res: HttpResponse) => {
    const csp = name === "app" ? APP_CSP : EXPLORER_CSP;
    if (assets.serve(`${name}/${file}`, req, res, { "content-security-policy": csp })) return true;
    if (file === "index.html" && !assets.built) {
      notBuilt(res, assets.dir);
      return true;
    }
    return false;
  };

  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/") {
      redirect(res, config.app.enabled ? "/app/" : "/explorer");
      return true;
    }
    if (config.app.enabled) {
      if (path === "/app") return redirect(res, "/app/");
      if (path === "/app/") return page("app", "index.html", req, res);
      if (path.startsWith("/app/")) return page("app", path.slice("/app/".length), req, res);
    }
    if (config.explorer.enabled) {
      if (path === "/explorer" || path === "/explorer/") return page("explorer", "index.html", req, res);
      if (path === "/explorer/api/services") {
        sendJson(res, 200, currentCatalog());
        return true;
      }
      if (path.startsWith("/explorer/")) return page("explorer", path.slice("/explorer/".length), req, res);
    }
    return false;
  };
}

function redirect(res: HttpResponse, location: string): true {
  res.statusCode = 302;
  res.setHeader("location", location);
  res.setHeader("content-length", 0);
  res.end();
  return true;
}

function notBuilt(res: HttpResponse, dir: string): void {
  const text = `The browser pages are not built (nothing in ${dir}).\nRun: npm run build:web\n`;
  res.statusCode = 503;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}
