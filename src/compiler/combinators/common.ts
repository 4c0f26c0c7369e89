/** Shape and receptive-field helpers the combinators' checks share. */
import type * as A from '../ast.ts';
import type { Shape } from '../layers/types.ts';
import type { Receptive } from '../model.ts';

export const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The largest field among paths that meet (a residual's body and shortcut, a concat's branches). */
export function maxReceptive(rfs: (Receptive | null)[]): Receptive | null {
  if (rfs.some((r) => r === null)) return null;
  const all = rfs as Receptive[];
  const pick = (f: (r: Receptive) => readonly [number, number]) =>
    [Math.max(...all.map((r) => f(r)[0])), Math.max(...all.map((r) => f(r)[1]))] as [number, number];
  return { size: pick((r) => r.size), jump: pick((r) => r.jump), global: all.some((r) => r.global) };
}

/** A step's size when it is one node around its chains (expansion.ts). */
export const nodeAround = (chains: readonly A.Chain[], size: (c: A.Chain) => number) => chains.reduce((sum, c) => sum + size(c), 1);
