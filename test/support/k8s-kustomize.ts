/**
 * An offline renderer for the subset of kustomize that k8s/ uses, so every overlay can be
 * rendered and validated without a cluster or a kustomize binary.
 *
 * Supported: resources (files and directories), components, namespace, labels (pairs,
 * includeTemplates), patches (strategic merge and JSON 6902, inline or from a file, with or
 * without a target), configMapGenerator (files and literals, with the content-hash suffix),
 * images, replicas, replacements, and local-config resources. Anything else is an error, never
 * silently ignored: a manifest the renderer cannot read is a manifest nobody checked.
 *
 * The order of operations is kustomize's: resources, then components, then generators, then
 * transformers (patches, namespace, labels, replicas, images, replacements); hash suffixes,
 * the references to the renamed ConfigMaps and dropping local-config resources come last, once,
 * at the top level. The output is in kustomize's "legacy" order. A test renders every
 * kustomization here with `kubectl kustomize` as well, when it is installed, and demands the
 * same objects in the same order.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, isAbsolute, join, relative, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";

/** One Kubernetes object as plain JSON. */
export type KObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: Record<string, unknown> };

export interface RenderOptions {
  /** Use these components (paths relative to the kustomization) instead of the file's own list. */
  components?: string[];
}

/** Render the kustomization in `dir` (an overlay, the base or a component-using variant). */
export function renderKustomization(dir: string, options: RenderOptions = {}): KObject[] {
  const root = resolve(dir);
  const kustomization = loadKustomization(root, "Kustomization");
  if (options.components) kustomization.components = options.components;
  const resources = accumulate(root, kustomization, []);
  addHashSuffixes(resources);
  const kept = resources.filter((r) => annotationsOf(r.obj)["config.kubernetes.io/local-config"] !== "true");
  return legacySort(kept.map((r) => r.obj));
}

/** Parse YAML documents the way the API server's clients read them, refusing ambiguous scalars. */
export function parseManifests(text: string, source: string): KObject[] {
  const objects: KObject[] = [];
  for (const [i, value] of readYamlDocuments(text, source).entries()) {
    if (value === null || value === undefined) continue;
    if (!isPlainObject(value) || typeof value.kind !== "string" || typeof value.apiVersion !== "string") {
      throw new Error(`${source}: document ${i + 1} is not a Kubernetes object (apiVersion and kind)`);
    }
    if (!isPlainObject(value.metadata)) value.metadata = {};
    objects.push(value as KObject);
  }
  return objects;
}

/**
 * Every document of a YAML file as JSON. kustomize reads YAML 1.2, but `kubectl apply -f` and
 * many other tools read YAML 1.1, where an unquoted on/yes/no/off is a boolean and 0755 an octal
 * number: a value that means different things to different readers must be quoted.
 */
export function readYamlDocuments(text: string, source: string): unknown[] {
  const docs12 = parseAllDocuments(text);
  const docs11 = parseAllDocuments(text, { version: "1.1" });
  return docs12.map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    const where = firstDifference(value, docs11[i]?.toJS() as unknown, "");
    if (where !== undefined) throw new Error(`${source}: the value at ${where || "(top)"} reads differently in YAML 1.1 and 1.2; quote it`);
    return value;
  });
}

// ---------------------------------------------------------------------------------------------

interface Resource {
  obj: KObject;
  /** Made by a generator: gets the content-hash suffix at the end. */
  hashed: boolean;
}

type Kind = "Kustomization" | "Component";

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  components?: string[];
  namespace?: string;
  labels?: Array<{ pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }>;
  patches?: Array<{ path?: string; patch?: string; target?: Selector; options?: unknown }>;
  configMapGenerator?: Array<{ name: string; files?: string[]; literals?: string[]; behavior?: string; options?: GeneratorOptions }>;
  images?: Array<{ name: string; newName?: string; newTag?: string; digest?: string }>;
  replicas?: Array<{ name: string; count: number }>;
  replacements?: Replacement[];
}

