import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { HttpRequest, HttpResponse } from "../server/http-types.js";

/** One built file, held in memory: the pages are small and served often. */
interface Asset {
  body: Buffer;
  gzipped: Buffer | undefined;
  contentType: string;
  etag: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
};

/** Below this, gzip's header costs more than it saves. */
const GZIP_MIN_BYTES = 1024;

/**
 * The built browser pages (`npm run build:web`), read once from `dir` on first use and served
 * from memory on both HTTP versions (express cannot serve HTTP/2, and browsers speak HTTP/2 over
 * TLS). Names are not content-hashed, so every response is revalidated by ETag.
 */
export class StaticAssets {
  private assets: Map<string, Asset> | undefined;

  constructor(readonly dir: string) {}

  /** True when the build output exists (the pages can be served). */
  get built(): boolean {
    return existsSync(join(this.dir, "app", "index.html")) || existsSync(join(this.dir, "explorer", "index.html"));
  }

  /** Serve the file at `path` (relative to the assets folder, "/" separated); false when there is none. */
  serve(path: string, req: HttpRequest, res: HttpResponse, extraHeaders: Record<string, string> = {}): boolean {
    const asset = this.load().get(path);
    if (!asset) return false;
    res.setHeader("content-type", asset.contentType);
    res.setHeader("etag", asset.etag);
    res.setHeader("cache-control", "no-cache");
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader("vary", "Accept-Encoding");
    for (const [name, value] of Object.entries(extraHeaders)) res.setHeader(name, value);
    if (req.headers["if-none-match"] === asset.etag) {
      res.statusCode = 304;
      res.end();
      return true;
    }
    const useGzip = asset.gzipped !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = useGzip ? asset.gzipped! : asset.body;
    if (useGzip) res.setHeader("content-encoding", "gzip");
    res.setHeader("content-length", body.length);
    res.statusCode = 200;
    if (req.method === "HEAD") res.end();
    else res.end(body);
    return true;
  }

  private load(): Map<string, Asset> {
    if (this.assets) return this.assets;
    const assets = new Map<string, Asset>();
    if (existsSync(this.dir)) {
      for (const file of walk(this.dir)) {
        const body = readFileSync(file);
        const contentType = CONTENT_TYPES[extname(file)] ?? "application/octet-stream";
        const compressible = /^(text\/|application\/json)/.test(contentType) && body.length >= GZIP_MIN_BYTES;
        assets.set(relative(this.dir, file).split(sep).join("/"), {
          body,
          gzipped: compressible ? gzipSync(body) : undefined,
          contentType,
          etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
        });
      }
    }
    // Only a complete build is kept: one read before the build finished must not stick.
    if (this.built) this.assets = assets;
    return assets;
  }
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}

/** dist/web in the package: found from this module's place in src/ (tsx) or dist/src/ (built). */
export function defaultAssetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the package folder of connect-gateway");
    dir = parent;
  }
  return join(dir, "dist", "web");
}
