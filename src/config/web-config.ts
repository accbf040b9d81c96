import { z } from "zod";

/**
 * An origin as browsers send it in the Origin header: scheme, host and port only
 * ("https://app.example.com", "http://127.0.0.1:5173"), or "*" for any origin.
 */
const origin = z.string().refine(
  (text) => {
    if (text === "*") return true;
    try {
      return new URL(text).origin === text;
    } catch {
      return false;
    }
  },
  { message: 'expected an origin like "https://app.example.com" (scheme, host and optional port; no path, no trailing slash) or "*"' },
);

/** A list from a file, or a comma-separated string (as an environment variable sets it). */
function listOf(item: z.ZodString) {
  return z
    .union([
      z.array(item),
      z.string().transform((text) => text.split(",").map((part) => part.trim()).filter((part) => part !== "")),
    ])
    .pipe(z.array(item));
}

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "expected an HTTP header name");

/** Browser-facing features: the demo web app, the API explorer and CORS for RPCs. */
export const webSchema = z
  .object({
    /** Folder with the built browser pages (`npm run build:web`); unset: dist/web in the package. */
    assetsDir: z.string().min(1).optional(),
    app: z
      .object({
        /** Serve the demo connect-web app at /app/ (and redirect / to it). */
        enabled: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    explorer: z
      .object({
        /**
         * Serve the API explorer at /explorer: it lists every served method with its schema, like
         * reflection does, and sends calls from the browser. Turn it off where that is unwanted.
         */
        enabled: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    cors: z
      .object({
        /** Origins whose pages may call the gateway from a browser; empty: no CORS headers at all. */
        allowedOrigins: listOf(origin).default([]),
        /** Request headers allowed beyond the ones Connect, gRPC-web and gRPC need (e.g. authorization). */
        allowedHeaders: listOf(headerName).default(["authorization"]),
        /** Response headers and trailers scripts may read beyond the protocols' own. */
        exposedHeaders: listOf(headerName).default([]),
        /** How long a browser may cache a preflight answer, in seconds (Chromium caps it at 7200). */
        maxAgeSeconds: z.number().int().min(0).max(86_400).default(7200),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type WebConfig = z.infer<typeof webSchema>;
