import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { parseAllDocuments } from "yaml";
import { renderKustomization, type KObject } from "./k8s-kustomize.js";

export const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
export const k8sDir = join(projectRoot, "k8s");

/** Every overlay under k8s/overlays, and the edge components an overlay can choose from. */
export const overlayNames = ["dev", "prod"] as const;
export const edgeComponents = ["ingress", "gateway-api"] as const;
export type OverlayName = (typeof overlayNames)[number];
export type EdgeComponent = (typeof edgeComponents)[number];

export interface RenderedVariant {
  /** e.g. "prod" or "prod with components/ingress" */
  name: string;
  overlay: OverlayName;
  edge: EdgeComponent;
  /** True for the overlay exactly as committed, false for the one-line edge switch. */
  asCommitted: boolean;
  objects: KObject[];
}

export function overlayDir(overlay: OverlayName): string {
  return join(k8sDir, "overlays", overlay);
}

/** The edge component an overlay's kustomization.yaml uses as committed. */
export function committedEdge(overlay: OverlayName): EdgeComponent {
  const k = parseYaml(readFileSync(join(overlayDir(overlay), "kustomization.yaml"), "utf8")) as { components?: string[] };
  const edges = (k.components ?? []).map((c) => c.split("/").pop()).filter((c): c is EdgeComponent => edgeComponents.includes(c as EdgeComponent));
  if (edges.length !== 1) throw new Error(`overlay ${overlay}: expected one edge component, found ${edges.join(", ") || "none"}`);
  return edges[0];
}

/**
 * Every overlay with each edge component: the committed combination and the documented
 * one-line switch to the other edge, so both stay renderable and valid in every environment.
 */
export function renderAllVariants(): RenderedVariant[] {
  const variants: RenderedVariant[] = [];
  for (const overlay of overlayNames) {
    const committed = committedEdge(overlay);
    for (const edge of edgeComponents) {
      const k = parseYaml(readFileSync(join(overlayDir(overlay), "kustomization.yaml"), "utf8")) as { components?: string[] };
      const components = (k.components ?? []).map((c) => (c.endsWith(`/components/${committed}`) ? c.replace(committed, edge) : c));
      variants.push({
        name: edge === committed ? overlay : `${overlay} with components/${edge}`,
        overlay,
        edge,
        asCommitted: edge === committed,
        objects: renderKustomization(overlayDir(overlay), edge === committed ? {} : { components }),
      });
    }
  }
  return variants;
}

/** Find one object by kind (and name); throws when there is not exactly one. */
export function findOne(objects: KObject[], kind: string, name?: string): KObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, found ${found.length}`);
  return found[0];
}

/** An executable on the PATH; a missing one fails the test that needs it (under CI and off it). */
export function requireTool(name: string, howToGetIt: string): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} is not on the PATH (${howToGetIt}); this test cannot run without it`);
}

/** `kubectl kustomize DIR` (kustomize v5, embedded in kubectl ≥ 1.27), parsed. */
export function kubectlKustomize(dir: string): KObject[] {
  const kubectl = requireTool("kubectl", "kubectl ≥ 1.27 with its embedded kustomize v5; this machine image ships one");
  const version = JSON.parse(execFileSync(kubectl, ["version", "--client", "-o", "json"], { encoding: "utf8" })) as { kustomizeVersion?: string };
  const major = Number(/^v(\d+)/.exec(version.kustomizeVersion ?? "")?.[1] ?? 0);
  if (major < 5) throw new Error(`kubectl's kustomize is ${version.kustomizeVersion ?? "unknown"}; components, labels and replacements need v5`);
  const text = execFileSync(kubectl, ["kustomize", dir], { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe"] });
  return parseAllDocuments(text).map((d) => d.toJS() as KObject).filter((o) => o !== null);
}
