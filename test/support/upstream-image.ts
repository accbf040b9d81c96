import { join } from "node:path";
import { expect } from "vitest";
import { BUF } from "./buf-curl.js";
import { runProcess } from "./run-process.js";

const PROJECT_ROOT = join(import.meta.dirname, "../..");

/** Build the Buf image of proto/test/upstream into `dir` (gateway routes describe the echo upstream with it); returns its path. */
export async function buildUpstreamImage(dir: string): Promise<string> {
  const image = join(dir, "image.binpb");
  const build = await runProcess(BUF, ["build", "-o", image, "--path", "proto/test/upstream"], { timeoutMs: 30_000, cwd: PROJECT_ROOT });
  expect(build.exitCode, build.stderr).toBe(0);
  return image;
}
