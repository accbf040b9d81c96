# syntax=docker/dockerfile:1
#   docker build -t connect-gateway:0.1.0 .
# Four stages: compile with every dependency, install the runtime dependencies alone, fetch
# Debian's mimalloc, and copy just those results onto a distroless Node.js 20 base (no shell, no
# npm, no package manager).

# --- build: TypeScript → dist/ (src and gen), browser pages → dist/web ---------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script is needed to compile (esbuild finds its binary in its
# platform package), and `prepare` would build the pages before web/ is copied in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gen ./gen
COPY src ./src
COPY web ./web
RUN npm run build
RUN npm run build:web

# --- deps: production dependencies only (no tsx, TypeScript, test tools or buf) ----------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts here too: `prepare` builds the pages with tsx, which --omit=dev leaves out.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- allocator: Debian's mimalloc, for the runtime stage to preload in place of glibc's malloc ---
FROM node:20-bookworm-slim AS allocator
RUN apt-get update && apt-get install -y --no-install-recommends libmimalloc2.0
# One path whatever the architecture (x86_64-linux-gnu, aarch64-linux-gnu, …); cp copies the
# library the package's libmimalloc.so.2 link points to.
RUN mkdir -p /opt/allocator && cp /usr/lib/*-linux-gnu/libmimalloc.so.2 /opt/allocator/

# --- runtime ------------------------------------------------------------------------------------
# Distroless: node and its libraries only, running as the unprivileged user 65532.
FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
# package.json says "type": "module", which Node needs to load dist/ as ES modules.
COPY --from=deps /app/package.json ./package.json
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# mimalloc in place of glibc's malloc: Node's HTTP/2 layer allocates several small native objects
# per call (streams, header buffers, each request body's ArrayBuffer), and glibc's malloc spent
# 11 % of the gateway's CPU on them at saturation. Measured on a 2-core host against the same
# gateway on glibc (one interleaved run): Greet at saturation 40.4 against 41.5 µs of CPU per call
# by the medians, 12 % less in the median round pair; 64 KiB stream messages 134–159 against 176
# µs each. Not jemalloc, which was as cheap on small calls (5 % cheaper on the proxy path) but
# hands out zeroed memory of 16 KiB and more by discarding the pages and faulting them back in:
# 64 KiB stream messages ran at a fifth of glibc's rate (README "How it works", "mimalloc"). It
# needs only libc. The benchmark preloads the same library.
COPY --from=allocator /opt/allocator/libmimalloc.so.2 /usr/local/lib/libmimalloc.so.2
ENV LD_PRELOAD=/usr/local/lib/libmimalloc.so.2
# Numeric, so Kubernetes can verify runAsNonRoot without looking the name up.
USER 65532:65532
EXPOSE 8080
# The base image's entrypoint is node itself, so node is PID 1 and the kubelet's SIGTERM reaches
# the gateway's own handler (graceful drain) directly: no shell or npm in between to swallow it.
# Nothing is written at run time, so a read-only root filesystem works.
# --no-incremental-marking: while V8's incremental marking runs, young per-call garbage survives
# scavenges and is promoted (3–4 MB per scavenge at 2,000 calls/s here), which turns 1 ms
# scavenges into 5–8 ms pauses; without it the gateway's small old generation is collected in
# rare stop-the-world passes of about 10 ms (README "Performance").
# --expose-gc: lets the gateway pace those full collections itself (gcPacing, src/ops/gc-pacer.ts),
# so that each stays short and memory stays flat under load. npm start uses the same flags.
# --no-parallel-scavenge: young collections, hundreds a minute under load, run on the main thread
# alone, which then does not wait at each phase for helper threads competing for the cores; the
# rare full collections keep V8's helpers, which shorten their pause by about a third. Measured
# on a 2-core host against collecting everything on the main thread: CPU per call at saturation
# within noise (median +1 %), and shorter pauses (README "How it works", "Young collections on
# the main thread only").
# --no-allocation-site-pretenuring: V8 otherwise decides after a few young collections that the
# objects of about 30 allocation sites of a call (its stream, headers, request id) live long, and
# allocates them in the old generation from then on: 1.3 KB of old generation per answered call
# instead of 0.36 KB, and more full collections (README "How it works", "Lean HTTP/2 connections").
CMD ["--no-incremental-marking", "--no-parallel-scavenge", "--no-allocation-site-pretenuring", "--expose-gc", "dist/src/main.js"]
