import fc from "fast-check";

/**
 * Fuzzing knobs shared by test/fuzz: a fixed seed and a small run count in CI, a longer run with
 * `npm run fuzz` (FUZZ_RUNS=n, FUZZ_SEED=s to replay a failure; without FUZZ_SEED the long run is random).
 */
const runs = Number(process.env.FUZZ_RUNS ?? 0);
export const FUZZ_RUNS = runs > 0 ? runs : 300;
const seedText = process.env.FUZZ_SEED;
export const FUZZ_SEED = seedText !== undefined && seedText !== "" ? Number(seedText) : runs > 0 ? undefined : 20_261_123;

export function fuzzParameters(scale = 1): fc.Parameters<unknown> {
  return { numRuns: Math.max(1, Math.round(FUZZ_RUNS * scale)), seed: FUZZ_SEED, verbose: 1 } as fc.Parameters<unknown>;
}

/** Assert a property with the shared seed and run count. */
export function check<T>(property: fc.IProperty<T> | fc.IAsyncProperty<T>, scale = 1): Promise<void> | void {
  return fc.assert(property as fc.IProperty<T>, fuzzParameters(scale) as fc.Parameters<T>);
}
