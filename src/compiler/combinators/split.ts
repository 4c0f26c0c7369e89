/**
 * `split [SIZES] { a | b | ... }` (ShuffleNetV2): the input's channels cut into consecutive parts,
 * equal ones by default, branch i run on part i, and the outputs joined along the channels.
 */
import * as T from '../lexer.ts';
import type * as A from '../ast.ts';
import { evaluate, showValue, type Env } from '../args.ts';
import { diagnostic } from '../diagnostics.ts';
import type { ArgSpec, Shape } from '../layers/types.ts';
import type { SplitNode } from '../model.ts';
import type { Span } from '../source.ts';
import { branchRules, branchSyntax, branchesTorch, checkBranches, concatJoin } from './branches.ts';
import type { CheckContext, Combinator } from './types.ts';

const args: ArgSpec[] = [
  { name: 'sizes', type: 'enum', positional: true, doc: 'channels of each part, one per branch, as a list ([58, 58]); equal parts when not given' },
];

const USAGE = 'split [SIZES] { BRANCH | BRANCH ... }, e.g. split { | conv 58 1x1 } (equal halves) or split [16, 48] { ... }';

const SPLIT = `class Split(nn.Module):
    """split [sizes] { a | b | ... }: the channels cut into parts, branch i on part i, the outputs joined along the channels."""

    def __init__(self, sizes, branches):
        super().__init__()
        self.sizes = list(sizes)
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        parts = torch.split(x, self.sizes, dim=1)
        return torch.cat([branch(part) for branch, part in zip(self.children(), parts)], dim=1)
`;

export const split = {
  ...branchSyntax,
  keyword: 'split',
  token: T.Split,
  args,
  doc: 'split: channels cut into parts, a branch on each, joined on channels',
  snippet: { detail: 'split { a | b }: a branch on each half of the channels, joined', body: 'split { $1 | $2 }' },
  shapeHint: true,
  check(step, cx, flow, scope) {
    const given = sizesGiven(step, cx, scope.env);
    const sizes = given === null || !flow.shape ? undefined : partSizes(flow.shape, step.branches.length, given, cx, given ? step.args[0].span : step.keywordSpan);
    const inputs = step.branches.map((_, i) => (sizes && flow.shape ? [sizes[i], ...flow.shape.slice(1)] : null));
    const node = checkBranches(step, cx, flow, scope, { ...concatJoin, mismatch: 'splitMismatch' }, inputs);
    node.sizes = sizes ?? [];
    return node;
  },
  node: {
    ...branchRules,
    lower(ctx, node, x, lower) {
      const parts = ctx.ops('Split', [x, ctx.ints(node.sizes, 'split')], { axis: 1 }, { outputs: node.sizes.length });
      return ctx.op('Concat', node.branches.map((b, i) => lower(b, parts[i])), { axis: 1 });
    },
    grad(node, dy, b) {
      // The output gradient cut as the outputs were joined; each branch's input gradient is its part's.
      const sizes = node.branches.map((br) => br.output![0]);
      const parts = b.scoped(() => b.ctx.ops('Split', [dy, b.ctx.ints(sizes, 'split')], { axis: 1 }, { outputs: sizes.length }));
      const dxs = node.branches.map((br, i) => b.run(br, parts[i]));
      if (!b.need) return undefined;
      if (dxs.some((d) => d === undefined)) throw new Error(`split ${node.path}: a branch gave no input gradient`);
      return b.scoped(() => b.ctx.op('Concat', dxs as string[], { axis: 1 }));
    },
    torch: branchesTorch<SplitNode>('Split', SPLIT, (node, w) => [w.py.lit(node.sizes)]),
  },
} satisfies Combinator<'split'>;

/** The sizes written after `split` (undefined: none, equal parts; null: wrong, reported). */
function sizesGiven(step: A.BranchStep, cx: CheckContext, env: Env): number[] | undefined | null {
  const named = step.args.find((a) => a.name !== undefined);
  if (named) {
    cx.diags.push(diagnostic('unknownOption', named.nameSpan ?? named.span, { layer: 'split', option: named.name! }, { hint: USAGE }));
    return null;
  }
  if (step.args.length > 1) {
    cx.diags.push(diagnostic('tooManyArguments', step.args[1].span, { layer: 'split', max: 1 }, { hint: USAGE }));
    return null;
  }
  if (step.args.length === 0) return undefined;
  const v = evaluate(step.args[0].value, env, cx.diags);
  if (!v) return null;
  const items = v.kind === 'list' ? v.items : [];
  const sizes = items.map((i) => (i.kind === 'number' && Number.isInteger(i.value) && i.value >= 1 ? i.value : NaN));
  if (sizes.length === 0 || sizes.some(Number.isNaN)) {
    cx.diags.push(diagnostic('wrongArgumentType', step.args[0].span, { layer: 'split', arg: 'sizes', value: showValue(v), expected: 'a list of positive integers, one per branch' }, { hint: USAGE }));
    return null;
  }
  return sizes;
}

/** Channels per part, checked against the input and the branches (undefined: they do not fit, reported at `span`). */
function partSizes(input: Shape, branches: number, given: number[] | undefined, cx: CheckContext, span: Span): number[] | undefined {
  const channels = input[0];
  const fail = (detail: string, hint: string) => void cx.diags.push(diagnostic('splitSizes', span, { detail }, { hint }));
  if (!given) {
    if (channels % branches === 0) return Array(branches).fill(channels / branches);
    return fail(`the input's ${channels} channels do not split into ${branches} equal parts`, `give the parts' sizes: split [${unequal(channels, branches).join(', ')}] { ... }`);
  }
  if (given.length !== branches) return fail(`${given.length} size${given.length === 1 ? "" : "s"} for ${branches} branches`, 'give one size per branch');
  const sum = given.reduce((a, b) => a + b, 0);
  if (sum !== channels) return fail(`the sizes add up to ${sum}, not the input's ${channels} channels`, `the parts must cover the ${channels} channels exactly`);
  return given;
}

/** Nearly equal parts that add up to `channels` (a suggestion). */
const unequal = (channels: number, parts: number) => Array.from({ length: parts }, (_, i) => Math.floor(channels / parts) + (i < channels % parts ? 1 : 0));
