/** `repeat N { body }`: the body stacked N times, each copy named by its index (`repeat1.0`, `repeat1.1`). */
import * as T from '../lexer.ts';
import type * as A from '../ast.ts';
import { evaluate, showValue, type Env } from '../args.ts';
import { diagnostic } from '../diagnostics.ts';
import { spanOf } from '../source.ts';
import { chain, child, seq } from '../emit/torch/containers.ts';
import type { Node, SeqNode } from '../model.ts';
import type { Combinator } from './types.ts';

export const MAX_REPEAT = 10_000;

export const repeat = {
  keyword: 'repeat',
  token: T.Repeat,
  head: 'expression',
  doc: 'repeat: the body stacked',
  snippet: { detail: 'repeat N { ... }: the body stacked N times', body: 'repeat ${1:2} { $0 }' },
  shapeHint: true,
  named: true,
  chains: (step) => [step.body],
  stepArgs: () => [],
  exprs: (step) => (step.count ? [step.count] : []),
  size(step, env, size) {
    const count = countOf(step.count, env);
    // Each copy is a body to check even when empty: `repeat 9999 { repeat 10000 { } }` is work.
    return count === 0 ? 0 : count * Math.max(1, size(step.body));
  },
  check(step, cx, flow, scope) {
    const v = step.count && evaluate(step.count, scope.env, cx.diags);
    const count = v?.kind === 'number' ? v.value : NaN;
    // repeat 0 passes its input: a stage a configuration leaves out.
    if (!Number.isInteger(count) || count < 0 || count > MAX_REPEAT) {
      if (v) cx.diags.push(diagnostic('argumentOutOfRange', step.count!.span, { layer: 'repeat', arg: 'count', value: showValue(v), range: `an integer in [0, ${MAX_REPEAT}]` }));
      return cx.invalidate(flow), undefined;
    }
    if (!cx.fitsExpansion(count * cx.expansion(step.body, scope.env), `repeat ${count}`, spanOf(step.keywordSpan, step.count!.span))) return cx.invalidate(flow), undefined;
    const path = cx.childPath(scope, 'repeat', step.label);
    const start = { ...flow };
    const items: Node[] = [];
    for (let i = 0; i < count && !cx.overLimit(); i++) {
      items.push(cx.chain(step.body, flow, cx.subScope(scope, `${path}.${i}`), step.body.span));
    }
    if (cx.overLimit()) cx.tooLarge(step.span, flow);
    return { kind: 'seq', path, span: step.span, input: start.shape, output: flow.shape, rf: flow.rf, frozen: scope.frozen, items, origin: { kind: 'repeat', count } } satisfies SeqNode;
  },
  seq: {
    header: (node) => `repeat ${node.origin?.kind === 'repeat' ? node.origin.count : node.items.length}`,
    torch(node, w, c) {
      const repetitions = node.items.map((r) => child(r, { at: node.path, frozen: node.frozen }, chain(r as SeqNode, w)));
      return [child(node, c, repetitions.length ? seq(node, repetitions, w) : 'nn.Identity()', w.comment(node))];
    },
  },
} satisfies Combinator<'repeat'>;

/** The count for the size estimate: 0 when it is not a positive integer (the check reports it). */
function countOf(expr: A.Expr | undefined, env: Env): number {
  const v = expr && evaluate(expr, env, []);
  return v?.kind === 'number' && Number.isInteger(v.value) && v.value > 0 ? v.value : 0;
}
