/**
 * Offline validation of rendered Kubernetes objects, in three layers:
 *
 * 1. Strict fields: every field must be one the Kubernetes API defines, walked against the
 *    attribute map of each type in @kubernetes/client-node's models (API v1.34), or against
 *    the Gateway API field list for the CRDs. A misspelled or invented field is an error here,
 *    where a cluster would drop it silently (client-side apply) or reject it late.
 * 2. kubernetes-models' JSON schemas (API v1.27): wrong types, missing required fields, formats.
 *    They accept unknown fields, which is why layer 1 exists.
 * 3. A few of the API server's own validation rules that no schema expresses (names, label
 *    syntax, selector/template agreement, one handler per probe, quantities, ...).
 */
import * as models from "@kubernetes/client-node/dist/gen/models/all.js";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { gatewayApiKinds, type FieldType } from "./k8s-gateway-api-fields.js";
import { isPlainObject, podSpecOf, type KObject } from "./k8s-kustomize.js";

interface ModelClass {
  getAttributeTypeMap(): Array<{ name: string; baseName: string; type: string; format: string }>;
}

/** Built-in kinds this project may use: client-node model name and kubernetes-models class. */
const builtinKinds: Record<string, { model: string; schema: new (data: never) => { validate(): void } }> = {
  "v1/Namespace": { model: "V1Namespace", schema: Namespace },
  "v1/ServiceAccount": { model: "V1ServiceAccount", schema: ServiceAccount },
  "v1/ConfigMap": { model: "V1ConfigMap", schema: ConfigMap },
  "v1/Secret": { model: "V1Secret", schema: Secret },
  "v1/Service": { model: "V1Service", schema: Service },
  "apps/v1/Deployment": { model: "V1Deployment", schema: Deployment },
  "autoscaling/v2/HorizontalPodAutoscaler": { model: "V2HorizontalPodAutoscaler", schema: HorizontalPodAutoscaler },
  "policy/v1/PodDisruptionBudget": { model: "V1PodDisruptionBudget", schema: PodDisruptionBudget },
  "networking.k8s.io/v1/Ingress": { model: "V1Ingress", schema: Ingress },
  "networking.k8s.io/v1/NetworkPolicy": { model: "V1NetworkPolicy", schema: NetworkPolicy },
};

/** Every problem found in one object, each prefixed with Kind/name and the field path. */
export function validateObject(obj: KObject): string[] {
  const id = `${obj.kind}/${String(obj.metadata?.name)}`;
  const key = `${obj.apiVersion}/${obj.kind}`;
  const problems: string[] = [];
  const builtin = builtinKinds[key];
  const crd = gatewayApiKinds[key];
  if (!builtin && !crd) return [`${id}: no schema for ${key} (add it to k8s-validate.ts before using it)`];
  if ("status" in obj) problems.push("status: a manifest must not carry status");
  if (builtin) {
    checkModel(obj, builtin.model, "", problems);
    try {
      new builtin.schema(obj as never).validate();
    } catch (error) {
      const errors = (error as { errors?: Array<{ instancePath: string; message?: string }> }).errors;
      if (errors) for (const e of errors) problems.push(`${e.instancePath.slice(1).replace(/\//g, ".") || "(top)"}: ${e.message}`);
      else problems.push(String(error));
    }
  } else {
    checkField(obj, crd, "", problems);
  }
  apiServerRules(obj, problems);
  return problems.map((p) => `${id}: ${p}`);
}

// --- layer 1: strict fields ------------------------------------------------------------------

const modelIndex = models as unknown as Record<string, ModelClass | undefined>;

function checkModel(value: unknown, type: string, path: string, problems: string[], format = ""): void {
  const at = path || "(top)";
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return void problems.push(`${at}: expected a list`);
    value.forEach((item, i) => checkModel(item, array[1], `${path}[${i}]`, problems, format));
    return;
  }
  if (map) {
    if (!isPlainObject(value)) return void problems.push(`${at}: expected a map`);
    for (const [k, v] of Object.entries(value)) checkModel(v, map[1], `${path}.${k}`, problems, format);
    return;
  }
  switch (type) {
    case "string":
    case "Date":
    case "V1MicroTime":
      if (typeof value !== "string") problems.push(`${at}: expected a string, got ${JSON.stringify(value)}`);
      return;
    case "number":
      if (typeof value !== "number" || (format.startsWith("int") && !Number.isInteger(value))) {
        problems.push(`${at}: expected ${format.startsWith("int") ? "an integer" : "a number"}, got ${JSON.stringify(value)}`);
      }
      return;
    case "boolean":
      if (typeof value !== "boolean") problems.push(`${at}: expected true or false, got ${JSON.stringify(value)}`);
      return;
    case "IntOrString":
      if (typeof value !== "string" && !Number.isInteger(value)) problems.push(`${at}: expected an integer or a string`);
      return;
    case "any":
    case "object":
      return;
  }
  const model = modelIndex[type];
  if (!model?.getAttributeTypeMap) return void problems.push(`${at}: no model for type ${type}`);
  if (!isPlainObject(value)) return void problems.push(`${at}: expected an object (${type})`);
  const attributes = model.getAttributeTypeMap();
  for (const [k, v] of Object.entries(value)) {
    const attribute = attributes.find((a) => a.baseName === k);
    const here = path ? `${path}.${k}` : k;
    if (!attribute) {
      problems.push(`${here}: unknown field${suggest(k, attributes.map((a) => a.baseName))} (${type} has: ${attributes.map((a) => a.baseName).join(", ")})`);
      continue;
    }
    if (v === null) continue;
    checkModel(v, attribute.type, here, problems, attribute.format);
  }
}