interface GeneratorOptions {
  disableNameSuffixHash?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface Selector {
  group?: string;
  version?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  labelSelector?: string;
  annotationSelector?: string;
}

interface Replacement {
  source: Selector & { fieldPath?: string; options?: Record<string, unknown> };
  targets: Array<{ select: Selector; reject?: Selector[]; fieldPaths: string[]; options?: { create?: boolean } }>;
}

const supportedFields: Record<Kind, string[]> = {
  Kustomization: [
    "apiVersion", "kind", "resources", "components", "namespace", "labels", "patches",
    "configMapGenerator", "images", "replicas", "replacements",
  ],
  Component: ["apiVersion", "kind", "resources", "labels", "patches", "configMapGenerator", "images", "replicas", "replacements"],
};

function loadKustomization(dir: string, expected: Kind): Kustomization {
  const names = ["kustomization.yaml", "kustomization.yml", "Kustomization"].filter((n) => existsSync(join(dir, n)));
  if (names.length !== 1) throw new Error(`${dir}: expected exactly one kustomization file, found ${names.length}`);
  const file = join(dir, names[0]);
  const docs = readYamlDocuments(readFileSync(file, "utf8"), file);
  if (docs.length !== 1 || !isPlainObject(docs[0])) throw new Error(`${file}: not a single YAML mapping`);
  const k = docs[0] as Kustomization & Record<string, unknown>;
  const kind = (k.kind ?? "Kustomization") as string;
  if (kind !== expected) throw new Error(`${file}: kind ${kind}, expected ${expected}`);
  const apiVersion = k.apiVersion ?? (kind === "Component" ? undefined : "kustomize.config.k8s.io/v1beta1");
  const wantVersion = kind === "Component" ? "kustomize.config.k8s.io/v1alpha1" : "kustomize.config.k8s.io/v1beta1";
  if (apiVersion !== wantVersion) throw new Error(`${file}: apiVersion ${String(apiVersion)}, expected ${wantVersion}`);
  for (const key of Object.keys(k)) {
    if (!supportedFields[expected].includes(key)) throw new Error(`${file}: field "${key}" is not supported by this renderer`);
  }
  return k;
}

function accumulate(dir: string, k: Kustomization, acc: Resource[]): Resource[] {
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${dir}: resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) {
      const sub = accumulate(path, loadKustomization(path, "Kustomization"), []);
      for (const r of sub) addResource(acc, r, entry);
    } else {
      ensureInside(dir, path, "resource");
      for (const obj of parseManifests(readFileSync(path, "utf8"), path)) addResource(acc, { obj, hashed: false }, entry);
    }
  }
  for (const entry of k.components ?? []) {
    const path = resolve(dir, entry);
    accumulate(path, loadKustomization(path, "Component"), acc);
  }
  for (const generator of k.configMapGenerator ?? []) addResource(acc, generateConfigMap(dir, generator), "configMapGenerator");
  for (const patch of k.patches ?? []) applyPatch(dir, patch, acc);
  if (k.namespace) setNamespace(acc, k.namespace);
  for (const label of k.labels ?? []) addLabels(acc, label);
  for (const replica of k.replicas ?? []) setReplicas(acc, replica);
  for (const image of k.images ?? []) setImages(acc, image);
  for (const replacement of k.replacements ?? []) replace(acc, replacement);
  return acc;
}

function addResource(acc: Resource[], r: Resource, origin: string): void {
  const id = resourceId(r.obj);
  if (acc.some((other) => resourceId(other.obj) === id)) throw new Error(`${origin}: ${id} is defined twice`);
  acc.push(r);
}

function resourceId(obj: KObject): string {
  return `${groupOf(obj.apiVersion)}/${obj.kind}/${String(obj.metadata.namespace ?? "")}/${String(obj.metadata.name)}`;
}

function ensureInside(root: string, path: string, what: string): void {
  const rel = relative(root, path);
  if (rel.startsWith("..") || isAbsolute(rel)) {
    throw new Error(`${what} ${path} is outside ${root} (kustomize refuses files outside a kustomization's directory)`);
  }
}

// --- generators ------------------------------------------------------------------------------

