import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { environmentVariables } from "../../src/config/load-config.js";
import { parseDockerfile } from "../support/k8s-dockerfile.js";
import { splitImage } from "../support/k8s-kustomize.js";
import { findOne, projectRoot, renderAllVariants } from "../support/k8s-overlays.js";
import type { GatewayConfig } from "../../src/config/gateway-config.js";
import { configFromConfigMap, effectiveConfig, gatewayPod, resolveContainerPort } from "../support/k8s-pod.js";
import { parseQuantity } from "../support/k8s-validate.js";

// The objects must agree with each other and with the gateway itself; each check here fails
// when one side changes without the other.

const scratch = mkdtempSync(join(tmpdir(), "k8s-cross-refs-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const H2C = "kubernetes.io/h2c";
const labelsMatch = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.keys(selector ?? {}).length > 0 && Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

for (const variant of renderAllVariants()) {
  describe(`k8s ${variant.name}`, () => {
    const objects = variant.objects;
    const pod = gatewayPod(objects);
    const podLabels = (pod.deployment.spec as any).template.metadata.labels as Record<string, string>;
    const service = findOne(objects, "Service", "connect-gateway") as any;
    // Computed on first use, so a config the gateway rejects fails its own test with the loader's message.
    let loaded: GatewayConfig | undefined;
    const config = () => (loaded ??= effectiveConfig(pod, scratch));
    const servicePort = (ref: { name?: string; number?: number }) =>
      (service.spec.ports as any[]).find((p) => (ref.name !== undefined ? p.name === ref.name : p.port === ref.number));

    it("the ConfigMap parses with the gateway's own config loader, alone and with the container's environment", () => {
      expect(() => configFromConfigMap(pod)).not.toThrow();
      // What lists the API (reflection, the explorer page) is on in dev only.
      expect(config().reflection.enabled).toBe(variant.overlay === "dev");
      expect(config().web.explorer.enabled).toBe(variant.overlay === "dev");
      // Unset host means every interface: the kubelet's probes and the Service reach the pod IP.
      expect(config().host).toBeUndefined();
      expect(config().tls).toBeUndefined();
    });

    it("container, probe, Service and NetworkPolicy ports all lead to the gateway's configured port", () => {
      expect((pod.container.ports as any[]).map((p) => p.containerPort)).toEqual([config().port]);
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const handler = pod.container[probe].httpGet ?? pod.container[probe].grpc;
        expect(resolveContainerPort(pod.container, handler.port), probe).toBe(config().port);
      }
      for (const p of service.spec.ports as any[]) expect(resolveContainerPort(pod.container, p.targetPort), p.name).toBe(config().port);
      const policy = findOne(objects, "NetworkPolicy") as any;
      expect(labelsMatch(policy.spec.podSelector.matchLabels, podLabels)).toBe(true);
      for (const rule of policy.spec.ingress) for (const p of rule.ports) expect(resolveContainerPort(pod.container, p.port)).toBe(config().port);
      // Egress is closed: fine while the gateway calls nothing; upstream routes need rules there.
      if (config().upstreams.routes.length > 0) expect(policy.spec.egress.length, "NetworkPolicy egress for upstream routes").toBeGreaterThan(0);
      const dockerfile = parseDockerfile(readFileSync(join(projectRoot, "Dockerfile"), "utf8"));
      const expose = dockerfile.at(-1)!.instructions.filter((i) => i.cmd === "EXPOSE").map((i) => Number(i.args));
      expect(expose).toEqual([config().port]);
    });

    it("probes ask the gateway's real endpoints: readiness and startup /readyz, liveness /healthz", () => {
      expect(pod.container.readinessProbe.httpGet.path).toBe("/readyz");
      expect(pod.container.startupProbe.httpGet.path).toBe("/readyz");
      // Liveness must not turn red while the pod drains (readiness does): /healthz stays 200.
      expect(pod.container.livenessProbe.httpGet.path).toBe("/healthz");
    });

    it("selectors of the Service, PodDisruptionBudget and spread constraints select the gateway's pods", () => {
      expect(labelsMatch(service.spec.selector, podLabels)).toBe(true);
      const pdb = findOne(objects, "PodDisruptionBudget") as any;
      expect(labelsMatch(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
      for (const c of pod.pod.topologySpreadConstraints) expect(labelsMatch(c.labelSelector.matchLabels, podLabels)).toBe(true);
      // Another workload in the namespace must not be selected by the Service.
      expect(objects.filter((o) => ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind))).toHaveLength(1);
    });

    it("the drain fits in the termination grace period: preStop sleep + shutdown.graceMs + a margin", () => {
      const needed = pod.preStopSeconds + Math.ceil(config().shutdown.graceMs / 1000) + 3;
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(needed);
      // Long enough for endpoint removal to reach the proxies, short enough not to stall rollouts.
      expect(pod.preStopSeconds).toBeGreaterThanOrEqual(3);
      expect(pod.preStopSeconds).toBeLessThanOrEqual(15);
      // Rebalancing after a scale-up is on, and the proxies (60 s idle keep-alive) close first.
      expect(config().limits.maxConnectionAgeMs).toBeGreaterThan(0);
      expect(config().limits.idleTimeoutMs).toBeGreaterThan(60_000);
    });

    it("--max-old-space-size follows the memory limit (50–80 %)", () => {
      const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(pod.env.NODE_OPTIONS ?? "")?.[1]);
      const limitMiB = parseQuantity(pod.container.resources.limits.memory)! / 2 ** 20;
      expect(heapMiB / limitMiB).toBeGreaterThanOrEqual(0.5);
      expect(heapMiB / limitMiB).toBeLessThanOrEqual(0.8);
    });

    it("HorizontalPodAutoscaler: targets the Deployment, has CPU requests to measure against, and owns the replica count", () => {
      const hpas = objects.filter((o) => o.kind === "HorizontalPodAutoscaler") as any[];
      if (variant.overlay === "dev") {
        expect(hpas).toHaveLength(0);
        expect((pod.deployment.spec as any).replicas).toBe(1);
        return;
      }
      expect(hpas).toHaveLength(1);
      const [hpa] = hpas;
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: pod.deployment.metadata.name });
      expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 20]);
      expect(hpa.spec.metrics.some((m: any) => m.type === "Resource" && m.resource.name === "cpu")).toBe(true);
      for (const c of pod.pod.containers) expect(parseQuantity(c.resources?.requests?.cpu), c.name).toBeGreaterThan(0);
      // A replica count in the Deployment would undo the autoscaler on every apply.
      expect((pod.deployment.spec as any).replicas).toBeUndefined();
      expect(hpa.spec.behavior.scaleUp).toBeDefined();
      expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThanOrEqual(60);
    });

    it("rolling updates never go below capacity, and the disruption budget lets a drain proceed", () => {
      const strategy = (pod.deployment.spec as any).strategy;
      expect(strategy.type).toBe("RollingUpdate");
      expect(strategy.rollingUpdate.maxUnavailable).toBe(0);
      const pdb = findOne(objects, "PodDisruptionBudget") as any;
      const minPods = (objects.find((o) => o.kind === "HorizontalPodAutoscaler") as any)?.spec.minReplicas ?? (pod.deployment.spec as any).replicas;
      const allowed = pdb.spec.maxUnavailable ?? minPods - pdb.spec.minAvailable;
      expect(allowed).toBeGreaterThanOrEqual(1);
    });

    it("the image is pinned (never `latest`), and the pod runs as the Dockerfile's user", () => {
      const image = splitImage(pod.container.image as string);
      expect(image.tag ?? image.digest).toBeDefined();
      expect(image.tag).not.toBe("latest");
      if (variant.overlay === "prod") expect(image.name).toContain("/");
      const user = parseDockerfile(readFileSync(join(projectRoot, "Dockerfile"), "utf8")).at(-1)!.instructions.find((i) => i.cmd === "USER")!.args;
      expect(`${pod.pod.securityContext.runAsUser}:${pod.pod.securityContext.runAsGroup}`).toBe(user);
    });

    it("meets the restricted Pod Security Standard, with a read-only root filesystem and no API token", () => {
      expect(pod.pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
      expect(pod.pod.securityContext.runAsUser).toBeGreaterThan(0);
      for (const c of pod.pod.containers) {
        expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
        expect(c.securityContext.capabilities.add).toBeUndefined();
      }
      expect(pod.pod.automountServiceAccountToken).toBe(false);
      expect(pod.pod.hostNetwork ?? false).toBe(false);
      expect(findOne(objects, "Namespace").metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
      expect(findOne(objects, "ServiceAccount", pod.pod.serviceAccountName)).toBeDefined();
    });

    it("no Service's link variables could collide with the gateway's own environment variables", () => {
      // With service links, Service "x-y" puts X_Y_PORT, X_Y_SERVICE_HOST, ... into every pod.
      expect(pod.pod.enableServiceLinks).toBe(false);
      const read = new Set(environmentVariables.map((v) => v.name));
      for (const svc of objects.filter((o) => o.kind === "Service")) {
        const prefix = String(svc.metadata.name).toUpperCase().replace(/-/g, "_");
        const injected = [`${prefix}_SERVICE_HOST`, `${prefix}_SERVICE_PORT`, `${prefix}_PORT`];
        for (const p of (svc.spec as any).ports) injected.push(`${prefix}_PORT_${p.port}_TCP`, `${prefix}_SERVICE_PORT_${String(p.name).toUpperCase().replace(/-/g, "_")}`);
        for (const name of injected) expect(read.has(name), name).toBe(false);
      }
    });

    it("the Service's h2c port says so (appProtocol), and the HTTP/1.1 port does not", () => {
      expect(servicePort({ name: "grpc" }).appProtocol).toBe(H2C);
      expect(servicePort({ name: "http" }).appProtocol).not.toBe(H2C);
    });

    if (variant.edge === "ingress") {
      it("two Ingress objects split by host: GRPC backend protocol to the h2c port, plain HTTP to the other", () => {
        const ingresses = objects.filter((o) => o.kind === "Ingress") as any[];
        const grpc = ingresses.filter((i) => i.metadata.annotations?.["nginx.ingress.kubernetes.io/backend-protocol"] === "GRPC");
        const http = ingresses.filter((i) => i.metadata.annotations?.["nginx.ingress.kubernetes.io/backend-protocol"] !== "GRPC");
        expect([grpc.length, http.length]).toEqual([1, 1]);
        const hostOf = (i: any) => {
          expect(i.spec.rules).toHaveLength(1);
          return i.spec.rules[0].host as string;
        };
        expect(hostOf(grpc[0])).not.toBe(hostOf(http[0]));
        for (const ingress of ingresses) {
          expect(ingress.spec.ingressClassName).toBeTruthy();
          const rule = ingress.spec.rules[0];
          // TLS covers the host: ingress-nginx offers HTTP/2 (and so gRPC) to clients only over TLS.
          expect(ingress.spec.tls.flatMap((t: any) => t.hosts)).toContain(rule.host);
          for (const path of rule.http.paths) {
            expect([path.path, path.pathType]).toEqual(["/", "Prefix"]);
            expect(path.backend.service.name).toBe(service.metadata.name);
            const port = servicePort(path.backend.service.port);
            expect(port, JSON.stringify(path.backend.service.port)).toBeDefined();
            expect(port.appProtocol === H2C).toBe(ingress === grpc[0]);
          }
        }
        // A gRPC client stream is one request body; Connect bodies are one message (plus slack).
        expect(grpc[0].metadata.annotations["nginx.ingress.kubernetes.io/proxy-body-size"]).toBe("0");
        expect(parseQuantity(http[0].metadata.annotations["nginx.ingress.kubernetes.io/proxy-body-size"].replace(/m$/, "Mi"))).toBeGreaterThan(config().limits.maxMessageBytes + 5);
        expect(http[0].metadata.annotations["nginx.ingress.kubernetes.io/proxy-buffering"]).toBe("off");
      });

      it("the documented controller setting upstream-keepalive-time stays below the gateway's shortest connection age", () => {
        // The component's comment gives the value to put in the ingress-nginx ConfigMap;
        // connection-age-behind-proxy.test.ts shows why it must be below the age.
        const text = readFileSync(join(projectRoot, "k8s/components/ingress/kustomization.yaml"), "utf8");
        const seconds = Number(/upstream-keepalive-time: "(\d+)s"/.exec(text)?.[1]);
        expect(seconds).toBeGreaterThan(0);
        // maxConnectionAgeMs is jittered by ±10 %.
        expect(seconds * 1000).toBeLessThanOrEqual(config().limits.maxConnectionAgeMs * 0.9 * 0.85);
      });
    } else {
      it("Gateway API: routes attach to existing listeners by host, and reach existing Service ports", () => {
        const gateway = findOne(objects, "Gateway") as any;
        const listeners = new Map<string, any>(gateway.spec.listeners.map((l: any) => [l.name, l]));
        const routes = objects.filter((o) => o.kind === "GRPCRoute" || o.kind === "HTTPRoute") as any[];
        const tlsSecrets = new Set<string>();
        for (const route of routes) {
          for (const parent of route.spec.parentRefs) {
            expect(parent.name).toBe(gateway.metadata.name);
            const listener = listeners.get(parent.sectionName);
            expect(listener, `${route.kind} → listener ${String(parent.sectionName)}`).toBeDefined();
            expect(listener.allowedRoutes.kinds.map((k: any) => k.kind)).toEqual([route.kind]);
            expect(route.spec.hostnames).toEqual([listener.hostname]);
            expect(listener.protocol).toBe("HTTPS");
            for (const ref of listener.tls.certificateRefs) tlsSecrets.add(ref.name);
          }
          for (const rule of route.spec.rules) {
            for (const ref of rule.backendRefs) {
              expect(ref.name).toBe(service.metadata.name);
              const port = servicePort({ number: ref.port });
              expect(port, `${route.kind} → port ${String(ref.port)}`).toBeDefined();
              // gRPC needs HTTP/2 to the pod; the HTTPRoute uses the port every implementation supports.
              expect(port.appProtocol === H2C).toBe(route.kind === "GRPCRoute");
            }
          }
        }
        expect(routes.map((r) => r.kind).sort()).toEqual(["GRPCRoute", "HTTPRoute"]);
        const [grpcHost, apiHost] = ["GRPCRoute", "HTTPRoute"].map((k) => routes.find((r) => r.kind === k).spec.hostnames[0]);
        expect(grpcHost).not.toBe(apiHost);
        expect([...tlsSecrets]).toEqual(["connect-gateway-tls"]);
      });
    }
  });
}
