/**
 * Debian's nginx playing an ingress-nginx controller: the nginx configuration is generated from
 * the rendered Ingress objects (host, backend-protocol, proxy-body-size, proxy-buffering and
 * timeout annotations, Service port) the way the controller would, with its defaults for
 * upstream keep-alive and retries, and TLS at the edge. Endpoints are given by the test;
 * changing them reloads nginx, as the controller applies endpoint changes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { KObject } from "./k8s-kustomize.js";
import { requireTool } from "./k8s-overlays.js";

/** Addresses ("127.0.0.1:port") of the ready endpoints behind each Service port, keyed "service/portName". */
export type Endpoints = Map<string, string[]>;

export interface IngressNginxOptions {
  ingresses: KObject[];
  services: KObject[];
  endpoints: Endpoints;
  listenPort: number;
  certFile: string;
  keyFile: string;
  dir: string;
  /**
   * ingress-nginx's `upstream-keepalive-time` (controller ConfigMap; default 1h): how long nginx
   * reuses one upstream connection before closing it itself.
   */
  upstreamKeepaliveTime?: string;
}

const annotation = (ingress: KObject, name: string): string | undefined =>
  ((ingress.metadata.annotations ?? {}) as Record<string, string>)[`nginx.ingress.kubernetes.io/${name}`];

/** nginx.conf for the given Ingress objects and endpoints. */
export function ingressNginxConfig(o: IngressNginxOptions): string {
  const upstreams = new Map<string, string[]>();
  const servers: string[] = [];
  for (const ingress of o.ingresses) {
    const spec = ingress.spec as { rules: Array<{ host: string; http: { paths: Array<{ path: string; pathType: string; backend: { service: { name: string; port: { name?: string; number?: number } } } }> } }> };
    const grpc = annotation(ingress, "backend-protocol") === "GRPC";
    for (const rule of spec.rules) {
      const locations = rule.http.paths.map((path) => {
        if (path.pathType !== "Prefix" || path.path !== "/") throw new Error(`only "/" Prefix paths are emulated, not ${path.path} ${path.pathType}`);
        const { name, port } = path.backend.service;
        const service = o.services.find((s) => s.metadata.name === name);
        const servicePort = ((service?.spec as { ports: Array<{ name: string; port: number }> } | undefined)?.ports ?? []).find(
          (p) => (port.name !== undefined ? p.name === port.name : p.port === port.number),
        );
        if (!servicePort) throw new Error(`Ingress ${String(ingress.metadata.name)}: Service ${name} has no port ${JSON.stringify(port)}`);
        const upstream = `upstream_${name}_${servicePort.name}`.replace(/[^A-Za-z0-9_]/g, "_");
        upstreams.set(upstream, o.endpoints.get(`${name}/${servicePort.name}`) ?? []);
        const bodySize = annotation(ingress, "proxy-body-size") ?? "1m";
        const readTimeout = `${annotation(ingress, "proxy-read-timeout") ?? "60"}s`;
        const sendTimeout = `${annotation(ingress, "proxy-send-timeout") ?? "60"}s`;
        // ingress-nginx's defaults: retry on connection errors and timeouts, at most 3 tries.
        return grpc
          ? `
      location / {
        client_max_body_size ${bodySize};
        grpc_pass grpc://${upstream};
        grpc_set_header Host $host;
        grpc_read_timeout ${readTimeout};
        grpc_send_timeout ${sendTimeout};
        grpc_next_upstream error timeout;
        grpc_next_upstream_tries 3;
      }`
          : `
      location / {
        client_max_body_size ${bodySize};
        proxy_pass http://${upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_buffering ${annotation(ingress, "proxy-buffering") ?? "off"};
        proxy_read_timeout ${readTimeout};
        proxy_send_timeout ${sendTimeout};
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 3;
      }`;
      });
      servers.push(`
    server {
      listen 127.0.0.1:${o.listenPort} ssl http2;
      server_name ${rule.host};
      ssl_certificate ${o.certFile};
      ssl_certificate_key ${o.keyFile};
      ${locations.join("\n")}
    }`);
    }
  }
  const upstreamBlocks = [...upstreams].map(([name, addresses]) => {
    // An upstream without endpoints: ingress-nginx answers 503; an unused loopback port stands in.
    const servers = addresses.length > 0 ? addresses.map((a) => `server ${a};`) : ["server 127.0.0.1:9 down;"];
    return `
    upstream ${name} {
      ${servers.join("\n      ")}
      keepalive 320;
      keepalive_timeout 60s;
      keepalive_time ${o.upstreamKeepaliveTime ?? "1h"};
      keepalive_requests 10000;
    }`;
  });
  return `
${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes 1;
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log notice;
events { worker_connections 1024; }
http {
  log_format upstreams '$server_name $request_method $uri $status upstream=$upstream_addr upstream_status=$upstream_status';
  access_log ${o.dir}/access.log upstreams;
  client_body_temp_path ${o.dir}/tmp/body;
  proxy_temp_path ${o.dir}/tmp/proxy;
  fastcgi_temp_path ${o.dir}/tmp/fastcgi;
  uwsgi_temp_path ${o.dir}/tmp/uwsgi;
  scgi_temp_path ${o.dir}/tmp/scgi;
  keepalive_timeout 75s;
  ${upstreamBlocks.join("\n")}
  ${servers.join("\n")}
}
`;
}

export interface RunningNginx {
  /** Write a new configuration and wait until nginx runs with it (as the controller applies endpoint changes). */
  reload(config: string): Promise<void>;
  /** Lines of nginx's access log so far. */
  accessLog(): string[];
  stop(): Promise<void>;
}

/** Start nginx in the foreground as a child of the test (no daemon), in `dir`, and wait for its port. */
export async function startNginx(dir: string, config: string, port: number): Promise<RunningNginx> {
  const nginx = requireTool("nginx", "Debian package nginx");
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const confFile = join(dir, "nginx.conf");
  writeFileSync(confFile, config);
  writeFileSync(join(dir, "error.log"), "");
  const child: ChildProcess = spawn(nginx, ["-p", dir, "-c", confFile, "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`nginx did not start: ${stderr}${readFileSync(join(dir, "error.log"), "utf8")}`);
    }
    await sleep(50);
  }
  const workersStarted = () => (readFileSync(join(dir, "error.log"), "utf8").match(/start worker process/g) ?? []).length;
  return {
    async reload(next) {
      writeFileSync(confFile, next);
      const before = workersStarted();
      child.kill("SIGHUP");
      const until = Date.now() + 5_000;
      while (workersStarted() <= before) {
        if (Date.now() > until) throw new Error(`nginx did not reload: ${readFileSync(join(dir, "error.log"), "utf8")}`);
        await sleep(20);
      }
    },
    accessLog: () => readFileSync(join(dir, "access.log"), "utf8").split("\n").filter(Boolean),
    async stop() {
      if (child.exitCode !== null) return;
      // Fast shutdown: the test is over, open connections need not finish.
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * A free loopback port below the kernel's ephemeral range. A pod's address must stay its own
 * while the pod restarts, so it is not taken from the range that every `listen(0)` and every
 * outgoing connection on this busy machine draws from.
 */
export async function freePort(): Promise<number> {
  const [ephemeralStart] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  const low = 20_000;
  const high = Math.min(ephemeralStart || 32_768, 32_768);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await canBind(port)) return port;
  }
  throw new Error("no free port found below the ephemeral range");
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
