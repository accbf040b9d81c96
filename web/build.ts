/**
 * Builds the browser pages into dist/web (or the folder given as the first argument):
 * app/ (the connect-web demo app) and explorer/ (the API explorer), each an index.html with one
 * bundled script and one stylesheet. Runs in `npm install` (prepare), `npm run build` and the
 * browser tests, so the served pages always match the sources.
 */
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const webDir = dirname(fileURLToPath(import.meta.url));
const pages = ["app", "explorer"] as const;

/** Bundle the pages into `outDir`, replacing what was there only once the new build is complete. */
export async function buildWebAssets(outDir: string = join(webDir, "..", "dist", "web")): Promise<string> {
  const target = resolve(outDir);
  const staging = `${target}.staging-${process.pid}-${Date.now()}`;
  try {
    await build({
      absWorkingDir: webDir,
      entryPoints: Object.fromEntries(pages.map((page) => [`${page}/${page}`, join(webDir, page, "main.ts")])),
      outdir: staging,
      bundle: true,
      format: "esm",
      platform: "browser",
      // Browsers with fetch response streams and ES2022; the explorer needs nothing newer.
      target: ["chrome109", "firefox115", "safari16"],
      minify: true,
      sourcemap: "linked",
      legalComments: "none",
      logLevel: "warning",
    });
    for (const page of pages) cpSync(join(webDir, page, "index.html"), join(staging, page, "index.html"));
    mkdirSync(dirname(target), { recursive: true });
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
    return target;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const started = performance.now();
  buildWebAssets(process.argv[2]).then(
    (dir) => console.log(`web pages built into ${dir} in ${Math.round(performance.now() - started)} ms`),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
