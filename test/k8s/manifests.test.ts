import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { readYamlDocuments, renderKustomization, type KObject } from "../support/k8s-kustomize.js";
import {
  findOne,
  k8sDir,
  kubectlKustomize,
  overlayDir,
  overlayNames,
  projectRoot,
  renderAllVariants,
} from "../support/k8s-overlays.js";
import { validateObject } from "../support/k8s-validate.js";

// Renders every overlay (and each with the other edge component) offline, and validates every
// object: strictly against the API's own field lists, against kubernetes-models' schemas, and
// against a few API server rules. Then proves the strict layer bites.

const variants = renderAllVariants();

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry) ? [path] : [];
  });
}

describe("k8s manifests", () => {
  it("every YAML file under k8s/ reads the same in YAML 1.1 and 1.2", () => {
    const files = yamlFiles(k8sDir);
    expect(files.length).toBeGreaterThan(15);
    for (const file of files) expect(() => readYamlDocuments(readFileSync(file, "utf8"), relative(projectRoot, file))).not.toThrow();
  });

  it("renders every overlay, with each edge component", () => {
    expect(variants.map((v) => v.name)).toEqual([
      "dev",
      "dev with components/gateway-api",
      "prod with components/ingress",
      "prod",
    ]);
    for (const v of variants) {
      const kinds = v.objects.map((o) => o.kind);
      const expected = ["Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy"];
      if (v.overlay === "prod") expected.push("HorizontalPodAutoscaler");
      expected.push(...(v.edge === "ingress" ? ["Ingress", "Ingress"] : ["Gateway", "GRPCRoute", "HTTPRoute"]));
      expect(kinds.sort(), v.name).toEqual(expected.sort());
      // Placeholders are all replaced from edge-settings; none may reach a cluster.
      expect(JSON.stringify(v.objects), v.name).not.toContain("set-by-edge-settings");
      expect(v.objects.every((o) => o.metadata.namespace === undefined || o.metadata.namespace === findOne(v.objects, "Namespace").metadata.name)).toBe(true);
    }
  });

  it("renders exactly what kustomize (kubectl kustomize) renders", () => {
    for (const overlay of overlayNames) {
      expect(variants.find((v) => v.overlay === overlay && v.asCommitted)!.objects, overlay).toEqual(kubectlKustomize(overlayDir(overlay)));
    }
    expect(renderKustomization(join(k8sDir, "base"))).toEqual(kubectlKustomize(join(k8sDir, "base")));
  });

  it("every rendered object is valid, strictly", () => {
    for (const v of variants) {
      for (const obj of v.objects) expect(validateObject(obj), `${v.name}: ${obj.kind}/${String(obj.metadata.name)}`).toEqual([]);
    }
  });

  describe("the strict layer", () => {
    const prod = variants.find((v) => v.name === "prod")!.objects;
    const dev = variants.find((v) => v.name === "dev")!.objects;
    const mutate = (obj: KObject, change: (o: any) => void): KObject => {
      const copy = structuredClone(obj);
      change(copy);
      return copy;
    };

    it("rejects autoscaling/v1's targetCPUUtilizationPercentage in an autoscaling/v2 HorizontalPodAutoscaler", () => {
      const hpa = mutate(findOne(prod, "HorizontalPodAutoscaler"), (o) => {
        delete o.spec.metrics;
        o.spec.targetCPUUtilizationPercentage = 70;
      });
      expect(validateObject(hpa)).toEqual([expect.stringMatching(/spec\.targetCPUUtilizationPercentage: unknown field/)]);
    });

    it("rejects a misspelled probe handler (grpcc:)", () => {
      const deployment = mutate(findOne(prod, "Deployment"), (o) => {
        const probe = o.spec.template.spec.containers[0].readinessProbe;
        delete probe.httpGet;
        probe.grpcc = { port: 8080 };
      });
      const problems = validateObject(deployment);
      expect(problems).toContainEqual(expect.stringMatching(/readinessProbe\.grpcc: unknown field \(did you mean grpc\?\)/));
      expect(problems).toContainEqual(expect.stringMatching(/readinessProbe: needs exactly one of/));
    });

    it("rejects unknown fields at any depth, in built-in kinds and in Gateway API kinds", () => {
      const cases: Array<[KObject, RegExp]> = [
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true)), /readOnlyRootFileSystem: unknown field \(did you mean readOnlyRootFilesystem\?\)/],
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.template.spec.topologySpreadConstraints[0].maxskew = 1)), /maxskew: unknown field/],
        [mutate(findOne(prod, "Service"), (o) => (o.spec.ports[0].appProtocoll = "http")), /appProtocoll: unknown field/],
        [mutate(findOne(dev, "Ingress", "connect-gateway-grpc"), (o) => (o.spec.ingressClass = "nginx")), /spec\.ingressClass: unknown field/],
        [mutate(findOne(prod, "GRPCRoute"), (o) => (o.spec.rules[0].backendRef = o.spec.rules[0].backendRefs)), /backendRef: unknown field \(did you mean backendRefs\?\)/],
        [mutate(findOne(prod, "HTTPRoute"), (o) => (o.spec.rules[0].timeouts = { request: "0s" })), /timeouts: unknown field/],
        [mutate(findOne(prod, "Gateway"), (o) => (o.spec.listeners[0].tls.certificateRef = [])), /certificateRef: unknown field/],
        [mutate(findOne(prod, "Gateway"), (o) => (o.metadata.lables = {})), /metadata\.lables: unknown field/],
      ];
      for (const [obj, problem] of cases) expect(validateObject(obj)).toContainEqual(expect.stringMatching(problem));
    });

    it("rejects wrong types, missing required fields and unquoted numbers where the API wants strings", () => {
      const cases: Array<[KObject, RegExp]> = [
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.template.spec.containers[0].ports[0].containerPort = "8080")), /containerPort: expected an integer/],
        [mutate(findOne(dev, "Ingress", "connect-gateway-grpc"), (o) => (o.metadata.annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = 0)), /proxy-body-size: expected a string/],
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.template.spec.containers[0].resources.limits.cpu = 1)), /limits\.cpu: expected a string/],
        [mutate(findOne(prod, "HorizontalPodAutoscaler"), (o) => delete o.spec.scaleTargetRef), /scaleTargetRef/],
        [mutate(findOne(prod, "HTTPRoute"), (o) => delete o.spec.rules[0].backendRefs[0].name), /backendRefs\[0\]\.name: required/],
        [mutate(findOne(prod, "GRPCRoute"), (o) => delete o.spec.rules[0].backendRefs[0].port), /a Service backend needs a port/],
        [mutate(findOne(prod, "Gateway"), (o) => (o.spec.listeners[0].protocol = "HTTPS ")), /protocol.*does not match/],
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.selector.matchLabels.extra = "x")), /does not match the template's labels/],
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.template.spec.containers[0].ports[0].name = "connect-gateway-rpc")), /not an IANA service name/],
        [mutate(findOne(prod, "Deployment"), (o) => (o.spec.template.spec.containers[0].resources.requests.memory = "100Gi")), /requests\.memory: above its limit/],
        [mutate(findOne(prod, "PodDisruptionBudget"), (o) => (o.spec.minAvailable = 1)), /exactly one of minAvailable and maxUnavailable/],
      ];
      for (const [obj, problem] of cases) expect(validateObject(obj)).toContainEqual(expect.stringMatching(problem));
    });

    it("refuses kinds it has no schema for", () => {
      expect(validateObject({ apiVersion: "extensions/v1beta1", kind: "Ingress", metadata: { name: "old" } })).toEqual([
        expect.stringMatching(/no schema for extensions\/v1beta1\/Ingress/),
      ]);
    });
  });

  it("the commented requests-per-second HPA variant is a valid autoscaling/v2 spec as well", () => {
    const text = readFileSync(join(k8sDir, "base", "hpa.yaml"), "utf8");
    const block = /# BEGIN CUSTOM-METRIC VARIANT\n([\s\S]*?)\n\s*# END CUSTOM-METRIC VARIANT/.exec(text);
    expect(block).not.toBeNull();
    const uncommented = block![1]
      .split("\n")
      .map((line) => line.replace(/^(\s*)# ?/, "$1"))
      .join("\n");
    const { metrics } = parseYaml(uncommented.replace(/^ {2}/gm, "")) as { metrics: Array<Record<string, unknown>> };
    expect(metrics.map((m) => m.type)).toEqual(["Pods", "Resource"]);
    const hpa = structuredClone(findOne(variants.find((v) => v.name === "prod")!.objects, "HorizontalPodAutoscaler"));
    (hpa.spec as Record<string, unknown>).metrics = metrics;
    expect(validateObject(hpa)).toEqual([]);
    (metrics[0].pods as Record<string, unknown>).metrics = (metrics[0].pods as Record<string, unknown>).metric;
    expect(validateObject(hpa)).toContainEqual(expect.stringMatching(/pods\.metrics: unknown field/));
  });
});
