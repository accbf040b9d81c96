import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";

/** Debian's chromium (`apt-get install chromium`); CHROMIUM_PATH points elsewhere. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Whether the browser suite can run. Under CI a missing browser is a failure (the suite runs
 * and fails to launch), never a silent skip; elsewhere the suite is skipped with a reason.
 */
export const browserAvailable = existsSync(CHROMIUM_PATH) || process.env.CI === "true";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  // Containers often have a small /dev/shm, which crashes renderers under load.
  "--disable-dev-shm-usage",
  // Loopback only: no proxy may sit between the page and the gateway under test.
  "--no-proxy-server",
];

/** Screenshots land here (test-output/ is gitignored). */
export const SCREENSHOT_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "test-output", "web");

export interface BrowserSession {
  context: BrowserContext;
  newPage(): Promise<Page>;
  /** Save a full-page screenshot as test-output/web/<name>.png; returns its path. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

/** Launch headless Chromium with a fresh profile that close() deletes. */
export async function launchBrowser(): Promise<BrowserSession> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`chromium not found at ${CHROMIUM_PATH}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  const profile = await mkdtemp(join(tmpdir(), "gateway-chromium-"));
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 860 },
    colorScheme: "light",
    timeout: 20_000,
  });
  context.setDefaultTimeout(10_000);
  return {
    context,
    newPage: () => context.newPage(),
    async screenshot(page, name) {
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      // From the top: a full-page capture of a scrolled page draws sticky bars mid-page.
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path, fullPage: true, animations: "disabled" });
      return path;
    },
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
