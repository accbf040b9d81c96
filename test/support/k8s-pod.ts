import { writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_FILE_VARIABLE, loadConfig, parseConfig } from "../../src/config/load-config.js";
import type { GatewayConfig } from "../../src/config/gateway-config.js";
import { findOne } from "./k8s-overlays.js";
import { podSpecOf, type KObject } from "./k8s-kustomize.js";

/** What the gateway's pod gets from a rendered overlay: its container, config file and timings. */
export interface GatewayPod {
  deployment: KObject;
  pod: Record<string, any>;
  container: Record<string, any>;
  /** The ConfigMap the config volume mounts (hashed name), and the key GATEWAY_CONFIG_FILE reads. */
  configMap: KObject;
  configKey: string;
  configText: string;
  /** Plain `value:` environment variables of the container (valueFrom is not used, and refused). */
  env: Record<string, string>;
  preStopSeconds: number;
  terminationGracePeriodSeconds: number;
}

export function gatewayPod(objects: KObject[]): GatewayPod {
  const deployment = findOne(objects, "Deployment", "connect-gateway");
  const pod = podSpecOf(deployment) as Record<string, any>;
  const container = (pod.containers as Record<string, any>[]).find((c) => c.name === "gateway");
  if (!container) throw new Error("no container named gateway");
  const env: Record<string, string> = {};
  for (const e of (container.env ?? []) as Array<{ name: string; value?: string; valueFrom?: unknown }>) {
    if (e.valueFrom !== undefined || typeof e.value !== "string") throw new Error(`env ${e.name}: only plain string values are supported here`);
    env[e.name] = e.value;
  }
  const configPath = env[CONFIG_FILE_VARIABLE];
  if (!configPath) throw new Error(`the container does not set ${CONFIG_FILE_VARIABLE}`);
  const mount = ((container.volumeMounts ?? []) as Array<{ name: string; mountPath: string; subPath?: string }>).find(
    (m) => posix.dirname(configPath) === m.mountPath.replace(/\/$/, ""),
  );
  if (!mount || mount.subPath) throw new Error(`${configPath} is not inside a whole-volume mount`);
  const volume = ((pod.volumes ?? []) as Array<{ name: string; configMap?: { name: string } }>).find((v) => v.name === mount.name);
  if (!volume?.configMap) throw new Error(`volume ${mount.name} is not a ConfigMap volume`);
  const configMap = findOne(objects, "ConfigMap", volume.configMap.name);
  const configKey = posix.basename(configPath);
  const configText = ((configMap.data ?? {}) as Record<string, string>)[configKey];
  if (configText === undefined) throw new Error(`ConfigMap ${volume.configMap.name} has no key ${configKey}`);
  const preStop = container.lifecycle?.preStop;
  if (!preStop?.sleep || typeof preStop.sleep.seconds !== "number") throw new Error("the container has no preStop sleep");
  return {
    deployment,
    pod,
    container,
    configMap,
    configKey,
    configText,
    env,
    preStopSeconds: preStop.sleep.seconds as number,
    terminationGracePeriodSeconds: (pod.terminationGracePeriodSeconds as number | undefined) ?? 30,
  };
}

/** The ConfigMap's file alone, validated by the gateway's own config schema. */
export function configFromConfigMap(p: GatewayPod): GatewayConfig {
  return parseConfig(parseYaml(p.configText) ?? {}, [], `ConfigMap ${String(p.configMap.metadata.name)}`);
}

/**
 * The configuration the pod's gateway ends up with: the ConfigMap's file (written to
 * `scratchDir`) plus the container's environment, through the gateway's own loader.
 */
export function effectiveConfig(p: GatewayPod, scratchDir: string): GatewayConfig {
  const file = join(scratchDir, `${String(p.configMap.metadata.name)}-${p.configKey}`);
  writeFileSync(file, p.configText);
  return loadConfig({ ...p.env, [CONFIG_FILE_VARIABLE]: file });
}

/** The container environment for a local gateway process that reads the ConfigMap's file from `scratchDir`. */
export function localProcessEnv(p: GatewayPod, scratchDir: string): Record<string, string> {
  const file = join(scratchDir, p.configKey);
  writeFileSync(file, p.configText);
  return { ...p.env, [CONFIG_FILE_VARIABLE]: file };
}

/** A container port named or numbered `port`, resolved to its number. */
export function resolveContainerPort(container: Record<string, any>, port: string | number): number | undefined {
  if (typeof port === "number") return ((container.ports ?? []) as Array<{ containerPort: number }>).some((p) => p.containerPort === port) ? port : undefined;
  return ((container.ports ?? []) as Array<{ name?: string; containerPort: number }>).find((p) => p.name === port)?.containerPort;
}
