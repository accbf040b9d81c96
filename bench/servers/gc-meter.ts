/**
 * Preloaded (`--import`) into every benchmark server: how long its garbage collections took.
 *
 * A Node server under load can settle in either of two regimes (bench/README.md, "GC"): young
 * collections that free almost everything, or ones that keep and promote megabytes each time,
 * with full collections every few seconds. A round in the second regime costs a server about
 * twice the CPU per call, so the report shows each row's share of time in GC. The totals go to
 * `$BENCH_GC_DIR/<pid>.json` (renamed into place, so a reader never sees half a file) at most
 * every 100 ms; without BENCH_GC_DIR nothing is measured.
 */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver, constants } from "node:perf_hooks";

/** What a server wrote: milliseconds spent in young and in full collections since it started. */
export interface GcTotals {
  youngMs: number;
  fullMs: number;
  fullCount: number;
  longestFullMs: number;
}

const dir = process.env.BENCH_GC_DIR;
if (dir) {
  const totals: GcTotals = { youngMs: 0, fullMs: 0, fullCount: 0, longestFullMs: 0 };
  // Written once at start too, so a server that has not collected yet reads as zero, not unknown.
  let changed = true;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        totals.youngMs += entry.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        totals.fullMs += entry.duration;
        totals.fullCount++;
        totals.longestFullMs = Math.max(totals.longestFullMs, entry.duration);
      } else {
        // Incremental marking steps and weak callbacks belong to full collections.
        totals.fullMs += entry.duration;
      }
      changed = true;
    }
  }).observe({ entryTypes: ["gc"] });
  const file = join(dir, `${process.pid}.json`);
  setInterval(() => {
    if (!changed) return;
    changed = false;
    writeFileSync(`${file}.tmp`, JSON.stringify(totals));
    renameSync(`${file}.tmp`, file);
  }, 100).unref();
}
