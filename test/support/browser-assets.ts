import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildWebAssets } from "../../web/build.js";

/**
 * Build the browser pages from the current sources into a temporary folder, so a test serves
 * exactly what is in web/ (never a stale dist/web) and test files do not race on one folder.
 */
export async function buildAssetsForTest(): Promise<{ dir: string; remove(): Promise<void> }> {
  const parent = await mkdtemp(join(tmpdir(), "gateway-web-"));
  const dir = await buildWebAssets(join(parent, "web"));
  return { dir, remove: () => rm(parent, { recursive: true, force: true }) };
}
