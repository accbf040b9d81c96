import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { collectingWithImmediateAlive, keepShapeOf, keptSpecimens } from "../../src/ops/shape-specimens.js";
import { GATEWAY_NODE_FLAGS, PROJECT_ROOT } from "../../bench/lib/proc.js";

const run = promisify(execFile);

/** V8's OptimizationStatus::kTurboFanned bit (src/runtime/runtime.h), as %GetOptimizationStatus reports it. */
const TURBOFANNED = 1 << 6;

const CANARY = "V8 no longer drops this optimized code without a specimen: src/ops/shape-specimens.ts may have become unnecessary";

describe("shape specimens", () => {
  it("keeps the latest finished object of each class, one per class", () => {
    class FinishedCall {
      constructor(readonly id: number) {}
    }
    class FinishedUpload {}
    const first = new FinishedCall(1);
    const second = new FinishedCall(2);
    const upload = new FinishedUpload();
    keepShapeOf(first);
    keepShapeOf(upload);
    keepShapeOf(second);
    const kept = keptSpecimens();
    expect(kept).toContain(second);
    expect(kept).toContain(upload);
    expect(kept).not.toContain(first);
    expect(kept.filter((value) => value instanceof FinishedCall)).toHaveLength(1);
  });

  it("runs the wrapped collection once, with one more Immediate pending while it runs, kept as a specimen", () => {
    const pendingImmediates = () => process.getActiveResourcesInfo().filter((name) => name === "Immediate").length;
    const before = pendingImmediates();
    let during = before;
    let collections = 0;
    const collect = collectingWithImmediateAlive(() => {
      collections++;
      during = pendingImmediates();
    });
    collect();
    expect(collections).toBe(1);
    expect(during).toBe(before + 1);
    // Cleared afterwards: it neither runs nor keeps the event loop busy.
    expect(pendingImmediates()).toBe(before);
    expect(keptSpecimens().some((value) => value.constructor.name === "Immediate")).toBe(true);
  });
});

/**
 * V8's own behaviour, checked in a child node with the gateway's flags: each script optimizes a
 * function for objects whose last hidden class has no live instance, forces a full collection
 * from a timer (as the GC pacer does), and reports whether the optimized code survived. Run
 * without the specimen, it shows the loss this module exists for (if a V8 stops doing that, this
 * half fails and the module can go); run with it, that the specimen prevents it.
 */
describe("on V8, across a forced full collection", { timeout: 60_000 }, () => {
  async function optimizedCodeSurvives(script: string, keep: boolean): Promise<boolean> {
    const { stdout } = await run(
      process.execPath,
      [...GATEWAY_NODE_FLAGS, "--allow-natives-syntax", "--import", "tsx", "--input-type=module", "--eval", script, "--", keep ? "keep" : "drop"],
      { cwd: PROJECT_ROOT, timeout: 20_000 },
    );
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!) as { before: boolean; after: boolean };
    // The function must have been optimized before the collection, or the check says nothing.
    expect(report.before).toBe(true);
    return report.after;
  }

  // A class whose finished objects gain properties after construction, like a stream at the end of a call.
  const finishedObjects = `
    import { keepShapeOf } from "./src/ops/shape-specimens.ts";
    function defineCalls() {
      class Call { constructor(id) { this.id = id; } }
      return {
        finishedCall(id) { const call = new Call(id); call.status = 0; call.done = true; return call; },
        readDone(call) { return call.done === true; },
      };
    }
    const calls = defineCalls();
    const turbofanned = () => (%GetOptimizationStatus(calls.readDone) & ${TURBOFANNED}) !== 0;
    %PrepareFunctionForOptimization(calls.readDone);
    for (let i = 0; i < 10; i++) calls.readDone(calls.finishedCall(i));
    %OptimizeFunctionOnNextCall(calls.readDone);
    calls.readDone(calls.finishedCall(99));
    const before = turbofanned();
    if (process.argv.includes("keep")) keepShapeOf(calls.finishedCall(100));
    setTimeout(() => {
      globalThis.gc();
      console.log(JSON.stringify({ before, after: turbofanned() }));
    }, 10);
  `;

  // Node's setImmediate, whose optimized code builds the Immediate objects that have all run by the time a timer fires.
  const immediates = `
    import { collectingWithImmediateAlive } from "./src/ops/shape-specimens.ts";
    const noop = () => {};
    const turbofanned = () => (%GetOptimizationStatus(setImmediate) & ${TURBOFANNED}) !== 0;
    const turn = () => new Promise((resolve) => { for (let i = 0; i < 20; i++) setImmediate(noop); setImmediate(resolve); });
    for (let round = 0; round < 5 && !turbofanned(); round++) {
      %PrepareFunctionForOptimization(setImmediate);
      for (let i = 0; i < 5; i++) await turn();
      %OptimizeFunctionOnNextCall(setImmediate);
      for (let i = 0; i < 5; i++) await turn();
    }
    const before = turbofanned();
    setTimeout(() => {
      const collect = () => globalThis.gc();
      (process.argv.includes("keep") ? collectingWithImmediateAlive(collect) : collect)();
      console.log(JSON.stringify({ before, after: turbofanned() }));
    }, 10);
  `;

  it("code built for finished objects is lost without a specimen and kept with one", async () => {
    expect(await optimizedCodeSurvives(finishedObjects, false), CANARY).toBe(false);
    expect(await optimizedCodeSurvives(finishedObjects, true)).toBe(true);
  });

  it("setImmediate's code is lost when no Immediate is pending, and kept when one is", async () => {
    expect(await optimizedCodeSurvives(immediates, false), CANARY).toBe(false);
    expect(await optimizedCodeSurvives(immediates, true)).toBe(true);
  });
});
