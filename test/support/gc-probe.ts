/**
 * What a test host process reports about its garbage collector: how much the old generation
 * holds and how many full collections ran. Ended calls that reach the old generation are what
 * makes young collections slow and full ones frequent (see src/http2/stream-tables.ts).
 * The process must run with --expose-gc.
 */
import { PerformanceObserver, constants, type PerformanceEntry } from "node:perf_hooks";
import { exposedGc, oldSpaceUsedBytes } from "../../src/ops/gc-pacer.js";

export interface GcProbeReading {
  /** Bytes in use in V8's old space (where objects that survive young collections are moved). */
  oldSpaceUsedBytes: number;
  /** Full (mark-compact) collections since the probe started, forced ones included. */
  fullCollections: number;
}

let fullCollections = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail;
    if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullCollections++;
  }
}).observe({ entryTypes: ["gc"] });

/** The old space's use and the full collections so far (optionally after a forced full collection). */
export async function readGcProbe(options: { collectFirst?: boolean } = {}): Promise<GcProbeReading> {
  if (options.collectFirst) {
    const gc = exposedGc();
    if (!gc) throw new Error("the host process needs --expose-gc");
    const counted = fullCollections;
    gc();
    const usedAfterCollection = oldSpaceUsedBytes();
    // GC entries reach observers a little after the collection: wait until the forced one is
    // counted, so that it never lands in a window measured from this reading.
    const deadline = Date.now() + 2_000;
    while (fullCollections === counted && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    if (fullCollections === counted) throw new Error("the forced full collection was not reported within 2 s");
    return { oldSpaceUsedBytes: usedAfterCollection, fullCollections };
  }
  return { oldSpaceUsedBytes: oldSpaceUsedBytes(), fullCollections };
}
