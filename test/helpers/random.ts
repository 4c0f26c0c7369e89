/** Seeded random test inputs, reproducible across runs and machines (the emitter's own PRNG). */
import { prng } from '../../src/compiler/emit/init.ts';

export const rng = prng;

/** n uniform values in [lo, hi). */
export function uniform(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * next());
}