function generateConfigMap(dir: string, g: NonNullable<Kustomization["configMapGenerator"]>[number]): Resource {
  if (g.behavior !== undefined && g.behavior !== "create") throw new Error(`configMapGenerator ${g.name}: behavior ${g.behavior} is not supported`);
  for (const key of Object.keys(g)) {
    if (!["name", "files", "literals", "behavior", "options"].includes(key)) throw new Error(`configMapGenerator ${g.name}: field ${key} is not supported`);
  }
  const data: Record<string, string> = {};
  for (const entry of g.files ?? []) {
    const [key, file] = entry.includes("=") ? (entry.split("=", 2) as [string, string]) : [basename(entry), entry];
    const path = resolve(dir, file);
    ensureInside(dir, path, "configMapGenerator file");
    if (key in data) throw new Error(`configMapGenerator ${g.name}: key ${key} twice`);
    data[key] = readFileSync(path, "utf8");
  }
  for (const literal of g.literals ?? []) {
    const at = literal.indexOf("=");
    if (at <= 0) throw new Error(`configMapGenerator ${g.name}: literal ${literal} is not KEY=VALUE`);
    data[literal.slice(0, at)] = literal.slice(at + 1);
  }
  const metadata: Record<string, unknown> = { name: g.name };
  if (g.options?.labels) metadata.labels = { ...g.options.labels };
  if (g.options?.annotations) metadata.annotations = { ...g.options.annotations };
  return { obj: { apiVersion: "v1", kind: "ConfigMap", metadata, data }, hashed: !g.options?.disableNameSuffixHash };
}

/** kustomize's (and kubectl's) ConfigMap hash: sha256 of a canonical JSON form, 10 characters, vowels swapped out. */
export function configMapHash(data: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.keys(data).sort().map((k) => [k, data[k]]));
  // Go's encoding/json, which kustomize uses, escapes <, > and & and the two JS line separators.
  const json = JSON.stringify({ data: sorted, kind: "ConfigMap", name: "" }).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  const hex = createHash("sha256").update(json).digest("hex");
  const swap: Record<string, string> = { "0": "g", "1": "h", "3": "k", a: "m", e: "t" };
  return [...hex.slice(0, 10)].map((c) => swap[c] ?? c).join("");
}

function addHashSuffixes(acc: Resource[]): void {
  for (const r of acc) {
    if (!r.hashed) continue;
    const oldName = String(r.obj.metadata.name);
    const newName = `${oldName}-${configMapHash((r.obj.data ?? {}) as Record<string, string>)}`;
    r.obj.metadata.name = newName;
    const namespace = r.obj.metadata.namespace;
    for (const other of acc) {
      if (other.obj.metadata.namespace !== namespace) continue;
      const pod = podSpecOf(other.obj);
      if (pod) renameConfigMapReferences(pod, oldName, newName);
    }
  }
}

function renameConfigMapReferences(pod: Record<string, unknown>, from: string, to: string): void {
  const rename = (ref: unknown) => {
    if (isPlainObject(ref) && ref.name === from) ref.name = to;
  };
  for (const volume of asArray(pod.volumes)) {
    rename(volume.configMap);
    for (const source of asArray(isPlainObject(volume.projected) ? volume.projected.sources : undefined)) rename(source.configMap);
  }
  for (const container of [...asArray(pod.containers), ...asArray(pod.initContainers)]) {
    for (const env of asArray(container.env)) rename(isPlainObject(env.valueFrom) ? env.valueFrom.configMapKeyRef : undefined);
    for (const envFrom of asArray(container.envFrom)) rename(envFrom.configMapRef);
  }
}

// --- patches ---------------------------------------------------------------------------------

