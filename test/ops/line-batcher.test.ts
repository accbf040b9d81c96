/** Log lines reach the destination in batches, in order, and nothing is held back by a flush. */
import { describe, expect, it } from "vitest";
import { LineBatcher } from "../../src/ops/line-batcher.js";

function recordingDestination() {
  const writes: string[] = [];
  let flushes = 0;
  return {
    writes,
    flushes: () => flushes,
    write(data: string) {
      writes.push(data);
    },
    flush(callback?: (error?: Error) => void) {
      flushes++;
      callback?.();
    },
  };
}

describe("LineBatcher", () => {
  it("hands lines over only once a batch is full, in the order they came", () => {
    const destination = recordingDestination();
    const batcher = new LineBatcher(destination, 20);
    batcher.write("one\n");
    batcher.write("two\n");
    expect(destination.writes).toEqual([]);
    batcher.write("three-and-more\n");
    expect(destination.writes).toEqual(["one\ntwo\nthree-and-more\n"]);
    batcher.write("four\n");
    expect(destination.writes).toHaveLength(1);
  });

  it("a flush hands over the rest and flushes the destination, calling back once done", () => {
    const destination = recordingDestination();
    const batcher = new LineBatcher(destination, 1000);
    batcher.write("a\n");
    let flushed = false;
    batcher.flush(() => (flushed = true));
    expect(destination.writes).toEqual(["a\n"]);
    expect(destination.flushes()).toBe(1);
    expect(flushed).toBe(true);
    batcher.flush();
    expect(destination.writes).toEqual(["a\n"]);
  });
});
