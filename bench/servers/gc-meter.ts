/**
 * Preloaded (`--import`) into every benchmark server: how long its garbage collections took.
 *
 * A Node server under load can settle in either of two regimes (bench/README.md, "GC"): young
 * collections that free almost everything, or ones that keep and promote megabytes each time,
 * with full collections every few seconds. A round in the second regime costs a server about
 * twice the CPU per call, so the report shows each row's share of time in GC. The totals go to
 * `$BENCH_GC_DIR/<pid>.json` (renamed into place, so a reader never sees half a file) at most
 * every WRITE_EVERY_MS; without BENCH_GC_DIR nothing is measured.
 */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver, constants } from "node:perf_hooks";
import { WRITE_EVERY_MS, type GcTotals } from "../lib/gc-totals.js";

const dir = process.env.BENCH_GC_DIR;
if (dir) {
  const totals: GcTotals = { youngMs: 0, fullMs: 0, fullPausesMs: [] };
  // Written once at start too, so a server that has not collected yet reads as zero, not unknown.
  let changed = true;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        totals.youngMs += entry.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        totals.fullMs += entry.duration;
        totals.fullPausesMs.push(entry.duration);
      } else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) {
        // Only the pause that starts marking: the marking steps run between JavaScript and are
        // not reported, so with incremental marking on (Node's default, every peer) full-GC
        // time here is the pauses alone, not the marking work.
        totals.fullMs += entry.duration;
      } else {
        // Weak-callback processing follows either kind and is short: left out.
        continue;
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
  }, WRITE_EVERY_MS).unref();
}