function applyPatch(dir: string, p: NonNullable<Kustomization["patches"]>[number], acc: Resource[]): void {
  if (p.options !== undefined) throw new Error("patch options are not supported");
  if ((p.path === undefined) === (p.patch === undefined)) throw new Error("a patch needs exactly one of path and patch");
  let text = p.patch;
  if (p.path !== undefined) {
    const file = resolve(dir, p.path);
    ensureInside(dir, file, "patch");
    text = readFileSync(file, "utf8");
  }
  const docs = readYamlDocuments(text!, `patch ${p.path ?? "(inline)"}`);
  if (docs.length !== 1) throw new Error(`patch ${p.path ?? "(inline)"}: not a single YAML document`);
  const content = docs[0];
  if (Array.isArray(content)) {
    if (!p.target) throw new Error("a JSON 6902 patch needs a target");
    for (const r of selectAll(acc, p.target)) applyJson6902(r.obj, content as JsonOp[]);
    return;
  }
  if (!isPlainObject(content)) throw new Error(`patch ${p.path ?? "(inline)"}: neither a strategic merge patch nor a JSON 6902 list`);
  const targets = p.target ? selectAll(acc, p.target) : [findPatchTarget(acc, content)];
  for (const target of targets) {
    if (content.$patch === "delete") {
      acc.splice(acc.indexOf(target), 1);
      continue;
    }
    const patch = { ...content };
    if (p.target) {
      // With a target, the patch's own identity is only a hint; kustomize keeps the target's.
      delete patch.apiVersion;
      delete patch.kind;
      if (isPlainObject(patch.metadata)) {
        patch.metadata = { ...patch.metadata };
        delete (patch.metadata as Record<string, unknown>).name;
        delete (patch.metadata as Record<string, unknown>).namespace;
      }
    }
    target.obj = strategicMerge(target.obj, patch, []) as KObject;
  }
}

function findPatchTarget(acc: Resource[], patch: Record<string, unknown>): Resource {
  const metadata = isPlainObject(patch.metadata) ? patch.metadata : {};
  const selector: Selector = { kind: String(patch.kind), name: String(metadata.name) };
  if (typeof patch.apiVersion === "string") selector.group = groupOf(patch.apiVersion);
  if (typeof metadata.namespace === "string") selector.namespace = metadata.namespace;
  const found = acc.filter((r) => matches(r.obj, selector, true));
  if (found.length !== 1) throw new Error(`patch for ${selector.kind} ${selector.name}: ${found.length} matching resources, expected 1`);
  return found[0];
}

/** Merge keys of the lists this project patches; any other list is replaced whole, as in kustomize. */
function mergeKeyFor(path: string[], items: unknown[]): string | undefined {
  const field = path[path.length - 1];
  switch (field) {
    case "containers":
    case "initContainers":
    case "env":
    case "volumes":
    case "imagePullSecrets":
      return "name";
    case "volumeMounts":
      return "mountPath";
    case "ports":
      return items.every((i) => isPlainObject(i) && "containerPort" in i) ? "containerPort" : "port";
    default:
      return undefined;
  }
}

function strategicMerge(target: unknown, patch: unknown, path: string[]): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  if (!isPlainObject(target)) target = {};
  const result: Record<string, unknown> = { ...(target as Record<string, unknown>) };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) throw new Error(`strategic merge directive ${key} at ${path.join(".")} is not supported`);
    if (value === null) {
      delete result[key];
      continue;
    }
    const current = result[key];
    if (Array.isArray(value)) {
      const mergeKey = mergeKeyFor([...path, key], value);
      result[key] = mergeKey && Array.isArray(current) ? mergeList(current, value, mergeKey, [...path, key]) : structuredClone(value);
    } else if (isPlainObject(value)) {
      result[key] = strategicMerge(current, value, [...path, key]);
    } else {
      result[key] = value;
    }
  }
  return result;
}

/** kustomize's order: the patch's items first (merged with their originals), then the untouched originals. */
function mergeList(current: unknown[], patch: unknown[], key: string, path: string[]): unknown[] {
  const merged: unknown[] = [];
  const used = new Set<unknown>();
  for (const item of patch) {
    if (!isPlainObject(item) || !(key in item)) throw new Error(`${path.join(".")}: a patch item lacks the merge key ${key}`);
    if ("$patch" in item) throw new Error(`${path.join(".")}: $patch in list items is not supported`);
    const original = current.find((c) => isPlainObject(c) && c[key] === item[key]);
    if (original !== undefined) used.add(original);
    merged.push(strategicMerge(original ?? {}, item, path));
  }
  for (const item of current) if (!used.has(item)) merged.push(item);
  return merged;
}

interface JsonOp {
  op: string;
  path: string;
  value?: unknown;
}

