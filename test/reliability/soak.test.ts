/**
 * The soak in CI: 20 seconds of mixed traffic over every protocol with faults injected
 * (`npm run soak` runs the same for 2 minutes). At the end: no unexpected error, no crash or
 * error log line, no call in flight, no connection left open, RSS back near its start.
 */
import { expect, it } from "vitest";
import { runSoak, soakProblems } from "../support/hostile-soak.js";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 20);

it(`soak: ${SECONDS} s of mixed traffic with faults, nothing lost or leaked`, async () => {
  const report = await runSoak({ durationMs: SECONDS * 1000 });
  const MiB = 1024 * 1024;
  // One line in the test output, so a CI log shows how close each run came to the limits.
  console.log(`soak: ${report.calls} calls, ${report.faultsInjected} faults, held memory ${Math.round(report.heldStartBytes / MiB)} -> ${Math.round(report.heldEndBytes / MiB)} MiB, JS heap ${Math.round(report.heapStartBytes / MiB)} -> ${Math.round(report.heapEndBytes / MiB)} MiB, peak RSS ${Math.round(report.rssPeakBytes / MiB)} MiB`);
  expect(report.faultsInjected).toBeGreaterThan(10);
  expect(soakProblems(report)).toEqual([]);
}, (SECONDS + 60) * 1000);
