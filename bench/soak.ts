/**
 * The long soak: `npm run soak` (2 minutes; `npm run soak -- 300` for 5). Mixed traffic over
 * every protocol against the gateway in its own process, with faults injected throughout; prints
 * progress every 10 s and a summary, and exits 1 if anything was lost or leaked. Loopback only,
 * self-stopping. The same soak runs for 20 s in CI (test/reliability/soak.test.ts).
 */
import { runSoak, soakProblems } from "../test/support/hostile-soak.js";

const seconds = Number(process.argv[2] ?? process.env.SOAK_SECONDS ?? 120);
const MiB = 1024 * 1024;
const report = await runSoak({ durationMs: seconds * 1000, log: (line) => console.log(line) });
console.log(
  JSON.stringify(
    {
      seconds: Math.round(report.durationMs / 1000),
      calls: report.calls,
      callsPerSecond: Math.round(report.calls / (report.durationMs / 1000)),
      expectedErrors: report.expectedErrors,
      unexpectedErrors: report.unexpectedErrors.length,
      refusedAndRetried: report.refusedAndRetried,
      faultsInjected: report.faultsInjected,
      heapMiB: { start: Math.round(report.heapStartBytes / MiB), end: Math.round(report.heapEndBytes / MiB) },
      gatewaySessionErrors: report.final.sessionErrors.length,
      rssMiB: { start: Math.round(report.rssStartBytes / MiB), peak: Math.round(report.rssPeakBytes / MiB), end: Math.round(report.rssEndBytes / MiB) },
      heldBeyondSpareHeapMiB: { start: Math.round(report.heldStartBytes / MiB), end: Math.round(report.heldEndBytes / MiB) },
      inFlightAtEnd: report.final.inFlight,
      connectionsAtEnd: report.final.connections,
    },
    null,
    2,
  ),
);
const problems = soakProblems(report);
for (const problem of problems) console.error(`FAIL: ${problem}`);
process.exit(problems.length === 0 ? 0 : 1);