function applyJson6902(obj: KObject, ops: JsonOp[]): void {
  for (const op of ops) {
    if (!["add", "remove", "replace", "test"].includes(op.op)) throw new Error(`JSON patch op ${op.op} is not supported`);
    const tokens = op.path.split("/").slice(1).map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
    if (op.path[0] !== "/" || tokens.length === 0) throw new Error(`JSON patch path ${op.path} is not a pointer into the object`);
    const last = tokens.pop()!;
    let parent: unknown = obj;
    for (const token of tokens) {
      parent = Array.isArray(parent) ? parent[arrayIndex(parent, token, false, op.path)] : isPlainObject(parent) ? parent[token] : undefined;
      if (parent === undefined) throw new Error(`JSON patch path ${op.path} does not exist`);
    }
    if (Array.isArray(parent)) {
      const index = arrayIndex(parent, last, op.op === "add", op.path);
      if (op.op === "add") parent.splice(index, 0, structuredClone(op.value));
      else if (op.op === "remove") parent.splice(index, 1);
      else if (op.op === "replace") parent[index] = structuredClone(op.value);
      else if (!isDeepStrictEqual(parent[index], op.value)) throw new Error(`JSON patch test failed at ${op.path}`);
    } else if (isPlainObject(parent)) {
      if (op.op !== "add" && !(last in parent)) throw new Error(`JSON patch path ${op.path} does not exist`);
      if (op.op === "remove") delete parent[last];
      else if (op.op === "test") {
        if (!isDeepStrictEqual(parent[last], op.value)) throw new Error(`JSON patch test failed at ${op.path}`);
      } else parent[last] = structuredClone(op.value);
    } else {
      throw new Error(`JSON patch path ${op.path} does not exist`);
    }
  }
}

function arrayIndex(list: unknown[], token: string, forAdd: boolean, path: string): number {
  if (forAdd && token === "-") return list.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new Error(`JSON patch path ${path}: ${token} is not an index`);
  const index = Number(token);
  if (index > list.length || (!forAdd && index === list.length)) throw new Error(`JSON patch path ${path}: index ${index} out of range`);
  return index;
}

// --- transformers ----------------------------------------------------------------------------

const clusterScoped = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "StorageClass",
  "IngressClass", "GatewayClass", "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
  "APIService", "Node", "RuntimeClass", "VolumeAttachment", "CSIDriver",
]);

function setNamespace(acc: Resource[], namespace: string): void {
  for (const r of acc) {
    // kustomize gives a Namespace object the overlay's namespace as its name.
    if (r.obj.kind === "Namespace") r.obj.metadata.name = namespace;
    else if (!clusterScoped.has(r.obj.kind)) r.obj.metadata.namespace = namespace;
  }
}

function addLabels(acc: Resource[], entry: NonNullable<Kustomization["labels"]>[number]): void {
  for (const key of Object.keys(entry)) {
    if (!["pairs", "includeSelectors", "includeTemplates"].includes(key)) throw new Error(`labels: field ${key} is not supported`);
  }
  // Selectors are immutable on a Deployment: adding to them would make an overlay unappliable
  // over an earlier version, so this renderer does not offer it.
  if (entry.includeSelectors) throw new Error("labels: includeSelectors is not supported");
  for (const r of acc) {
    r.obj.metadata.labels = { ...((r.obj.metadata.labels as Record<string, string>) ?? {}), ...entry.pairs };
    if (entry.includeTemplates) {
      const template = podTemplateOf(r.obj);
      if (template) {
        const metadata = (template.metadata ??= {}) as Record<string, unknown>;
        metadata.labels = { ...((metadata.labels as Record<string, string>) ?? {}), ...entry.pairs };
      }
    }
  }
}

function setReplicas(acc: Resource[], entry: { name: string; count: number }): void {
  const found = acc.filter((r) => ["Deployment", "ReplicaSet", "StatefulSet"].includes(r.obj.kind) && r.obj.metadata.name === entry.name);
  if (found.length === 0) throw new Error(`replicas: no workload named ${entry.name}`);
  for (const r of found) (r.obj.spec as Record<string, unknown>).replicas = entry.count;
}

function setImages(acc: Resource[], entry: NonNullable<Kustomization["images"]>[number]): void {
  for (const r of acc) {
    const pod = podSpecOf(r.obj);
    if (!pod) continue;
    for (const container of [...asArray(pod.containers), ...asArray(pod.initContainers)]) {
      if (typeof container.image !== "string") continue;
      const image = splitImage(container.image);
      if (image.name !== entry.name) continue;
      const name = entry.newName ?? image.name;
      const suffix = entry.digest ? `@${entry.digest}` : entry.newTag ? `:${entry.newTag}` : image.suffix;
      container.image = name + suffix;
    }
  }
}

