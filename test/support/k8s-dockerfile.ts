import { execFileSync } from "node:child_process";
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync } from "node:fs";
import { basename, dirname, join, posix, relative, resolve } from "node:path";

/** One instruction of a Dockerfile, continuation lines joined. */
export interface Instruction {
  cmd: string;
  /** Everything after the instruction word. */
  args: string;
  /** The exec-form (JSON array) arguments, when the instruction uses that form. */
  json?: string[];
  flags: Record<string, string>;
}

export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw) && pending === "") continue;
    if (raw.endsWith("\\")) {
      pending += raw.slice(0, -1) + " ";
      continue;
    }
    logical.push(pending + raw);
    pending = "";
  }
  for (const line of logical.map((l) => l.trim()).filter(Boolean)) {
    const [, cmdRaw, rest] = /^(\S+)\s*(.*)$/.exec(line)!;
    const cmd = cmdRaw.toUpperCase();
    const flags: Record<string, string> = {};
    let args = rest;
    while (/^--[a-z-]+=\S+\s/.test(args)) {
      const [, k, v] = /^--([a-z-]+)=(\S+)\s+/.exec(args)!;
      flags[k] = v;
      args = args.replace(/^--[a-z-]+=\S+\s+/, "");
    }
    let json: string[] | undefined;
    if (args.startsWith("[")) {
      try {
        json = JSON.parse(args) as string[];
      } catch {
        json = undefined;
      }
    }
    if (cmd === "FROM") {
      const [, image, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      stages.push({ name: name ?? String(stages.length), from: image, instructions: [] });
      continue;
    }
    if (stages.length === 0) throw new Error(`Dockerfile: ${cmd} before FROM`);
    stages[stages.length - 1].instructions.push({ cmd, args, json, flags });
  }
  return stages;
}

/** A .dockerignore as Docker reads it: Go-style globs, `**`, `!` exceptions, the last match wins. */
export function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, "")).replace(/\/$/, "");
      const source = pattern
        .split("/")
        .map((part) => (part === "**" ? "(?:.*)" : part.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")))
        .join("/")
        .replace(/\(\?:\.\*\)\//g, "(?:.*/)?");
      return { negate, regex: new RegExp(`^${source}$`) };
    });
  return (path) => {
    // A pattern that matches a parent directory matches everything below it.
    const parts = path.split("/");
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const rule of rules) if (candidates.some((c) => rule.regex.test(c))) excluded = !rule.negate;
    return excluded;
  };
}

/** Every file of the build context that Docker would send, relative paths. */
export function contextFiles(contextDir: string, ignored: (path: string) => boolean): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(contextDir, dir))) {
      const rel = dir ? `${dir}/${entry}` : entry;
      const isDir = statSync(join(contextDir, rel)).isDirectory();
      // Docker still walks into an excluded directory when an exception could re-include
      // something below it; none of ours does, so excluded directories are skipped whole.
      if (ignored(rel)) continue;
      if (isDir) walk(rel);
      else files.push(rel);
    }
  };
  walk("");
  return files;
}

/** Base images this project may run on, and the entrypoint each one ships with. */
export const knownRuntimeImages: Record<string, string[]> = {
  "gcr.io/distroless/nodejs20-debian12": ["/nodejs/bin/node"],
};

export interface StagedImage {
  /** The runtime stage's root, as it would be in the image. */
  root: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  cmd: string[];
  entrypoint: string[];
  exposed: number[];
}

/**
 * Carry out the Dockerfile's stages in directories under `outDir`, without Docker: COPY from
 * the (.dockerignore-filtered) context or from an earlier stage, and the RUN steps it uses —
 * `npm ci` (the project's installed node_modules, all of them, or only the packages
 * package-lock.json marks as production ones for --omit=dev), `npm run <script>` (for real),
 * and `&&`-chains of `apt-get update`, `apt-get install` (the Debian packages' files as this
 * Debian machine has them installed), `mkdir -p` and `cp` (globs expanded in the stage).
 * Any other RUN is refused: it could not be checked here.
 */
