/** `gate { body }`: x · body(x), body(x) broadcast over x (squeeze-and-excitation, spatial attention). */
import * as T from '../lexer.ts';
import { diagnostic } from '../diagnostics.ts';
import { accumulate, sumTo } from '../emit/grad-ops.ts';
import { child } from '../emit/torch/containers.ts';
import { formatShape, type Shape } from '../layers/types.ts';
import type { GateNode } from '../model.ts';
import { maxReceptive, nodeAround } from './common.ts';
import type { Combinator } from './types.ts';

const broadcasts = (gate: Shape, x: Shape) => gate.length === x.length && gate.every((g, i) => g === 1 || g === x[i]);

const GATE = `class Gate(nn.Module):
    """gate { body }: x * body(x), body(x) broadcast over x (C×1×1 after global pooling)."""

    def __init__(self, body):
        super().__init__()
        for name, step in body.items():
            self.add_module(name, step)

    def forward(self, x):
        y = x
        for step in self.children():
            y = step(y)
        return x * y
`;

export const gate = {
  keyword: 'gate',
  token: T.Gate,
  head: 'none',
  doc: 'gate: x * body(x)',
  snippet: { detail: 'gate { ... }: x * f(x)', body: 'gate { $0 }' },
  shapeHint: false,
  named: true,
  chains: (step) => [step.body],
  stepArgs: () => [],
  exprs: () => [],
  size: (step, _env, size) => nodeAround([step.body], size),
  check(step, cx, flow, scope) {
    const path = cx.childPath(scope, 'gate', step.label);
    const start = { ...flow };
    const body = cx.chain(step.body, flow, cx.subScope(scope, path), step.body.span);
    const node: GateNode = { kind: 'gate', path, span: step.span, input: start.shape, output: null, rf: null, frozen: scope.frozen, body };
    if (start.shape && body.output) {
      if (!broadcasts(body.output, start.shape)) {
        const d = diagnostic('gateMismatch', step.keywordSpan, { input: start.shape, gate: body.output }, {
          hint: 'the gate must give the input\'s shape or 1 in a dimension (e.g. C×1×1 after globalavgpool)',
          related: [{ span: step.body.span, message: `the gate body gives ${formatShape(body.output)}` }],
        });
        cx.diags.push(d);
        node.error = d;
      } else {
        node.output = start.shape;
        node.rf = maxReceptive([start.rf, body.rf]);
      }
    }
    flow.shape = node.output;
    flow.rf = node.rf;
    return node;
  },
  node: {
    children: (node) => [node.body],
    withChildren: (node, [body]) => ({ ...node, body }),
    usesInput: () => true,
    // x · f(x); f(x) broadcasts (C×1×1 after global pooling).
    lower: (ctx, node, x, lower) => ctx.op('Mul', [x, lower(node.body, x)]),
    grad(node, dy, b) {
      // y = x · f(x), f broadcast over x: dx = dy·f + f's backward of Σ_broadcast(dy·x).
      const { ctx, x } = b;
      const f = b.outputOf(node.body) ?? x;
      const xDims = ctx.dims(node.input!), fDims = ctx.dims(node.body.output!), yDims = ctx.dims(node.output!);
      let viaBody: string | undefined;
      if (b.active(node.body)) {
        const df = b.scoped(() => sumTo(ctx, ctx.op('Mul', [dy, x]), yDims, fDims));
        viaBody = b.run(node.body, df);
      }
      const direct = b.need ? b.scoped(() => sumTo(ctx, ctx.op('Mul', [dy, f]), yDims, xDims)) : undefined;
      return b.scoped(() => accumulate(ctx, [direct, viaBody]));
    },
    label: () => 'gate multiply',
    torch(node, w, c) {
      const body = w.children(node.body.items, { at: node.path, frozen: node.frozen });
      return [child(node, c, { fn: w.py.define('Gate', GATE), args: [{ children: body }] }, w.comment(node))];
    },
  },
} satisfies Combinator<'gate'>;