/** Name and ":tag" / "@digest" suffix of an image reference (a registry port is not a tag). */
export function splitImage(image: string): { name: string; suffix: string; tag?: string; digest?: string } {
  const at = image.indexOf("@");
  if (at >= 0) return { name: image.slice(0, at), suffix: image.slice(at), digest: image.slice(at + 1) };
  const colon = image.lastIndexOf(":");
  if (colon > image.lastIndexOf("/")) return { name: image.slice(0, colon), suffix: image.slice(colon), tag: image.slice(colon + 1) };
  return { name: image, suffix: "" };
}

function replace(acc: Resource[], r: Replacement): void {
  const { fieldPath = "metadata.name", options, ...selector } = r.source;
  if (options !== undefined) throw new Error("replacements: source options are not supported");
  const sources = acc.filter((res) => matches(res.obj, selector, false));
  if (sources.length !== 1) throw new Error(`replacements: ${sources.length} sources match ${JSON.stringify(selector)}, expected 1`);
  const value = getField(sources[0].obj, fieldPath);
  if (value === undefined) throw new Error(`replacements: the source has no ${fieldPath}`);
  for (const target of r.targets) {
    for (const key of Object.keys(target)) {
      if (!["select", "reject", "fieldPaths", "options"].includes(key)) throw new Error(`replacements: target field ${key} is not supported`);
    }
    const selected = acc.filter(
      (res) => matches(res.obj, target.select, false) && !(target.reject ?? []).some((rej) => matches(res.obj, rej, false)),
    );
    for (const res of selected) {
      for (const path of target.fieldPaths) setField(res.obj, path, structuredClone(value), target.options?.create ?? false);
    }
  }
}

/** kustomize field paths: dot-separated; a number indexes a list, [key=value] finds an element. */
function parseFieldPath(path: string): string[] {
  const segments: string[] = [];
  let current = "";
  let depth = 0;
  for (const c of path) {
    if (c === "[") depth++;
    if (c === "]") depth--;
    if (c === "." && depth === 0) {
      segments.push(current);
      current = "";
    } else current += c;
  }
  segments.push(current);
  if (segments.some((s) => s === "")) throw new Error(`field path ${path} has an empty segment`);
  return segments;
}

function step(node: unknown, segment: string): { container: Record<string, unknown> | unknown[]; key: string | number } | undefined {
  const selector = /^\[([^=\]]+)=([^\]]*)\]$/.exec(segment);
  if (Array.isArray(node)) {
    if (selector) {
      const index = node.findIndex((item) => isPlainObject(item) && String(item[selector[1]]) === selector[2]);
      return index < 0 ? undefined : { container: node, key: index };
    }
    if (!/^\d+$/.test(segment)) return undefined;
    return { container: node, key: Number(segment) };
  }
  if (isPlainObject(node) && !selector) return { container: node, key: segment };
  return undefined;
}

function getField(obj: unknown, path: string): unknown {
  let node = obj;
  for (const segment of parseFieldPath(path)) {
    const at = step(node, segment);
    if (!at) return undefined;
    node = (at.container as Record<string | number, unknown>)[at.key];
  }
  return node;
}

function setField(obj: unknown, path: string, value: unknown, create: boolean): void {
  const segments = parseFieldPath(path);
  let node = obj;
  for (const [i, segment] of segments.entries()) {
    const at = step(node, segment);
    if (!at) throw new Error(`replacements: cannot follow ${path} at ${segment}`);
    const holder = at.container as Record<string | number, unknown>;
    if (i === segments.length - 1) {
      if (holder[at.key] === undefined && !create) throw new Error(`replacements: ${path} does not exist (and create is off)`);
      holder[at.key] = value;
      return;
    }
    if (holder[at.key] === undefined) {
      if (!create) throw new Error(`replacements: ${path} does not exist (and create is off)`);
      holder[at.key] = /^\d+$/.test(segments[i + 1]) ? [] : {};
    }
    node = holder[at.key];
  }
}