export function stageImage(contextPath: string, outDir: string): StagedImage {
  const contextDir = resolve(contextPath);
  const stages = parseDockerfile(readFileSync(join(contextDir, "Dockerfile"), "utf8"));
  const ignored = dockerignoreMatcher(readFileSync(join(contextDir, ".dockerignore"), "utf8"));
  const context = new Set(contextFiles(contextDir, ignored));
  const roots = new Map<string, string>();
  let result: StagedImage | undefined;
  for (const stage of stages) {
    const root = join(outDir, stage.name);
    mkdirSync(root, { recursive: true });
    roots.set(stage.name, root);
    let workdir = "/";
    const image: StagedImage = { root, workdir, env: {}, cmd: [], entrypoint: knownRuntimeImages[stage.from.split(":")[0]] ?? [], exposed: [] };
    for (const ins of stage.instructions) {
      switch (ins.cmd) {
        case "WORKDIR":
          workdir = posix.resolve(workdir, ins.args);
          mkdirSync(join(root, workdir), { recursive: true });
          break;
        case "COPY": {
          const parts = ins.json ?? ins.args.split(/\s+/);
          const dest = parts.pop()!;
          const destPath = join(root, posix.resolve(workdir, dest));
          for (const src of parts) {
            if (ins.flags.from) {
              const fromRoot = roots.get(ins.flags.from);
              if (!fromRoot) throw new Error(`COPY --from=${ins.flags.from}: no such stage`);
              copyInto(join(fromRoot, posix.resolve("/", src)), destPath, dest.endsWith("/") || parts.length > 1);
            } else {
              const normalized = posix.normalize(src).replace(/\/$/, "");
              const files = [...context].filter((f) => f === normalized || f.startsWith(`${normalized}/`));
              if (files.length === 0) throw new Error(`COPY ${src}: nothing in the build context (excluded by .dockerignore?)`);
              for (const f of files) {
                const target = f === normalized ? (dest.endsWith("/") || parts.length > 1 ? join(destPath, basename(f)) : destPath) : join(destPath, relative(normalized, f));
                mkdirSync(dirname(target), { recursive: true });
                cpSync(join(contextDir, f), target);
              }
            }
          }
          break;
        }
        case "RUN":
          runStep(ins.args, root, workdir, contextDir);
          break;
        case "ENV": {
          const [, k, v] = /^(\S+?)[= ](.*)$/.exec(ins.args) ?? [];
          image.env[k] = v;
          break;
        }
        case "USER":
          image.user = ins.args;
          break;
        case "EXPOSE":
          image.exposed.push(...ins.args.split(/\s+/).map((p) => Number(p.split("/")[0])));
          break;
        case "CMD":
          if (!ins.json) throw new Error("CMD must use the exec form (a JSON array)");
          image.cmd = ins.json;
          break;
        case "ENTRYPOINT":
          if (!ins.json) throw new Error("ENTRYPOINT must use the exec form (a JSON array)");
          image.entrypoint = ins.json;
          break;
        default:
          throw new Error(`Dockerfile instruction ${ins.cmd} is not emulated`);
      }
      image.workdir = workdir;
    }
    result = image;
  }
  return result!;
}

function copyInto(src: string, dest: string, intoDirectory: boolean): void {
  if (!existsSync(src)) throw new Error(`COPY: ${src} does not exist in the source stage`);
  const target = intoDirectory && !statSync(src).isDirectory() ? join(dest, basename(src)) : dest;
  mkdirSync(dirname(target), { recursive: true });
  cpSync(src, target, { recursive: true, dereference: true });
}

function runStep(command: string, root: string, workdir: string, projectDir: string): void {
  if (/^(apt-get|mkdir|cp)\s/.test(command.trim())) {
    for (const step of command.split("&&")) runSystemStep(step.trim().split(/\s+/), root, workdir);
    return;
  }
  const cwd = join(root, workdir);
  const words = command.trim().split(/\s+/);
  if (words[0] === "npm" && words[1] === "ci") {
    if (!words.includes("--ignore-scripts")) throw new Error("npm ci without --ignore-scripts would run install scripts this emulation skips");
    if (words.includes("--omit=dev")) installProductionPackages(projectDir, cwd);
    else symlinkSync(join(projectDir, "node_modules"), join(cwd, "node_modules"), "dir");
    return;
  }
  const script = /^npm run ([\w:-]+)$/.exec(command.trim())?.[1];
  if (script !== undefined) {
    // The project's own build scripts, for real, in the staged directory.
    try {
      execFileSync("npm", ["run", script], { cwd, stdio: "pipe", timeout: 120_000 });
    } catch (error) {
      const e = error as { stdout?: Buffer; stderr?: Buffer };
      throw new Error(`RUN npm run ${script} failed:\n${String(e.stdout ?? "")}${String(e.stderr ?? "")}`);
    }
    return;
  }
  throw new Error(`RUN ${command}: not a step this emulation can carry out`);
}

