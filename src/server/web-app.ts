import express, { type Express } from "express";
import type { PlainHandler } from "../ops/health-endpoints.js";
import { sendJson } from "../ops/health-endpoints.js";

/** The express app for everything over HTTP/1.1 that is not an RPC: ops endpoints, later pages. */
export function createWebApp(plainRoutes: Record<string, PlainHandler>): Express {
  const app = express();
  app.disable("x-powered-by");
  for (const [path, handler] of Object.entries(plainRoutes)) {
    app.get(path, (req, res) => handler(req, res));
  }
  app.use((req, res) => sendJson(res, 404, { error: "not found", path: req.path }));
  return app;
}
