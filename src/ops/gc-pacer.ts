/**
 * Forces V8's full garbage collections on a pacing rule, so that each one stays short and the
 * process's memory stays flat under sustained load.
 *
 * Why the gateway needs it: Node's HTTP/2 hands every request header value that is not in HPACK's
 * static table (the path, content-type, authority, user-agent…) to JavaScript as an external
 * string, and V8 allocates external strings in the old generation. Every call therefore leaves
 * about 230 bytes there (plus the header bytes Node keeps outside the heap) that only a full
 * collection frees, and that collection finalizes each string on the main thread. With
 * incremental marking off (the gateway's node flag) V8 lets this pile up: measured on
 * 2026-12-06 at 1 × 100 saturation, RSS grew from 140 MB to 1 GB within a minute with a single
 * full collection, and the collection that follows such a stretch paused the process for
 * 186–400 ms. Collecting whenever the old space has grown by a step keeps each pause to tens of
 * milliseconds (measured: 60–90 ms at 8 MiB steps, every 1–2 s at saturation, every 15–20 s at
 * 2,000 calls/s) and RSS near 145 MB. The price is CPU under saturation, since each forced
 * collection marks the whole live heap (about 24 MB, on a helper thread too): none measurable for
 * locally served calls, 6–18 % per call on the proxy path (README "How it works"), about half that
 * with 16 MiB steps. Those figures predate the shape specimens (src/ops/shape-specimens.ts): part
 * of that cost was V8 recompiling the code each collection had thrown away.
 */
import { getHeapSpaceStatistics } from "node:v8";

/** How often the old space's use is read; its cost is a few microseconds. */
const DEFAULT_CHECK_INTERVAL_MS = 100;

/**
 * Each forced collection marks everything that survives it, so the step grows with that: at
 * least a third of the old space in use after the last full collection. A large live heap then
 * gets proportionally rarer collections instead of spending all its time marking.
 */
const STEP_PER_SURVIVING_BYTE = 1 / 3;

export interface GcPacerOptions {
  /** Force a full collection once the old space has grown this many bytes since the last one. */
  stepBytes: number;
  checkIntervalMs?: number;
  /** Reads the bytes in use in V8's old space (tests pass their own). */
  readOldSpaceUsed?: () => number;
  /** Runs a full collection: the global `gc` that node's --expose-gc flag installs (exposedGc), which src/main.ts wraps to keep shape specimens. */
  collect: () => void;
}

export interface GcPacer {
  /** Full collections this pacer has forced so far. */
  readonly forcedCollections: number;
  stop(): void;
}

/** The growth of the old space, beyond `baselineBytes`, at which a collection is due. */
export function gcStepFor(baselineBytes: number, stepBytes: number): number {
  return Math.max(stepBytes, baselineBytes * STEP_PER_SURVIVING_BYTE);
}

/** The global `gc` function if node was started with --expose-gc, else undefined. */
export function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === "function" ? (gc as () => void) : undefined;
}

/** Start forcing a full collection whenever the old space has grown by a step (see gcStepFor). */
export function startGcPacer(options: GcPacerOptions): GcPacer {
  const { collect } = options;
  const readOldSpaceUsed = options.readOldSpaceUsed ?? oldSpaceUsedBytes;
  // The lowest use seen since the last forced collection: what survived it once concurrent
  // sweeping finished, or what a full collection V8 started by itself left.
  let baseline = readOldSpaceUsed();
  let forcedCollections = 0;
  const timer = setInterval(() => {
    const used = readOldSpaceUsed();
    if (used < baseline) {
      baseline = used;
    } else if (used - baseline >= gcStepFor(baseline, options.stepBytes)) {
      collect();
      forcedCollections++;
      baseline = readOldSpaceUsed();
    }
  }, options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS);
  // Pacing must never keep the process alive (shutdown waits only for calls and sockets).
  timer.unref();
  return {
    get forcedCollections() {
      return forcedCollections;
    },
    stop: () => clearInterval(timer),
  };
}

/** Bytes in use in V8's old space (where objects that survive young collections are moved). */
export function oldSpaceUsedBytes(): number {
  for (const space of getHeapSpaceStatistics()) if (space.space_name === "old_space") return space.space_used_size;
  return 0;
}