/** One command of a system RUN chain, carried out under the stage's root (relative paths from WORKDIR). */
function runSystemStep(words: string[], root: string, workdir: string): void {
  const [program, ...rest] = words;
  const args = rest.filter((w) => !w.startsWith("-"));
  const inStage = (path: string) => join(root, posix.resolve(workdir, path));
  if (program === "apt-get" && args[0] === "update") return;
  if (program === "apt-get" && args[0] === "install") {
    if (!rest.includes("-y")) throw new Error("apt-get install without -y would wait for an answer");
    for (const pkg of args.slice(1)) installDebianPackage(pkg, root);
    return;
  }
  if (program === "mkdir" && rest[0] === "-p" && args.length > 0) {
    for (const dir of args) mkdirSync(inStage(dir), { recursive: true });
    return;
  }
  if (program === "cp" && rest.length === args.length && args.length >= 2) {
    // As cp does: into an existing directory; a destination ending in "/", or several sources,
    // must be one; otherwise a file path whose directory exists.
    const dest = args.pop()!;
    const sources = args.flatMap((pattern) => expandGlob(root, posix.resolve(workdir, pattern)));
    if (sources.length === 0) throw new Error(`cp ${args.join(" ")}: no such file in the stage`);
    const target = inStage(dest);
    const isDirectory = existsSync(target) && statSync(target).isDirectory();
    if ((dest.endsWith("/") || sources.length > 1) && !isDirectory) throw new Error(`cp: ${dest} is not a directory in the stage`);
    if (!isDirectory && !existsSync(dirname(target))) throw new Error(`cp: ${posix.dirname(dest)} does not exist in the stage`);
    for (const src of sources) cpSync(join(root, src), isDirectory ? join(target, basename(src)) : target, { dereference: true });
    return;
  }
  throw new Error(`RUN ${words.join(" ")}: not a step this emulation can carry out`);
}

/**
 * The files of a Debian package installed on this machine, copied to the same paths under root:
 * the named package only, not its dependencies (a base image would have to provide those).
 */
function installDebianPackage(pkg: string, root: string): void {
  let status = "";
  let cause: unknown;
  try {
    status = execFileSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    cause = error;
  }
  if (status !== "install ok installed") {
    throw new Error(`apt-get install ${pkg}: the Debian package is not installed on this machine, and the emulation copies its files from here (apt-get install -y ${pkg})`, { cause });
  }
  for (const path of execFileSync("dpkg", ["-L", pkg], { encoding: "utf8" }).split("\n")) {
    if (!path.startsWith("/") || !existsSync(path) || statSync(path).isDirectory()) continue;
    mkdirSync(dirname(join(root, path)), { recursive: true });
    // Links stay links, as dpkg unpacks them (a library is usually installed under its SONAME as a
    // link to the versioned file), pointing inside the stage.
    if (lstatSync(path).isSymbolicLink()) {
      const target = readlinkSync(path);
      // lstat, not existsSync: a link whose file is not copied yet exists but does not resolve.
      if (!lstatSync(join(root, path), { throwIfNoEntry: false })) symlinkSync(posix.isAbsolute(target) ? join(root, target) : target, join(root, path));
    } else {
      cpSync(path, join(root, path));
    }
  }
}

/** Absolute stage paths matching an absolute pattern whose `*` stand for any characters within one path segment. */
function expandGlob(root: string, pattern: string): string[] {
  let matches = ["/"];
  for (const segment of pattern.split("/").filter(Boolean)) {
    const re = new RegExp(`^${segment.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")}$`);
    matches = matches.flatMap((dir) => {
      const full = join(root, dir);
      if (!existsSync(full) || !statSync(full).isDirectory()) return [];
      return readdirSync(full).filter((name) => re.test(name)).map((name) => posix.join(dir, name));
    });
  }
  return matches;
}

/** What `npm ci --omit=dev` installs: every lockfile package not marked dev (platform-specific optional ones only if present). */
export function productionPackages(projectDir: string): string[] {
  const lock = JSON.parse(readFileSync(join(projectDir, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; link?: boolean }>;
  };
  const paths: string[] = [];
  for (const [path, info] of Object.entries(lock.packages)) {
    if (path === "" || info.dev || info.link) continue;
    if (!existsSync(join(projectDir, path))) {
      if (info.optional) continue;
      throw new Error(`${path} is a production dependency in package-lock.json but is not installed`);
    }
    paths.push(path);
  }
  return paths;
}

function installProductionPackages(projectDir: string, cwd: string): void {
  for (const path of productionPackages(projectDir)) {
    const source = join(projectDir, path);
    // Nested node_modules are packages of their own in the lockfile and come with their own entry.
    cpSync(source, join(cwd, path), {
      recursive: true,
      dereference: true,
      filter: (s) => s === source || !relative(source, s).split("/").includes("node_modules"),
    });
  }
}
