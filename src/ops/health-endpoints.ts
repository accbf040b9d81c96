import type { HttpHandler, HttpResponse } from "../server/http-types.js";
import type { Readiness } from "./readiness.js";

/** A plain HTTP handler that works on HTTP/1.1 and HTTP/2 alike (no express required). */
export type PlainHandler = HttpHandler;

/** Send a small JSON document with no caching. */
export function sendJson(res: HttpResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("cache-control", "no-store");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}

/** GET /healthz (the process is alive) and GET /readyz (it should receive traffic). */
export function createHealthEndpoints(readiness: Readiness): Record<string, PlainHandler> {
  return {
    "/healthz": (_req, res) => sendJson(res, 200, { status: "alive" }),
    "/readyz": (_req, res) =>
      sendJson(res, readiness.isReady ? 200 : 503, { status: readiness.isReady ? "ready" : readiness.phase }),
  };
}
