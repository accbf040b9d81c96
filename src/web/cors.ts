import type * as http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";
import type { WebConfig } from "../config/web-config.js";
import type { HttpRequest, HttpResponse } from "../server/http-types.js";

/**
 * CORS for browsers whose page comes from another origin. RPCs never reach express, so this runs
 * in front of the RPC dispatcher, for every path.
 */
export interface Cors {
  /**
   * Answer a preflight request (returns true: nothing else may touch the request), or add the
   * CORS response headers to an allowed origin's actual request and return false.
   */
  handle(req: HttpRequest, res: HttpResponse): boolean;
  /**
   * The raw HTTP/2 fast path writes its response without Node's response object; a request
   * from an allowed origin must skip it so `handle` can add the headers.
   */
  needsRequestApi(headers: http2.IncomingHttpHeaders): boolean;
}

/** CORS for the configured origins; undefined when none is configured (then no request pays for it). */
export function createCors(config: WebConfig["cors"]): Cors | undefined {
  if (config.allowedOrigins.length === 0) return undefined;
  const anyOrigin = config.allowedOrigins.includes("*");
  const origins = new Set(config.allowedOrigins);
  const allowed = (origin: string | string[] | undefined): origin is string =>
    typeof origin === "string" && (anyOrigin || origins.has(origin));

  const allowMethods = connectCors.allowedMethods.join(", ");
  const allowHeaders = unique([...connectCors.allowedHeaders, ...config.allowedHeaders]).join(", ");
  const exposeHeaders = unique([...connectCors.exposedHeaders, ...config.exposedHeaders]).join(", ");
  const maxAge = String(config.maxAgeSeconds);

  return {
    handle(req, res) {
      const origin = req.headers.origin;
      if (origin === undefined) return false;
      // The answer depends on Origin: shared caches must not hand one origin's answer to another.
      addVary(res, "Origin");
      const isPreflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
      if (isPreflight) {
        if (allowed(origin)) {
          res.setHeader("access-control-allow-origin", origin);
          res.setHeader("access-control-allow-methods", allowMethods);
          res.setHeader("access-control-allow-headers", allowHeaders);
          res.setHeader("access-control-max-age", maxAge);
          res.statusCode = 204;
        } else {
          // No CORS headers: the browser refuses the actual request and tells the page's developer why.
          res.statusCode = 403;
        }
        res.setHeader("content-length", 0);
        res.end();
        return true;
      }
      if (allowed(origin)) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("access-control-expose-headers", exposeHeaders);
      }
      return false;
    },
    needsRequestApi: (headers) => allowed(headers.origin),
  };
}

function addVary(res: HttpResponse, name: string): void {
  const current = res.getHeader("vary");
  if (current === undefined) res.setHeader("vary", name);
  else if (!String(current).toLowerCase().split(/\s*,\s*/).includes(name.toLowerCase())) res.setHeader("vary", `${String(current)}, ${name}`);
}

function unique(names: string[]): string[] {
  const seen = new Set<string>();
  return names.filter((name) => {
    const key = name.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
