import { spawn } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { contextFiles, dockerignoreMatcher, knownRuntimeImages, parseDockerfile, stageImage, type Stage } from "../support/k8s-dockerfile.js";
import { freePort } from "../support/k8s-ingress-nginx.js";
import { projectRoot, renderAllVariants, requireTool } from "../support/k8s-overlays.js";
import { gatewayPod } from "../support/k8s-pod.js";
import { GATEWAY_ALLOCATOR, GATEWAY_NODE_FLAGS } from "../../bench/lib/proc.js";

// No Docker engine here: the Dockerfile is checked as text, and then carried out step by step
// in directories (COPY with the .dockerignore'd context, `npm ci`, `npm run build`), and the
// resulting runtime stage is started the way the image starts: node as PID-1-to-be with the
// CMD, as user 65532, in a directory it cannot write to, with the prod ConfigMap's config.

const stages = parseDockerfile(readFileSync(join(projectRoot, "Dockerfile"), "utf8"));
const runtime = stages.at(-1)!;
const runs = (stage: Stage) => stage.instructions.filter((i) => i.cmd === "RUN").map((i) => i.args.trim());
const ignored = dockerignoreMatcher(readFileSync(join(projectRoot, ".dockerignore"), "utf8"));

describe("Dockerfile", () => {
  it("is multi-stage, on pinned Node 20 images, with a distroless runtime", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      expect(stage.from, stage.name).toMatch(/:[^:/]+$/);
      expect(stage.from, stage.name).not.toMatch(/:latest$/);
    }
    for (const stage of stages.slice(0, -1)) expect(stage.from).toMatch(/^node:20-.*slim$/);
    expect(Object.keys(knownRuntimeImages)).toContain(runtime.from.split(":")[0]);
    // No shell in the runtime image, so no RUN there either.
    expect(runs(runtime)).toEqual([]);
  });

  it("builds with every dependency, and ships only the production ones with the compiled JS", () => {
    const build = stages.find((s) => runs(s).includes("npm run build"))!;
    // The browser pages (/app/, /explorer) are built into dist/web in the same stage.
    expect(runs(build)).toContain("npm run build:web");
    const deps = stages.find((s) => runs(s).some((r) => /^npm ci\b.*--omit=dev/.test(r)))!;
    expect(build).toBeDefined();
    expect(deps).toBeDefined();
    expect(stages.flatMap(runs).filter((r) => /npm (install|i)\b/.test(r))).toEqual([]);
    const copiesFrom = (stage: Stage) => runtime.instructions.filter((i) => i.cmd === "COPY" && i.flags.from === stage.name).map((i) => i.args.split(/\s+/)[0]);
    expect(copiesFrom(deps)).toContain("/app/node_modules");
    expect(copiesFrom(build)).toEqual(["/app/dist"]);
    // Nothing from the context lands in the runtime stage directly (no src/, no tsx).
    expect(runtime.instructions.filter((i) => i.cmd === "COPY" && !i.flags.from)).toEqual([]);
  });

  it("runs compiled JS with node as the process the signal reaches, as a numeric non-root user", () => {
    const user = runtime.instructions.find((i) => i.cmd === "USER")?.args ?? "";
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const cmd = runtime.instructions.filter((i) => i.cmd === "CMD");
    expect(cmd).toHaveLength(1);
    // Exec form: with a shell form, /bin/sh would be PID 1 and swallow SIGTERM.
    expect(cmd[0].json).toEqual([...GATEWAY_NODE_FLAGS, "dist/src/main.js"]);
    expect(knownRuntimeImages[runtime.from.split(":")[0]]).toEqual(["/nodejs/bin/node"]);
    expect(runtime.instructions.some((i) => i.cmd === "ENTRYPOINT")).toBe(false);
    // The same node flags and entry point `npm start` runs after `npm run build`, and the benchmark measures.
    const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toContain(`node ${cmd[0].json!.join(" ")}`);
    expect(pkg.scripts.build).toBe("tsc -p tsconfig.build.json");
  });

  it("preloads the allocator the benchmark measures the gateway with, from a Debian 12 package like the runtime's base", () => {
    expect(runtime.instructions.filter((i) => i.cmd === "ENV").map((i) => i.args)).toContain(`LD_PRELOAD=${GATEWAY_ALLOCATOR.imagePath}`);
    expect(posix.basename(GATEWAY_ALLOCATOR.imagePath)).toBe(GATEWAY_ALLOCATOR.library);
    const copy = runtime.instructions.find((i) => i.cmd === "COPY" && i.args.split(/\s+/).at(-1) === GATEWAY_ALLOCATOR.imagePath);
    expect(copy?.flags.from).toBeDefined();
    const source = stages.find((s) => s.name === copy!.flags.from)!;
    // bookworm is Debian 12, the release of the distroless runtime (…-debian12), so the library
    // finds the same libc and libstdc++ ABI there.
    expect(source.from).toMatch(/^node:20-bookworm-slim$/);
    expect(runtime.from).toMatch(/-debian12:/);
    expect(runs(source).some((r) => r.endsWith(`apt-get install -y --no-install-recommends ${GATEWAY_ALLOCATOR.debianPackage}`))).toBe(true);
  });

  it(".dockerignore lets in exactly what the stages copy: no node_modules, dist, .git or tests", () => {
    const files = contextFiles(projectRoot, ignored);
    for (const needed of ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "src/main.ts", "web/build.ts"]) expect(files).toContain(needed);
    expect(files.some((f) => f.startsWith("gen/"))).toBe(true);
    const tops = new Set(files.map((f) => f.split("/")[0]));
    for (const excluded of ["node_modules", "dist", ".git", "test", "k8s", "bench", ".ci"]) expect(tops.has(excluded), excluded).toBe(false);
    expect(ignored("node_modules/express/package.json")).toBe(true);
    expect(ignored("src/deep/file.ts")).toBe(false);
  });

  describe("carried out without Docker", () => {
    const out = mkdtempSync(join(tmpdir(), "docker-stages-"));
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it("carries out apt-get, mkdir and cp the way sh would, and refuses what they would refuse", () => {
      const stage = (name: string, runs: string[]) => {
        const context = mkdtempSync(join(out, `context-${name}-`));
        writeFileSync(join(context, ".dockerignore"), "");
        const from = `FROM node:20-bookworm-slim AS fetch\n${runs.map((r) => `RUN ${r}\n`).join("")}`;
        writeFileSync(join(context, "Dockerfile"), `${from}FROM gcr.io/distroless/nodejs20-debian12:nonroot\nCOPY --from=fetch /opt/lib/${GATEWAY_ALLOCATOR.library} /usr/local/lib/\n`);
        return () => stageImage(context, join(out, `staged-${name}`));
      };
      const install = `apt-get update && apt-get install -y --no-install-recommends ${GATEWAY_ALLOCATOR.debianPackage}`;
      const image = stage("ok", [install, `mkdir -p /opt/lib && cp /usr/lib/*-linux-gnu/${GATEWAY_ALLOCATOR.library} /opt/lib/`])();
      // The package's library name is a link to the versioned file; cp must have copied the file.
      const staged = join(image.root, "usr/local/lib", GATEWAY_ALLOCATOR.library);
      expect(lstatSync(staged).isFile()).toBe(true);
      expect(readFileSync(staged).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
      expect(stage("no-mkdir", [install, `cp /usr/lib/*-linux-gnu/${GATEWAY_ALLOCATOR.library} /opt/lib/`])).toThrow(/\/opt\/lib\/ is not a directory/);
      expect(stage("no-match", [install, "mkdir -p /opt/lib && cp /usr/lib/*-linux-gnu/libnothing.so.9 /opt/lib/"])).toThrow(/no such file in the stage/);
      expect(stage("no-package", ["apt-get install -y connect-gateway-no-such-package"])).toThrow(/not installed on this machine/);
      expect(stage("no-yes", [`apt-get install ${GATEWAY_ALLOCATOR.debianPackage}`])).toThrow(/without -y/);
    });

    it("produces an image that starts, serves, and drains on SIGTERM as an unprivileged user in a read-only app directory", async () => {
      const image = stageImage(projectRoot, out);
      const app = join(image.root, image.workdir);
      expect(existsSync(join(app, "dist/src/main.js"))).toBe(true);
      expect(existsSync(join(app, "dist/web/app/index.html"))).toBe(true);
      expect(existsSync(join(app, "src"))).toBe(false);
      const installed = readdirSync(join(app, "node_modules")).flatMap((d) => (d.startsWith("@") ? readdirSync(join(app, "node_modules", d)).map((s) => `${d}/${s}`) : [d]));
      const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
      for (const dep of Object.keys(pkg.dependencies)) expect(installed, dep).toContain(dep);
      for (const dev of Object.keys(pkg.devDependencies)) expect(installed, `dev dependency ${dev} in the image`).not.toContain(dev);

      // The config the pod gets, and its environment, from the prod overlay.
      const pod = gatewayPod(renderAllVariants().find((v) => v.name === "prod")!.objects);
      const configDir = mkdtempSync(join(out, "config-"));
      writeFileSync(join(configDir, pod.configKey), pod.configText);
      chmodSync(out, 0o755);
      chmodSync(configDir, 0o755);
      const port = await freePort();
      const [uid, gid] = image.user!.split(":");
      const asUser = process.getuid?.() === 0 ? [requireTool("setpriv", "Debian package util-linux"), `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--"] : [];
      const node = process.execPath;
      const [command, ...args] = [...asUser, node, ...image.cmd];
      // A container's environment: the image's ENV and the pod's env, nothing from this shell.
      const env = {
        ...image.env,
        // The image's absolute path, as staged here.
        LD_PRELOAD: join(image.root, image.env.LD_PRELOAD),
        ...pod.env,
        GATEWAY_CONFIG_FILE: join(configDir, pod.configKey),
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: String(port),
        HOME: "/nonexistent",
        PATH: "/usr/bin:/bin",
      };
      const child = spawn(command, args, { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      try {
        const until = Date.now() + 15_000;
        while (!stdout.includes('"msg":"listening"')) {
          if (child.exitCode !== null || Date.now() > until) throw new Error(`the image did not start: ${stderr}${stdout}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const base = `http://127.0.0.1:${port}`;
        expect((await fetch(`${base}${pod.container.readinessProbe.httpGet.path}`)).status).toBe(200);
        expect((await fetch(`${base}${pod.container.livenessProbe.httpGet.path}`)).status).toBe(200);
        const greet = await fetch(`${base}/demo.v1.GreeterService/Greet`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: "image" }),
        });
        expect(greet.status).toBe(200);
        expect(((await greet.json()) as { greeting: string }).greeting).toBe("Hello, image!");
        // The browser pages made it into the image; prod keeps the explorer off.
        const page = await fetch(`${base}/app/`);
        expect([page.status, page.headers.get("content-type")]).toEqual([200, expect.stringContaining("text/html")]);
        expect((await fetch(`${base}/explorer`)).status).toBe(404);
        // It really ran on the preloaded allocator, and as the image's user.
        expect(readFileSync(`/proc/${child.pid}/maps`, "utf8")).toContain(join(image.root, GATEWAY_ALLOCATOR.imagePath));
        if (asUser.length > 0) expect(readFileSync(`/proc/${child.pid}/status`, "utf8")).toMatch(new RegExp(`\\nUid:\\s+${uid}\\s`));
        child.kill("SIGTERM");
        expect(await exited).toBe(0);
        expect(stdout).toContain('"msg":"stopped"');
        expect(stderr).not.toMatch(/EACCES|EROFS/);
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      // A real compile and page build run inside: generous for a busy two-core machine.
    }, 120_000);
  });
});
