/** `residual [project] { body }`: body(x) + x, or body(x) + a 1x1 conv + bn projection of x. */
import * as T from '../lexer.ts';
import { bindArgs } from '../args.ts';
import { diagnostic } from '../diagnostics.ts';
import { accumulate } from '../emit/grad-ops.ts';
import { chain, child } from '../emit/torch/containers.ts';
import { conv } from '../layers/conv.ts';
import { bn } from '../layers/norm.ts';
import { formatShape, type ArgSpec, type Args, type Shape } from '../layers/types.ts';
import type { ResidualNode, SeqNode } from '../model.ts';
import type * as A from '../ast.ts';
import type { PyExpr } from '../emit/torch/python.ts';
import { maxReceptive, nodeAround, sameShape } from './common.ts';
import type { CheckContext, Combinator, Flow, Scope } from './types.ts';

const args: ArgSpec[] = [
  { name: 'shortcut', type: 'enum', positional: true, values: ['identity', 'project'], default: 'identity', doc: 'identity, or project: a 1x1 conv + bn (with stride) when shapes differ' },
];

const RESIDUAL = `class Residual(nn.Module):
    """residual { body }: body(x) + x; residual project: body(x) + shortcut(x), a 1x1 conv and bn."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        for name, step in body.items():
            self.add_module(name, step)
        self._body = list(body)
        self.shortcut = shortcut

    def forward(self, x):
        y = x
        for name in self._body:
            y = self._modules[name](y)
        return y + (x if self.shortcut is None else self.shortcut(x))
`;

export const residual = {
  keyword: 'residual',
  token: T.Residual,
  head: 'args',
  args,
  doc: 'residual: body(x) + shortcut(x)',
  snippet: { detail: 'residual { ... }: body(x) + x', body: 'residual { $0 }' },
  shapeHint: false,
  named: true,
  chains: (step) => [step.body],
  stepArgs: (step) => step.args,
  exprs: () => [],
  size: (step, _env, size) => nodeAround([step.body], size),
  check(step, cx, flow, scope) {
    const bound = bindArgs(args, step.args, 'residual', step.keywordSpan, scope.env, cx.diags);
    const path = cx.childPath(scope, 'residual', step.label);
    const inner = cx.subScope(scope, path);
    inner.labels.add('shortcut'); // the projection's name, so no label in the body can take it
    const start = { ...flow };
    const body = cx.chain(step.body, flow, inner, step.body.span);
    const node: ResidualNode = { kind: 'residual', path, span: step.span, input: start.shape, output: null, rf: null, frozen: scope.frozen, body, shortcut: null };
    const project = bound.values.shortcut === 'project';
    if (project && start.shape && body.output) node.shortcut = projection(cx, start, body.output, inner, step);
    const shortcutOut = node.shortcut ? node.shortcut.output : start.shape;
    if (start.shape && body.output && shortcutOut) {
      if (!sameShape(shortcutOut, body.output)) {
        const d = diagnostic('residualMismatch', step.keywordSpan, { input: shortcutOut, output: body.output }, {
          hint: project ? 'the projection cannot match these shapes' : 'use `residual project { ... }` for a 1x1 conv + bn shortcut, or change the body to keep the shape',
          related: [{ span: step.body.span, message: `the body gives ${formatShape(body.output)}` }],
          fixes: project ? undefined : [{ title: 'use a projection shortcut', span: { start: step.keywordSpan.end, end: step.keywordSpan.end }, text: ' project' }],
        });
        cx.diags.push(d);
        node.error = d;
      } else {
        node.output = body.output;
        node.rf = maxReceptive([start.rf, body.rf, ...(node.shortcut ? [node.shortcut.rf] : [])]);
      }
    }
    flow.shape = node.output;
    flow.rf = node.rf;
    return node;
  },
  node: {
    children: (node) => (node.shortcut ? [node.body, node.shortcut] : [node.body]),
    withChildren: (node, [body, shortcut]) => ({ ...node, body, shortcut: node.shortcut && shortcut }),
    usesInput: (node) => !node.shortcut,
    lower(ctx, node, x, lower) {
      const body = lower(node.body, x);
      const shortcut = node.shortcut ? lower(node.shortcut, x) : x;
      return ctx.op('Add', [body, shortcut]);
    },
    grad(node, dy, b) {
      const body = b.run(node.body, dy);
      const shortcut = node.shortcut ? b.run(node.shortcut, dy) : b.need ? dy : undefined;
      return b.scoped(() => accumulate(b.ctx, [body, shortcut]));
    },
    label: (node) => (node.shortcut ? 'residual add (projection)' : 'residual add'),
    hover: (node) => (node.shortcut ? ' (projection shortcut)' : ' (identity shortcut)'),
    torch(node, w, c) {
      const body = w.children(node.body.items, { at: node.path, frozen: node.frozen });
      const kwargs: [string, PyExpr][] = node.shortcut ? [['shortcut', chain(node.shortcut, w)]] : [];
      return [child(node, c, { fn: w.py.define('Residual', RESIDUAL), args: [{ children: body }], kwargs }, w.comment(node))];
    },
  },
} satisfies Combinator<'residual'>;

/** The projection shortcut: conv 1x1 to the body's channels with the stride that matches H and W, then bn. */
function projection(cx: CheckContext, start: Flow, out: Shape, scope: Scope, step: A.ResidualStep): SeqNode | null {
  const input = start.shape!;
  if (input.length !== 3 || out.length !== 3) return null;
  // The stride per side whose 1x1 window gives the body's size: floor((in - 1) / s) + 1 = out.
  const strideFor = (size: number, target: number) => {
    for (let s = 1; s <= size; s++) if (Math.floor((size - 1) / s) + 1 === target) return s;
    return 0;
  };
  const stride: [number, number] = [strideFor(input[1], out[1]), strideFor(input[2], out[2])];
  if (!stride[0] || !stride[1]) return null;
  const flow = { ...start };
  const sub = { ...scope, path: `${scope.path}.shortcut` };
  const convArgs: Args = { filters: out[0], kernel: [1, 1], stride, pad: 'valid', dilation: [1, 1], groups: 1, bias: false };
  const items = [
    cx.layer(conv, convArgs, flow, sub, `${sub.path}.conv`, step.keywordSpan),
    cx.layer(bn, { eps: 1e-5, momentum: 0.1 }, flow, sub, `${sub.path}.bn`, step.keywordSpan),
  ];
  return { kind: 'seq', path: sub.path, span: step.keywordSpan, input, output: flow.shape, rf: flow.rf, frozen: scope.frozen, items };
}
