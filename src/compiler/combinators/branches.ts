/**
 * `concat { a | b | ... }` (branch outputs joined along the channels) and `add { a | b | ... }`
 * (summed): every branch runs on the same input.
 */
import * as T from '../lexer.ts';
import { diagnostic } from '../diagnostics.ts';
import { accumulate } from '../emit/grad-ops.ts';
import { chain, child } from '../emit/torch/containers.ts';
import { formatShape, type Shape } from '../layers/types.ts';
import type * as A from '../ast.ts';
import { bindArgs, type Env } from '../args.ts';
import type { BranchNode, SeqNode, SplitNode } from '../model.ts';
import type { TreeWriter, Container } from '../emit/torch/containers.ts';
import type { PyChild } from '../emit/torch/python.ts';
import { maxReceptive, nodeAround, sameShape } from './common.ts';
import type { CheckContext, Combinator, Flow, NodeOf, NodeRules, Scope, StepOf } from './types.ts';

type BranchKind = StepOf<'concat' | 'add' | 'split'>['kind'];

/** How the branches' outputs meet: whether each fits the first, what they make, and the diagnostic when one does not fit. */
export interface Join {
  fits(o: Shape, first: Shape): boolean;
  join(outs: Shape[]): Shape;
  mismatch: 'concatMismatch' | 'addMismatch' | 'splitMismatch';
}

/**
 * The check concat, add and split share: each branch on its input (`inputs`, the step's input
 * for all when not given), then the join. `inputs` gives null shapes after an error.
 */
export function checkBranches<K extends BranchKind>(step: StepOf<K>, cx: CheckContext, flow: Flow, scope: Scope, rule: Join, inputs?: (Shape | null)[]): NodeOf<K> {
  const path = cx.childPath(scope, step.kind, step.label);
  const start = { ...flow };
  const branches = step.branches.map((b, i) => {
    const f = { shape: inputs ? inputs[i] : start.shape, rf: start.rf };
    return cx.chain(b, f, cx.subScope(scope, `${path}.${i}`), b.span);
  });
  const node = { kind: step.kind, path, span: step.span, input: start.shape, output: null, rf: null, frozen: scope.frozen, branches } as unknown as NodeOf<K>;
  const outs = branches.map((b) => b.output);
  if (outs.every((o): o is Shape => o !== null) && outs.length > 0) {
    const first = outs[0];
    const bad = outs.findIndex((o) => !rule.fits(o, first));
    if (bad >= 0) {
      const d = diagnostic(rule.mismatch, step.keywordSpan, { first, other: outs[bad], index: bad + 1 }, {
        related: branches.map((b, i) => ({ span: b.span, message: `branch ${i + 1} gives ${formatShape(outs[i])}` })),
        hint: 'change the branches\' strides or padding (pad=same keeps H and W)',
      });
      cx.diags.push(d);
      node.error = d;
    } else {
      node.output = rule.join(outs);
      node.rf = maxReceptive(branches.map((b) => b.rf));
      if (!cx.sizeCheck(node.output, step.span)) node.output = null;
    }
  }
  flow.shape = node.output;
  flow.rf = node.rf;
  return node;
}

type Branched = BranchNode | SplitNode;

/** Each branch a Seq of its own (or nn.Identity, empty) under the container module `cls`, built with `args` before the branches. */
export const branchesTorch = <N extends Branched>(cls: string, code: string, args: (node: N, w: TreeWriter) => string[] = () => []) => (node: N, w: TreeWriter, c: Container): PyChild[] => {
  // An empty branch's nn.Identity() gets the combinator's line, as every module that stands for source does.
  const each = node.branches.map((b) => child(b, { at: node.path, frozen: node.frozen }, chain(b, w), b.items.length ? undefined : w.comment(node)));
  return [child(node, c, { fn: w.py.define(cls, code), args: [...args(node, w), { children: each }] }, w.comment(node))];
};

/** The node rules concat, add and split share. */
export const branchRules = {
  children: (node: Branched) => node.branches,
  withChildren: <N extends Branched>(node: N, branches: readonly SeqNode[]): N => ({ ...node, branches: [...branches] }),
  usesInput: () => false,
  label: (node: Branched) => `${node.kind} of ${node.branches.length} branches`,
  hover: (node: Branched) => ` (branches ${node.branches.map((b) => (b.output ? formatShape(b.output) : '?')).join(', ')})`,
};

/** The syntax concat, add and split share; concat and add take no arguments. */
export const branchSyntax = {
  head: 'args',
  chains: (step: StepOf<BranchKind>) => step.branches,
  stepArgs: (step: StepOf<BranchKind>) => step.args,
  exprs: () => [],
  size: (step: StepOf<BranchKind>, _env: Env, size: (c: A.Chain) => number) => nodeAround(step.branches, size),
  named: true,
} as const;

/** concat and add: any argument is a mistake (reported), then the branches. */
function noArgs<K extends 'concat' | 'add'>(step: StepOf<K>, cx: CheckContext, scope: Scope): void {
  if (step.args.length) bindArgs([], step.args, step.kind, step.keywordSpan, scope.env, cx.diags);
}

export const concatJoin: Join = {
  fits: (a, b) => a.length === b.length && a.every((x, i) => i === 0 || x === b[i]),
  join: (outs) => [outs.reduce((sum, o) => sum + o[0], 0), ...outs[0].slice(1)],
  mismatch: 'concatMismatch',
};

const CONCAT = `class Concat(nn.Module):
    """concat { a | b | ... }: every branch on the same input, joined along the channels."""

    def __init__(self, branches):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=1)
`;

export const concat = {
  ...branchSyntax,
  keyword: 'concat',
  token: T.Concat,
  doc: 'concat: branches joined on channels',
  snippet: { detail: 'concat { a | b }: branches joined on channels', body: 'concat { $1 | $2 }' },
  shapeHint: true,
  check: (step, cx, flow, scope) => (noArgs(step, cx, scope), checkBranches(step, cx, flow, scope, concatJoin)),
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
  ...branchSyntax,
  keyword: 'add',
  token: T.Add,
  doc: 'add: branches summed',
  snippet: { detail: 'add { a | b }: branches summed', body: 'add { $1 | $2 }' },
  shapeHint: false,
  check: (step, cx, flow, scope) => (noArgs(step, cx, scope), checkBranches(step, cx, flow, scope, { fits: sameShape, join: (outs) => outs[0], mismatch: 'addMismatch' })),
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
