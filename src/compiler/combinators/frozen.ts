/** `frozen { chain }`: the layers inside are not trained; its steps join the chain around it (no name of its own). */
import * as T from '../lexer.ts';
import type { PyExpr } from '../emit/torch/python.ts';
import { nodeAround } from './common.ts';
import type { Combinator } from './types.ts';

const frozenExpr = (e: PyExpr): PyExpr => (typeof e === 'string' ? `frozen(${e})` : { fn: 'frozen', args: [e] });

export const frozen = {
  keyword: 'frozen',
  token: T.Frozen,
  head: 'none',
  doc: 'frozen: no gradient or updates inside',
  snippet: { detail: 'frozen { ... }: no gradient or updates inside', body: 'frozen { $0 }' },
  shapeHint: false,
  named: false,
  chains: (step) => [step.body],
  stepArgs: () => [],
  exprs: () => [],
  size: (step, _env, size) => nodeAround([step.body], size),
  check: (step, cx, flow, scope) => cx.chain(step.body, flow, { ...scope, frozen: true }, step.span),
  seq: {
    // Its steps join the container, each frozen (requires_grad_(False), and a frozen bn in eval
    // mode while training) unless the container already is.
    torch: (node, w, c) => w.children(node.items, { at: c.at, frozen: true }).map((ch) => (c.frozen ? ch : { ...ch, expr: frozenExpr(ch.expr) })),
  },
} satisfies Combinator<'frozen'>;
