import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const buf = join(root, "node_modules/.bin/buf");

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

describe("proto/ and gen/", () => {
  const out = mkdtempSync(join(tmpdir(), "gateway-gen-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("passes buf lint with the STANDARD rules", async () => {
    const { stdout, stderr } = await run(buf, ["lint"], { cwd: root });
    expect(stdout + stderr).toBe("");
  });

  it("gen/ is exactly what buf generate produces (run `npm run generate` and commit if this fails)", async () => {
    await run(buf, ["generate", "--output", out], { cwd: root, timeout: 60_000 });
    const fresh = listFiles(join(out, "gen")).map((f) => relative(join(out, "gen"), f)).sort();
    const committed = listFiles(join(root, "gen")).map((f) => relative(join(root, "gen"), f)).sort();
    expect(committed).toEqual(fresh);
    for (const file of fresh) {
      expect(readFileSync(join(root, "gen", file), "utf8"), `gen/${file} is stale`).toBe(
        readFileSync(join(out, "gen", file), "utf8"),
      );
    }
  });
});
