/**
 * Where a V8 CPU profile (.cpuprofile, from node --cpu-prof) spends its time: self time by
 * origin (a package in node_modules, a project folder, Node's internals, GC) and the top
 * functions. Used by `npm run bench -- --cpu-prof`; also runnable on its own:
 *
 *   npx tsx bench/profile-summary.ts bench/results/profiles/gateway.cpuprofile
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  text: string;
  data: {
    totalMs: number;
    idleMs: number;
    busyMs: number;
    byOrigin: { origin: string; ms: number; pctOfBusy: number }[];
    topFunctions: { fn: string; origin: string; ms: number; pctOfBusy: number }[];
  };
}

/** "@connectrpc/connect", "src/server", "node:internal/http2", "(garbage collector)", ... */
export function originOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) {
    const inner = /node_modules\/(?:@[^/]+\/)?[^/]+\/dist\/(?:esm|cjs)\/([^/]+)\//.exec(url);
    return inner ? `${modules[1]} (${inner[1]})` : modules[1];
  }
  if (url.startsWith("node:")) {
    const internal = /^node:(internal\/[^/]+)/.exec(url);
    return internal ? `node:${internal[1].replace(/\.js$/, "")}` : url.replace(/\.js$/, "");
  }
  // Compiled by the benchmark: …/bench/results/build/<project|gateway-root>/src/….js
  const built = /\/bench\/results\/build\/[^/]+\/(.*)$/.exec(url);
  const project = /(?:^|\/)(src|gen|bench|test)\/(.*)$/.exec(built ? built[1] : url);
  if (project) {
    const parts = project[2].split("/");
    return `${project[1]}/${parts.length > 1 ? parts[0] + "/" : ""}${parts.length > 1 ? "" : parts[0]}`;
  }
  return url;
}

export function summarizeProfile(file: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self time per node from samples × time deltas (µs); fall back to hit counts.
  const selfUs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    for (let i = 0; i < profile.samples.length; i++) {
      const delta = profile.timeDeltas[i + 1] ?? 0;
      selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + Math.max(0, delta));
    }
  } else {
    const totalHits = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0);
    const perHit = totalHits > 0 ? (profile.endTime - profile.startTime) / totalHits : 0;
    for (const node of profile.nodes) selfUs.set(node.id, (node.hitCount ?? 0) * perHit);
  }
  let idle = 0;
  let total = 0;
  const origins = new Map<string, number>();
  const functions = new Map<string, { origin: string; us: number }>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idle += us;
      continue;
    }
    const origin = originOf(url, functionName);
    origins.set(origin, (origins.get(origin) ?? 0) + us);
    const key = `${functionName || "(anonymous)"} ${url ? `${url.replace(/^.*\/(node_modules|src|gen|bench)\//, "$1/")}:${lineNumber + 1}` : ""}`.trim();
    const entry = functions.get(key) ?? { origin, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const busy = total - idle;
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0);
  const byOrigin = [...origins.entries()].sort((a, b) => b[1] - a[1]).map(([origin, us]) => ({ origin, ms: us / 1000, pctOfBusy: pct(us) }));
  const topFunctions = [...functions.entries()]
    .sort((a, b) => b[1].us - a[1].us)
    .slice(0, top)
    .map(([fn, { origin, us }]) => ({ fn, origin, ms: us / 1000, pctOfBusy: pct(us) }));
  const lines = [
    `  busy ${(busy / 1e6).toFixed(1)} s of ${(total / 1e6).toFixed(1)} s profiled; self time by origin:`,
    ...byOrigin.slice(0, top).map((o) => `    ${o.pctOfBusy.toFixed(1).padStart(5)}%  ${o.origin}`),
    `  top functions (self time):`,
    ...topFunctions.map((f) => `    ${f.pctOfBusy.toFixed(1).padStart(5)}%  ${f.fn}`),
  ];
  return { text: lines.join("\n"), data: { totalMs: total / 1000, idleMs: idle / 1000, busyMs: busy / 1000, byOrigin, topFunctions } };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of process.argv.slice(2)) process.stdout.write(`${file}:\n${summarizeProfile(file).text}\n`);
}
