/**
 * The registry of combinators, one entry per keyword (types.ts says what each declares), and the
 * one walk of each tree through them: `stepChains` for the syntax tree, `children` for the
 * checked tree. The checker, emitters, summary, incremental checking and the language server
 * read them.
 */
import type * as A from '../ast.ts';
import type { Node, SeqNode } from '../model.ts';
import { add, concat } from './branches.ts';
import { frozen } from './frozen.ts';
import { gate } from './gate.ts';
import { repeat } from './repeat.ts';
import { residual } from './residual.ts';
import { split } from './split.ts';
import type { Combinator, CombinatorKeyword, CombinatorNode, CombinatorStep, NodeRules, SeqRules } from './types.ts';

export const combinators = { repeat, residual, concat, add, split, gate, frozen } satisfies { [K in CombinatorKeyword]: Combinator<K> };

export const combinatorList: readonly Combinator<CombinatorKeyword>[] = Object.values(combinators) as Combinator<CombinatorKeyword>[];

/** The entry of a syntax step's keyword. */
export function combinatorOf<K extends CombinatorKeyword>(step: CombinatorStep & { kind: K }): Combinator<K> {
  return combinators[step.kind] as unknown as Combinator<K>;
}

/** The rules of a combinator's checked node. */
export function nodeRules<N extends CombinatorNode>(node: N): NodeRules<N> {
  return combinators[node.kind].node as unknown as NodeRules<N>;
}

/** A sequence's role in the tree it sits in: a block's expansion, a repeat, or (no origin) a `frozen { }` step. */
export type SeqRole = NonNullable<SeqNode['origin']>['kind'] | 'frozen';
export const seqRole = (node: SeqNode): SeqRole => node.origin?.kind ?? 'frozen';

/** The rules of a sequence that a combinator made. */
export function seqRules(role: Exclude<SeqRole, 'block'>): SeqRules {
  return combinators[role].seq;
}

/** The chains directly inside a syntax step (none for a layer or block use). */
export function stepChains(step: A.Step): readonly A.Chain[] {
  return step.kind === 'layer' ? [] : combinatorOf(step).chains(step);
}

/** The expressions of a step outside its chains: a layer's or block use's arguments, a combinator's. */
export function stepExprs(step: A.Step): readonly A.Expr[] {
  if (step.kind === 'layer') return step.args.map((a) => a.value);
  const c = combinatorOf(step);
  return [...c.stepArgs(step).map((a) => a.value), ...c.exprs(step)];
}

/** The child nodes of a checked node, in execution order (none for a layer). */
export function children(node: Node): readonly Node[] {
  switch (node.kind) {
    case 'layer': return [];
    case 'seq': return node.items;
    default: return nodeRules(node).children(node);
  }
}
