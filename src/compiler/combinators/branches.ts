/**
 * `concat { a | b | ... }` (branch outputs joined along the channels) and `add { a | b | ... }`
 * (summed): every branch runs on the same input.
 */
import * as T from '../lexer.ts';
import { diagnostic } from '../diagnostics.ts';
import { accumulate } from '../emit/grad-ops.ts';
import { chain, child } from '../emit/torch/containers.ts';
import { formatShape, type Shape } from '../layers/types.ts';
import type { BranchNode } from '../model.ts';
import type { TreeWriter, Container } from '../emit/torch/containers.ts';
import type { PyChild } from '../emit/torch/python.ts';
import { maxReceptive, nodeAround, sameShape } from './common.ts';
import type { CheckContext, Combinator, Flow, NodeOf, NodeRules, Scope, StepOf } from './types.ts';

type BranchKind = BranchNode['kind'];

/** The check both share: every branch on the input, then `join` (undefined when the outputs do not fit, with the diagnostic key). */
function checkBranches<K extends BranchKind>(step: StepOf<K>, cx: CheckContext, flow: Flow, scope: Scope, fits: (o: Shape, first: Shape) => boolean, join: (outs: Shape[]) => Shape): NodeOf<K> {
  const path = cx.childPath(scope, step.kind, step.label);
  const start = { ...flow };
  const branches = step.branches.map((b, i) => {
    const f = { ...start };
    return cx.chain(b, f, cx.subScope(scope, `${path}.${i}`), b.span);
  });
  const node = { kind: step.kind, path, span: step.span, input: start.shape, output: null, rf: null, frozen: scope.frozen, branches } as BranchNode as NodeOf<K>;
  const outs = branches.map((b) => b.output);
  if (outs.every((o): o is Shape => o !== null) && outs.length > 0) {
    const first = outs[0];
    const bad = outs.findIndex((o) => !fits(o, first));
    if (bad >= 0) {
      const d = diagnostic(step.kind === 'add' ? 'addMismatch' : 'concatMismatch', step.keywordSpan, { first, other: outs[bad], index: bad + 1 }, {
        related: branches.map((b, i) => ({ span: b.span, message: `branch ${i + 1} gives ${formatShape(outs[i])}` })),
        hint: 'change the branches\' strides or padding (pad=same keeps H and W)',
      });
      cx.diags.push(d);
      node.error = d;
    } else {
      node.output = join(outs);
      node.rf = maxReceptive(branches.map((b) => b.rf));
      if (!cx.sizeCheck(node.output, step.span)) node.output = null;
    }
  }
  flow.shape = node.output;
  flow.rf = node.rf;
  return node;
}

/** Each branch a Seq of its own under the container module `cls`. */
const branchesTorch = (cls: string, code: string) => (node: BranchNode, w: TreeWriter, c: Container): PyChild[] => {
  const each = node.branches.map((b) => child(b, { at: node.path, frozen: node.frozen }, chain(b, w)));
  return [child(node, c, { fn: w.py.define(cls, code), args: [{ children: each }] }, w.comment(node))];
};

/** The node rules concat and add share. */
const branchRules = {
  children: (node: BranchNode) => node.branches,
  withChildren: <N extends BranchNode>(node: N, branches: readonly BranchNode['branches'][number][]): N => ({ ...node, branches: [...branches] }),
  usesInput: () => false,
  label: (node: BranchNode) => `${node.kind} of ${node.branches.length} branches`,
  hover: (node: BranchNode) => ` (branches ${node.branches.map((b) => (b.output ? formatShape(b.output) : '?')).join(', ')})`,
};

const syntax = {
  head: 'none',
  chains: (step: StepOf<BranchKind>) => step.branches,
  stepArgs: () => [],
  exprs: () => [],
  size: (step: StepOf<BranchKind>, _env: unknown, size: (c: import('../ast.ts').Chain) => number) => nodeAround(step.branches, size),
  named: true,
} as const;

const CONCAT = `class Concat(nn.Module):
    """concat { a | b | ... }: every branch on the same input, joined along the channels."""

    def __init__(self, branches):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=1)
`;

const concatCompatible = (a: Shape, b: Shape) => a.length === b.length && a.every((x, i) => i === 0 || x === b[i]);

export const concat = {
  ...syntax,
  keyword: 'concat',
  token: T.Concat,
  doc: 'concat: branches joined on channels',
  snippet: { detail: 'concat { a | b }: branches joined on channels', body: 'concat { $1 | $2 }' },
  shapeHint: true,
  check: (step, cx, flow, scope) => checkBranches(step, cx, flow, scope, concatCompatible, (outs) => [outs.reduce((sum, o) => sum + o[0], 0), ...outs[0].slice(1)]),
  node: {
    ...branchRules,
    lower: (ctx, node, x, lower) => ctx.op('Concat', node.branches.map((b) => lower(b, x)), { axis: 1 }),
    grad(node, dy, b) {
      const sizes = node.branches.map((br) => br.output![0]);
      const parts = b.scoped(() => b.ctx.ops('Split', [dy, b.ctx.ints(sizes, 'split')], { axis: 1 }, { outputs: sizes.length }));
      const dxs = node.branches.map((br, i) => b.run(br, parts[i]));
      return b.scoped(() => accumulate(b.ctx, dxs));
    },
    torch: branchesTorch('Concat', CONCAT),
  } satisfies NodeRules<NodeOf<'concat'>>,
} satisfies Combinator<'concat'>;

const ADD = `class Add(nn.Module):
    """add { a | b | ... }: every branch on the same input, summed."""

    def __init__(self, branches):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        total, *rest = [branch(x) for branch in self.children()]
        for y in rest:
            total = total + y
        return total
`;

export const add = {
  ...syntax,
  keyword: 'add',
  token: T.Add,
  doc: 'add: branches summed',
  snippet: { detail: 'add { a | b }: branches summed', body: 'add { $1 | $2 }' },
  shapeHint: false,
  check: (step, cx, flow, scope) => checkBranches(step, cx, flow, scope, sameShape, (outs) => outs[0]),
  node: {
    ...branchRules,
    lower(ctx, node, x, lower) {
      const outs = node.branches.map((b) => lower(b, x));
      return outs.length === 2 ? ctx.op('Add', outs) : ctx.op('Sum', outs);
    },
    grad(node, dy, b) {
      const dxs = node.branches.map((br) => b.run(br, dy));
      return b.scoped(() => accumulate(b.ctx, dxs));
    },
    torch: branchesTorch('Add', ADD),
  } satisfies NodeRules<NodeOf<'add'>>,
} satisfies Combinator<'add'>;
