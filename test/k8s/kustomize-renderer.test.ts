import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configMapHash, renderKustomization, splitImage, type KObject } from "../support/k8s-kustomize.js";
import { kubectlKustomize } from "../support/k8s-overlays.js";

// Each case is a small kustomization tree. Where it renders, kustomize itself (kubectl's) must
// render exactly the same objects in the same order: the renderer is only trusted as far as
// it agrees with the real thing.

const scratch = mkdtempSync(join(tmpdir(), "kustomize-renderer-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let counter = 0;
function tree(files: Record<string, string>): string {
  const root = join(scratch, `case-${++counter}`);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

function renderBoth(dir: string): KObject[] {
  const ours = renderKustomization(dir);
  expect(ours).toEqual(kubectlKustomize(dir));
  return ours;
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: main
          image: registry.local:5000/team/web:1.0
          env:
            - {name: A, value: a}
            - {name: B, value: b}
            - name: FROM_CM
              valueFrom:
                configMapKeyRef: {name: settings, key: mode}
          envFrom:
            - configMapRef: {name: settings}
        - name: sidecar
          image: busybox
      volumes:
        - name: config
          configMap: {name: settings}
`;

describe("the kustomize subset renderer", () => {
  it("computes kustomize's ConfigMap hash", () => {
    // Value printed by kustomize v5 for a generator with one file "a.yaml" holding "port: 1\n".
    expect(configMapHash({ "a.yaml": "port: 1\n" })).toBe("mfm8dg298b");
  });

  it("splits image references without mistaking a registry port for a tag", () => {
    expect(splitImage("registry.local:5000/web")).toEqual({ name: "registry.local:5000/web", suffix: "" });
    expect(splitImage("registry.local:5000/web:1.0")).toMatchObject({ name: "registry.local:5000/web", tag: "1.0" });
    expect(splitImage("web@sha256:abc")).toMatchObject({ name: "web", digest: "sha256:abc" });
  });

  it("applies namespace (renaming Namespace objects), labels with templates, replicas and images", () => {
    const dir = tree({
      "base/kustomization.yaml": "resources: [deployment.yaml, service.yaml]\n",
      "base/deployment.yaml": deployment,
      "base/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n",
      "overlay/kustomization.yaml": [
        "namespace: shop",
        "resources: [ns.yaml, ../base]",
        "labels:",
        "  - pairs: {tier: front}",
        "    includeTemplates: true",
        "replicas: [{name: web, count: 3}]",
        "images:",
        "  - {name: registry.local:5000/team/web, newName: example.org/web, newTag: '2.0'}",
        "  - {name: busybox, digest: 'sha256:0123'}",
        "",
      ].join("\n"),
      "overlay/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: placeholder}\n",
    });
    const out = renderBoth(join(dir, "overlay"));
    expect(out.map((o) => `${o.kind}/${String(o.metadata.namespace ?? "")}/${String(o.metadata.name)}`)).toEqual([
      "Namespace//shop",
      "Service/shop/web",
      "Deployment/shop/web",
    ]);
    const d = out[2] as unknown as { spec: { replicas: number; selector: unknown; template: { metadata: { labels: unknown }; spec: { containers: Array<{ image: string }> } } } };
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.selector).toEqual({ matchLabels: { app: "web" } });
    expect(d.spec.template.metadata.labels).toEqual({ app: "web", tier: "front" });
    expect(d.spec.template.spec.containers.map((c) => c.image)).toEqual(["example.org/web:2.0", "busybox@sha256:0123"]);
  });

  it("merges strategic patches the way kustomize orders lists: patch items first, then untouched originals", () => {
    const dir = tree({
      "kustomization.yaml": "resources: [deployment.yaml]\npatches:\n  - path: patch.yaml\n",
      "deployment.yaml": deployment,
      "patch.yaml": [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata: {name: web}",
        "spec:",
        "  template:",
        "    spec:",
        "      containers:",
        "        - name: sidecar",
        "          image: busybox:1.36",
        "          args: [--quiet]",
        "        - name: main",
        "          env:",
        "            - {name: NEW, value: new}",
        "            - {name: B, value: patched}",
        "          envFrom: null",
        "",
      ].join("\n"),
    });
    const [d] = renderBoth(dir) as unknown as Array<{ spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } }>;
    const containers = d.spec.template.spec.containers;
    expect(containers.map((c) => c.name)).toEqual(["sidecar", "main"]);
    expect(containers[0]).toMatchObject({ image: "busybox:1.36", args: ["--quiet"] });
    expect((containers[1].env as Array<{ name: string; value?: string }>).map((e) => `${e.name}=${e.value ?? "(ref)"}`)).toEqual([
      "NEW=new",
      "B=patched",
      "A=a",
      "FROM_CM=(ref)",
    ]);
    expect(containers[1]).not.toHaveProperty("envFrom");
  });

  it("applies JSON 6902 patches to every target a selector matches, and deletes with $patch: delete", () => {
    const dir = tree({
      "kustomization.yaml": [
        "resources: [objects.yaml]",
        "patches:",
        "  - target: {kind: Ingress, name: 'edge-.*'}",
        "    patch: |-",
        "      - {op: replace, path: /spec/rules/0/host, value: new.example.com}",
        "      - {op: add, path: /metadata/annotations, value: {a/b: c}}",
        "      - {op: add, path: /spec/rules/-, value: {host: extra.example.com}}",
        "  - patch: |-",
        "      $patch: delete",
        "      apiVersion: v1",
        "      kind: ConfigMap",
        "      metadata: {name: doomed}",
        "",
      ].join("\n"),
      "objects.yaml": [
        "apiVersion: networking.k8s.io/v1",
        "kind: Ingress",
        "metadata: {name: edge-a}",
        "spec: {rules: [{host: a.example.com}]}",
        "---",
        "apiVersion: networking.k8s.io/v1",
        "kind: Ingress",
        "metadata: {name: edge-b}",
        "spec: {rules: [{host: b.example.com}]}",
        "---",
        "apiVersion: networking.k8s.io/v1",
        "kind: Ingress",
        "metadata: {name: other}",
        "spec: {rules: [{host: c.example.com}]}",
        "---",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: doomed}",
        "",
      ].join("\n"),
    });
    const out = renderBoth(dir);
    expect(out.map((o) => o.metadata.name)).toEqual(["edge-a", "edge-b", "other"]);
    const hosts = out.map((o) => ((o.spec as { rules: Array<{ host: string }> }).rules.map((r) => r.host)));
    expect(hosts).toEqual([["new.example.com", "extra.example.com"], ["new.example.com", "extra.example.com"], ["c.example.com"]]);
  });

  it("generates ConfigMaps with a content hash and renames every reference to them", () => {
    const dir = tree({
      "kustomization.yaml": [
        "resources: [deployment.yaml]",
        "configMapGenerator:",
        "  - name: settings",
        "    files: [app.yaml, renamed.json=raw.json]",
        "    literals: [mode=fast]",
        "",
      ].join("\n"),
      "deployment.yaml": deployment,
      "app.yaml": "greeting: <hello & bye>\n",
      "raw.json": "{}\n",
    });
    const out = renderBoth(dir);
    const cm = out.find((o) => o.kind === "ConfigMap")!;
    expect(cm.data).toEqual({ "app.yaml": "greeting: <hello & bye>\n", "renamed.json": "{}\n", mode: "fast" });
    const name = String(cm.metadata.name);
    expect(name).toMatch(/^settings-[a-z0-9]{10}$/);
    expect(JSON.stringify(out.find((o) => o.kind === "Deployment")).match(new RegExp(name, "g"))).toHaveLength(3);
  });

  it("runs components against the resources accumulated so far, reads replacements, and drops local-config", () => {
    const dir = tree({
      "overlay/kustomization.yaml": "resources: [settings.yaml, service.yaml]\ncomponents: [../component]\n",
      "overlay/settings.yaml": [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: settings",
        "  annotations: {config.kubernetes.io/local-config: 'true'}",
        "data: {host: api.example.com, listener: api}",
        "",
      ].join("\n"),
      "overlay/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
      "component/kustomization.yaml": [
        "apiVersion: kustomize.config.k8s.io/v1alpha1",
        "kind: Component",
        "resources: [gateway.yaml]",
        "replacements:",
        "  - source: {kind: ConfigMap, name: settings, fieldPath: data.host}",
        "    targets:",
        "      - select: {kind: Gateway}",
        "        fieldPaths: ['spec.listeners.[name=api].hostname']",
        "      - select: {kind: Service}",
        "        fieldPaths: [metadata.annotations.host]",
        "        options: {create: true}",
        "",
      ].join("\n"),
      "component/gateway.yaml": [
        "apiVersion: gateway.networking.k8s.io/v1",
        "kind: Gateway",
        "metadata: {name: edge}",
        "spec:",
        "  gatewayClassName: x",
        "  listeners:",
        "    - {name: grpc, hostname: keep.example.com, port: 443, protocol: HTTPS}",
        "    - {name: api, hostname: placeholder, port: 443, protocol: HTTPS}",
        "",
      ].join("\n"),
    });
    const out = renderBoth(join(dir, "overlay"));
    expect(out.map((o) => o.kind)).toEqual(["Service", "Gateway"]);
    expect(out[0].metadata.annotations).toEqual({ host: "api.example.com" });
    expect((out[1].spec as { listeners: Array<{ hostname: string }> }).listeners.map((l) => l.hostname)).toEqual([
      "keep.example.com",
      "api.example.com",
    ]);
  });

  it("refuses what it does not implement, and what kustomize refuses", () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ "kustomization.yaml": "resources: []\nnamePrefix: x-\n" }, /namePrefix.*not supported/],
      [{ "kustomization.yaml": "resources: [../outside.yaml]\n", "../outside.yaml": "" }, /outside/],
      [{ "kustomization.yaml": "resources: [a.yaml, a.yaml]\n", "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n" }, /defined twice/],
      [{ "kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {flag: on}\n" }, /YAML 1\.1 and 1\.2/],
      [{ "kustomization.yaml": "resources: [a.yaml]\npatches: [{patch: '[{op: add, path: /x, value: 1}]'}]\n", "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n" }, /needs a target/],
      [{ "kustomization.yaml": "replacements: [{source: {kind: ConfigMap, name: nope}, targets: []}]\n" }, /0 sources/],
    ];
    for (const [files, error] of cases) expect(() => renderKustomization(tree(files)), String(error)).toThrow(error);
  });
});