function checkField(value: unknown, type: FieldType, path: string, problems: string[]): void {
  const at = path || "(top)";
  switch (type.t) {
    case "model":
      return checkModel(value, type.name, path, problems);
    case "string":
      if (typeof value !== "string") return void problems.push(`${at}: expected a string, got ${JSON.stringify(value)}`);
      if (type.enum && !type.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} is not one of ${type.enum.join(", ")}`);
      if (type.pattern && !type.pattern.test(value)) problems.push(`${at}: ${JSON.stringify(value)} does not match ${type.pattern}`);
      if (type.minLength !== undefined && value.length < type.minLength) problems.push(`${at}: shorter than ${type.minLength}`);
      if (type.maxLength !== undefined && value.length > type.maxLength) problems.push(`${at}: longer than ${type.maxLength}`);
      return;
    case "integer":
      if (!Number.isInteger(value)) return void problems.push(`${at}: expected an integer, got ${JSON.stringify(value)}`);
      if (type.min !== undefined && (value as number) < type.min) problems.push(`${at}: below ${type.min}`);
      if (type.max !== undefined && (value as number) > type.max) problems.push(`${at}: above ${type.max}`);
      return;
    case "array":
      if (!Array.isArray(value)) return void problems.push(`${at}: expected a list`);
      if (value.length > type.maxItems) problems.push(`${at}: more than ${type.maxItems} items`);
      if (type.minItems !== undefined && value.length < type.minItems) problems.push(`${at}: fewer than ${type.minItems} items`);
      value.forEach((item, i) => checkField(item, type.items, `${path}[${i}]`, problems));
      return;
    case "map":
      if (!isPlainObject(value)) return void problems.push(`${at}: expected a map`);
      if (type.maxProperties !== undefined && Object.keys(value).length > type.maxProperties) problems.push(`${at}: too many entries`);
      for (const [k, v] of Object.entries(value)) checkField(v, type.values, `${path}.${k}`, problems);
      return;
    case "object": {
      if (!isPlainObject(value)) return void problems.push(`${at}: expected an object`);
      for (const [k, v] of Object.entries(value)) {
        const here = path ? `${path}.${k}` : k;
        const field = type.fields[k];
        if (!field) {
          problems.push(`${here}: unknown field${suggest(k, Object.keys(type.fields))} (known: ${Object.keys(type.fields).join(", ")})`);
          continue;
        }
        checkField(v, field.type, here, problems);
      }
      for (const [k, field] of Object.entries(type.fields)) {
        if (field.required && value[k] === undefined) problems.push(`${path ? `${path}.` : ""}${k}: required`);
      }
      return;
    }
  }
}

function suggest(name: string, known: string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean ${best}?)` : "";
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

// --- layer 3: API server rules ---------------------------------------------------------------

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ianaServiceName = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const qualifiedName = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** Kinds whose names must be DNS-1123 labels (they become DNS names or label values). */
const labelNamedKinds = new Set(["Namespace", "Service"]);

function apiServerRules(obj: KObject, problems: string[]): void {
  const name = obj.metadata.name;
  if (typeof name !== "string" || name === "") problems.push("metadata.name: required");
  else if (labelNamedKinds.has(obj.kind) ? !dns1123Label.test(name) || name.length > 63 : !dns1123Subdomain.test(name) || name.length > 253) {
    problems.push(`metadata.name: ${JSON.stringify(name)} is not a valid ${labelNamedKinds.has(obj.kind) ? "DNS-1123 label" : "DNS-1123 subdomain"}`);
  }
  checkLabels(obj.metadata.labels, "metadata.labels", problems);
  checkAnnotationKeys(obj.metadata.annotations, problems);
  const spec = (obj.spec ?? {}) as Record<string, unknown>;
  switch (obj.kind) {
    case "Deployment":
      checkDeployment(obj, spec, problems);
      break;
    case "Service":
      checkServicePorts(spec, problems);
      break;
    case "HorizontalPodAutoscaler": {
      const min = (spec.minReplicas as number | undefined) ?? 1;
      if (min < 1) problems.push("spec.minReplicas: must be at least 1");
      if ((spec.maxReplicas as number) < min) problems.push("spec.maxReplicas: below minReplicas");
      for (const [i, metric] of ((spec.metrics as Record<string, unknown>[] | undefined) ?? []).entries()) {
        const sourceField = String(metric.type).charAt(0).toLowerCase() + String(metric.type).slice(1);
        const present = Object.keys(metric).filter((k) => k !== "type");
        if (present.length !== 1 || present[0] !== sourceField) problems.push(`spec.metrics[${i}]: type ${String(metric.type)} needs exactly the field ${sourceField}`);
      }
      break;
    }
    case "PodDisruptionBudget":
      if (("minAvailable" in spec) === ("maxUnavailable" in spec)) problems.push("spec: exactly one of minAvailable and maxUnavailable");
      break;
    case "Gateway": {
      const listeners = (spec.listeners as Record<string, unknown>[] | undefined) ?? [];
      const names = listeners.map((l) => l.name);
      if (new Set(names).size !== names.length) problems.push("spec.listeners: names must be unique");
      for (const [i, l] of listeners.entries()) {
        const tls = l.tls as Record<string, unknown> | undefined;
        if (l.protocol === "HTTPS" && (!tls || (((tls.mode as string | undefined) ?? "Terminate") === "Terminate" && !(tls.certificateRefs as unknown[] | undefined)?.length))) {
          problems.push(`spec.listeners[${i}]: an HTTPS listener that terminates TLS needs tls.certificateRefs`);
        }
        if ((l.protocol === "HTTP" || l.protocol === "TCP" || l.protocol === "UDP") && tls) problems.push(`spec.listeners[${i}]: tls is not allowed for ${String(l.protocol)}`);
      }
      break;
    }
    case "HTTPRoute":
    case "GRPCRoute":
      for (const [i, rule] of (((spec.rules as Record<string, unknown>[] | undefined) ?? []).entries())) {
        for (const [j, ref] of (((rule.backendRefs as Record<string, unknown>[] | undefined) ?? []).entries())) {
          if ((ref.kind ?? "Service") === "Service" && (ref.group ?? "") === "" && ref.port === undefined) {
            problems.push(`spec.rules[${i}].backendRefs[${j}]: a Service backend needs a port`);
          }
        }
      }
      break;
  }
}

function checkLabels(labels: unknown, path: string, problems: string[]): void {
  if (!isPlainObject(labels)) return;
  for (const [k, v] of Object.entries(labels)) {
    if (!qualifiedName.test(k) || k.split("/").pop()!.length > 63) problems.push(`${path}: key ${JSON.stringify(k)} is not a qualified name`);
    if (typeof v !== "string" || v.length > 63 || !labelValue.test(v)) problems.push(`${path}.${k}: ${JSON.stringify(v)} is not a valid label value`);
  }
}

function checkAnnotationKeys(annotations: unknown, problems: string[]): void {
  if (!isPlainObject(annotations)) return;
  for (const k of Object.keys(annotations)) if (!qualifiedName.test(k)) problems.push(`metadata.annotations: key ${JSON.stringify(k)} is not a qualified name`);
}

function checkDeployment(obj: KObject, spec: Record<string, unknown>, problems: string[]): void {
  const template = (spec.template ?? {}) as Record<string, unknown>;
  const templateLabels = ((template.metadata as Record<string, unknown> | undefined)?.labels ?? {}) as Record<string, string>;
  checkLabels(templateLabels, "spec.template.metadata.labels", problems);
  const matchLabels = ((spec.selector as Record<string, unknown> | undefined)?.matchLabels ?? {}) as Record<string, string>;
  if (Object.keys(matchLabels).length === 0) problems.push("spec.selector.matchLabels: empty (the Deployment would select every pod)");
  for (const [k, v] of Object.entries(matchLabels)) {
    if (templateLabels[k] !== v) problems.push(`spec.selector: does not match the template's labels (${k}=${v})`);
  }
  const rolling = ((spec.strategy as Record<string, unknown> | undefined)?.rollingUpdate ?? {}) as Record<string, unknown>;
  if (isZero(rolling.maxSurge) && isZero(rolling.maxUnavailable)) problems.push("spec.strategy.rollingUpdate: maxSurge and maxUnavailable may not both be 0");
  const pod = podSpecOf(obj) ?? {};
  const containers = (pod.containers as Record<string, unknown>[] | undefined) ?? [];
  if (containers.length === 0) problems.push("spec.template.spec.containers: at least one container");
  const names = containers.map((c) => c.name);
  if (new Set(names).size !== names.length) problems.push("spec.template.spec.containers: names must be unique");
  const volumeNames = new Set(((pod.volumes as Record<string, unknown>[] | undefined) ?? []).map((v) => v.name));
  for (const [i, c] of containers.entries()) {
    const at = `spec.template.spec.containers[${i}]`;
    if (typeof c.name !== "string" || !dns1123Label.test(c.name)) problems.push(`${at}.name: not a DNS-1123 label`);
    for (const [j, port] of (((c.ports as Record<string, unknown>[] | undefined) ?? []).entries())) {
      if (port.name !== undefined && (typeof port.name !== "string" || port.name.length > 15 || !ianaServiceName.test(port.name))) {
        problems.push(`${at}.ports[${j}].name: ${JSON.stringify(port.name)} is not an IANA service name (at most 15 characters)`);
      }
    }
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      if (c[probe] !== undefined) checkOneHandler(c[probe], ["exec", "httpGet", "tcpSocket", "grpc"], `${at}.${probe}`, problems);
    }
    const lifecycle = (c.lifecycle ?? {}) as Record<string, unknown>;
    for (const hook of ["preStop", "postStart"]) {
      if (lifecycle[hook] !== undefined) checkOneHandler(lifecycle[hook], ["exec", "httpGet", "tcpSocket", "sleep"], `${at}.lifecycle.${hook}`, problems);
    }
    for (const mount of (c.volumeMounts as Record<string, unknown>[] | undefined) ?? []) {
      if (!volumeNames.has(mount.name)) problems.push(`${at}.volumeMounts: no volume named ${String(mount.name)}`);
    }
    const resources = (c.resources ?? {}) as Record<string, Record<string, string> | undefined>;
    for (const kind of ["requests", "limits"] as const) {
      for (const [resource, quantity] of Object.entries(resources[kind] ?? {})) {
        if (parseQuantity(quantity) === undefined) problems.push(`${at}.resources.${kind}.${resource}: ${JSON.stringify(quantity)} is not a quantity`);
      }
    }
    for (const [resource, request] of Object.entries(resources.requests ?? {})) {
      const limit = resources.limits?.[resource];
      if (limit !== undefined && (parseQuantity(request) ?? 0) > (parseQuantity(limit) ?? Infinity)) {
        problems.push(`${at}.resources.requests.${resource}: above its limit`);
      }
    }
  }
}

function checkOneHandler(handler: unknown, kinds: string[], path: string, problems: string[]): void {
  const present = isPlainObject(handler) ? kinds.filter((k) => handler[k] !== undefined) : [];
  if (present.length !== 1) problems.push(`${path}: needs exactly one of ${kinds.join(", ")} (has ${present.join(", ") || "none"})`);
}

function checkServicePorts(spec: Record<string, unknown>, problems: string[]): void {
  const ports = (spec.ports as Record<string, unknown>[] | undefined) ?? [];
  if (ports.length > 1 && ports.some((p) => p.name === undefined)) problems.push("spec.ports: every port needs a name when there are several");
  const names = ports.map((p) => p.name).filter((n) => n !== undefined);
  if (new Set(names).size !== names.length) problems.push("spec.ports: names must be unique");
  for (const [i, p] of ports.entries()) {
    if (typeof p.name === "string" && !dns1123Label.test(p.name)) problems.push(`spec.ports[${i}].name: not a DNS-1123 label`);
    if (typeof p.targetPort === "string" && (p.targetPort.length > 15 || !ianaServiceName.test(p.targetPort))) {
      problems.push(`spec.ports[${i}].targetPort: ${JSON.stringify(p.targetPort)} is not an IANA service name`);
    }
  }
}

function isZero(value: unknown): boolean {
  return value === 0 || value === "0%" || value === "0";
}

const quantitySuffixes: Record<string, number> = {
  "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes quantity ("250m", "512Mi", "1") as a number, or undefined when it is not one. */
export function parseQuantity(text: unknown): number | undefined {
  if (typeof text !== "string" && typeof text !== "number") return undefined;
  const match = /^([+-]?(?:\d+\.?\d*|\.\d+))(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(String(text));
  if (!match) return undefined;
  return Number(match[1]) * quantitySuffixes[match[2] ?? ""];
}