function matches(obj: KObject, s: Selector, exactName: boolean): boolean {
  for (const key of Object.keys(s)) {
    if (!["group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"].includes(key)) {
      throw new Error(`selector field ${key} is not supported`);
    }
  }
  if (s.annotationSelector !== undefined) throw new Error("annotationSelector is not supported");
  const [group, version] = splitApiVersion(obj.apiVersion);
  const anchored = (pattern: string, value: string) => (exactName ? pattern === value : new RegExp(`^(?:${pattern})$`).test(value));
  if (s.group !== undefined && s.group !== group) return false;
  if (s.version !== undefined && s.version !== version) return false;
  if (s.kind !== undefined && !anchored(s.kind, obj.kind)) return false;
  if (s.name !== undefined && !anchored(s.name, String(obj.metadata.name))) return false;
  if (s.namespace !== undefined && s.namespace !== (obj.metadata.namespace ?? "")) return false;
  if (s.labelSelector !== undefined) {
    const labels = (obj.metadata.labels ?? {}) as Record<string, string>;
    for (const term of s.labelSelector.split(",")) {
      const [k, v] = term.split("=").map((t) => t.trim());
      if (v === undefined || !/^[^!()]+$/.test(k)) throw new Error(`labelSelector ${s.labelSelector}: only k=v terms are supported`);
      if (labels[k] !== v) return false;
    }
  }
  return true;
}

function selectAll(acc: Resource[], s: Selector): Resource[] {
  return acc.filter((r) => matches(r.obj, s, false));
}

// --- ordering --------------------------------------------------------------------------------

const orderFirst = [
  "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount", "PodSecurityPolicy",
  "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service",
  "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment", "StatefulSet",
  "CronJob", "PodDisruptionBudget",
];
const orderLast = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/** kustomize's legacy order: known kinds first and last in a fixed order, the rest by group/version/kind, then name. */
function legacySort(objects: KObject[]): KObject[] {
  const rank = (kind: string) => {
    const first = orderFirst.indexOf(kind);
    if (first >= 0) return first - orderFirst.length;
    const last = orderLast.indexOf(kind);
    return last >= 0 ? last + 1 : 0;
  };
  const gvk = (o: KObject) => {
    const [group, version] = splitApiVersion(o.apiVersion);
    return `${group || "~G"}_${version || "~V"}_${o.kind}`;
  };
  const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...objects].sort(
    (a, b) =>
      rank(a.kind) - rank(b.kind) ||
      compare(gvk(a), gvk(b)) ||
      compare(String(a.metadata.namespace ?? ""), String(b.metadata.namespace ?? "")) ||
      compare(String(a.metadata.name), String(b.metadata.name)),
  );
}

// --- helpers ---------------------------------------------------------------------------------

export function splitApiVersion(apiVersion: string): [group: string, version: string] {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? ["", apiVersion] : [apiVersion.slice(0, slash), apiVersion.slice(slash + 1)];
}

function groupOf(apiVersion: string): string {
  return splitApiVersion(apiVersion)[0];
}

/** The pod template of a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob). */
export function podTemplateOf(obj: KObject): Record<string, unknown> | undefined {
  const spec = obj.spec;
  if (!isPlainObject(spec)) return undefined;
  if (obj.kind === "CronJob") {
    const jobSpec = isPlainObject(spec.jobTemplate) && isPlainObject(spec.jobTemplate.spec) ? spec.jobTemplate.spec : undefined;
    return jobSpec && isPlainObject(jobSpec.template) ? jobSpec.template : undefined;
  }
  if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind) && isPlainObject(spec.template)) return spec.template;
  return undefined;
}

/** The pod spec of a Pod or of a workload's pod template. */
export function podSpecOf(obj: KObject): Record<string, unknown> | undefined {
  if (obj.kind === "Pod") return isPlainObject(obj.spec) ? obj.spec : undefined;
  const template = podTemplateOf(obj);
  return template && isPlainObject(template.spec) ? template.spec : undefined;
}

function annotationsOf(obj: KObject): Record<string, string> {
  return (obj.metadata.annotations ?? {}) as Record<string, string>;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isPlainObject) : [];
}

function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return path;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      const d = firstDifference(a[key], b[key], path ? `${path}.${key}` : key);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return isDeepStrictEqual(a, b) ? undefined : path;
}
