/**
 * Initial parameter values, as PyTorch initialises its layers, from a seeded PRNG.
 *
 * Each parameter draws from its own stream, seeded by the global seed and the parameter's name,
 * so a parameter's initial value depends only on (seed, name, shape): adding a layer elsewhere
 * does not change the others.
 */
import type { Init, ParamSpec } from '../layers/types.ts';

/** A 32-bit hash of a string (FNV-1a). */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: uniform floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * kaiming_uniform: PyTorch's default for conv and linear weights (kaiming_uniform_ with a = √5),
 * which is U(-1/√fanIn, 1/√fanIn); bias_uniform: PyTorch's default bias, the same bound.
 */
export function initialValue(init: Init, count: number, seed: number, name: string): Float32Array {
  const data = new Float32Array(count);
  if (init.kind === 'constant') return data.fill(init.value);
  const bound = init.fanIn > 0 ? 1 / Math.sqrt(init.fanIn) : 0;
  const next = prng(hash32(`${seed >>> 0}:${name}`));
  for (let i = 0; i < count; i++) data[i] = (2 * next() - 1) * bound;
  return data;
}

export const paramCount = (spec: ParamSpec) => spec.shape.reduce((a, b) => a * b, 1);
