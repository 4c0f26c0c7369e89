/** flatten, dense, dropout and stochastic depth (droppath): the classifier head and the random layers. */
import { product, type LayerKind } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';

export const flatten: LayerKind = {
  name: 'flatten',
  doc: 'C×H×W to a vector of C·H·W',
  args: [],
  global: true,
  shape: (input) => [product(input)],
  lower: (ctx, x) => ctx.op('Flatten', [x], { axis: 1 }),
  grad: (ctx, g) => (g.needInput ? { dx: ctx.op('Reshape', [g.dy, ctx.op('Shape', [g.x])]) } : {}),
  torch: (_node, py) => py.call('nn.Flatten', []),
};

export const dense: LayerKind = {
  name: 'dense',
  aliases: ['linear', 'fc'],
  doc: 'fully connected layer: dense UNITS [bias=]',
  args: [
    { name: 'units', type: 'int', positional: true, required: true, min: 1, doc: 'number of outputs' },
    { name: 'bias', type: 'bool', default: true, doc: 'add a learned bias' },
  ],
  global: true,
  shape(input, _args, ctx) {
    if (input.length !== 1) {
      ctx.fail('denseOnNonFlat', { layer: ctx.layer, shape: input }, { hint: `insert flatten before ${ctx.layer} (giving ${product(input)} features)`, insertBefore: 'flatten -> ' });
    }
    return [_args.units as number];
  },
  params(input, args) {
    const units = args.units as number;
    const fanIn = input[0];
    return [
      { name: 'weight', shape: [units, fanIn], trainable: true, init: { kind: 'kaiming_uniform', fanIn } },
      ...(args.bias ? [{ name: 'bias', shape: [units], trainable: true, init: { kind: 'bias_uniform' as const, fanIn } }] : []),
    ];
  },
  macs: (input, output) => input[0] * output[0],
  // Gemm with transB: the weight keeps PyTorch's [units, in] layout.
  lower(ctx, x, node) {
    const inputs = [x, ctx.param(node, 'weight')];
    if (node.args.bias) inputs.push(ctx.param(node, 'bias'));
    return ctx.op('Gemm', inputs, { transB: 1 });
  },
  // dx = dy·W, dW = dyᵀ·x, db = Σ_n dy.
  grad(ctx, g, node) {
    const out: ReturnType<LayerKind['grad']> = { params: {} };
    if (g.needInput) out.dx = ctx.op('MatMul', [g.dy, ctx.param(node, 'weight')]);
    if (g.needParam('weight')) out.params!.weight = ctx.op('Gemm', [g.dy, g.x], { transA: 1 });
    if (node.args.bias && g.needParam('bias')) out.params!.bias = ctx.op('ReduceSum', [g.dy, ctx.ints([0])], { keepdims: 0 });
    return out;
  },
  torch: (node, py) => py.call('nn.Linear', [node.input![0], node.args.units as number], { bias: node.args.bias ? undefined : py.lit(false) }),
};

/**
 * A random layer's forward and gradient (dropout, droppath): nothing at inference; in training,
 * x · mask with kept values scaled by 1/(1-p), as PyTorch, the mask drawn over the shape of
 * `drawn(x)` and broadcast over x. The mask is a hash of (the step's seed, the layer's path, the
 * draw's index), so a step's mask is the same whenever that step runs (resumed runs, the K-step
 * Loop), unlike ONNX Dropout's. The gradient is dy · the same mask.
 */
function masked(drawn: (ctx: LowerContext, x: string, node: LayerNode) => string): Pick<LayerKind, 'lower' | 'grad'> {
  return {
    lower(ctx, x, node) {
      if (ctx.mode === 'inference' || node.args.p === 0) return x;
      const mask = keepMask(ctx, drawn(ctx, x, node), node);
      ctx.save(node, 'mask', mask);
      return ctx.op('Mul', [x, mask]);
    },
    grad(ctx, g, node) {
      if (!g.needInput) return {};
      return { dx: node.args.p === 0 ? g.dy : ctx.op('Mul', [g.dy, ctx.saved(node, 'mask')]) };
    },
  };
}

export const dropout: LayerKind = {
  name: 'dropout',
  doc: 'zeroes inputs with probability p while training: dropout [P]',
  args: [{ name: 'p', type: 'number', positional: true, default: 0.5, min: 0, max: 1, maxExclusive: true, doc: 'drop probability in [0, 1)' }],
  shape: (input) => input,
  // One draw per element.
  ...masked((_ctx, x) => x),
  // The same scaling; the mask is PyTorch's own random one (cnnc's hash is for resumable ONNX runs).
  torch: (node, py) => py.call('nn.Dropout', [node.args.p as number]),
};

const DROP_PATH = `class DropPath(nn.Module):
    """Stochastic depth, as torchvision.ops.StochasticDepth(p, 'row'): in training each sample is zeroed
    with probability p and the others scaled by 1/(1-p); the identity in eval mode."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)`;

export const droppath: LayerKind = {
  name: 'droppath',
  aliases: ['stochastic_depth'],
  doc: 'stochastic depth, at the end of a residual body: zeroes a whole sample with probability p while training: droppath P',
  args: [{ name: 'p', type: 'number', positional: true, required: true, min: 0, max: 1, maxExclusive: true, doc: 'drop probability of each sample in [0, 1)' }],
  shape: (input) => input,
  // One draw per sample: over the first element of each ([N, 1, ...], a Slice of N values).
  ...masked((ctx, x, node) => {
    const rest = node.input!.map((_, i) => i + 1);
    return ctx.op('Slice', [x, ctx.ints(rest.map(() => 0), 'starts'), ctx.ints(rest.map(() => 1), 'ends'), ctx.ints(rest)]);
  }),
  // The same scaling; the draws are PyTorch's own, as dropout's.
  torch: (node, py) => py.call(py.define('DropPath', DROP_PATH), [node.args.p as number]),
};

/** FNV-1a of a string, 32 bits. */
function fnv32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Mixes int64 values in [0, 2^31) (opset 17 has no XOR or shifts on int64): three rounds of a
 * linear congruential step mod 2^31 followed by a middle-square step (the square's bits 16..46).
 * Every intermediate stays below 2^63.
 */
function mix31(ctx: LowerContext, h: string): string {
  const i64 = (v: number, hint: string) => ctx.constant(BigInt64Array.of(BigInt(v)), [], hint);
  const mod = i64(2 ** 31, 'two31'), mul = i64(1103515245, 'lcg_mul'), inc = i64(12345, 'lcg_inc'), shift = i64(2 ** 16, 'two16');
  for (let round = 0; round < 3; round++) {
    h = ctx.op('Mod', [ctx.op('Add', [ctx.op('Mul', [h, mul]), inc]), mod]);
    h = ctx.op('Mod', [ctx.op('Div', [ctx.op('Mul', [h, h]), shift]), mod]);
  }
  return h;
}

/** A random layer's mask shaped like `x`: 1/(1-p) where kept, 0 where dropped (p is node.args.p). */
function keepMask(ctx: LowerContext, x: string, node: LayerNode): string {
  const p = node.args.p as number;
  const i64 = (v: number, hint: string) => ctx.constant(BigInt64Array.of(BigInt(v)), [], hint);
  const two31 = i64(2 ** 31, 'two31');
  const key = mix31(ctx, ctx.op('Mod', [ctx.op('Add', [ctx.op('Mod', [ctx.seed, two31]), i64(fnv32(node.path) % 2 ** 31, 'salt')]), two31]));
  const index = ctx.op('Reshape', [ctx.op('Range', [i64(0, 'zero'), ctx.op('Size', [x]), i64(1, 'one')]), ctx.op('Shape', [x])]);
  const bits = ctx.op('Div', [mix31(ctx, ctx.op('Mod', [ctx.op('Add', [index, key]), two31])), i64(128, 'two7')]); // the high 24 bits
  const keep = ctx.op('Not', [ctx.op('Less', [bits, i64(Math.round(p * 2 ** 24), 'threshold')])]);
  return ctx.op('Where', [keep, ctx.scalar(1 / (1 - p), 'scale'), ctx.scalar(0, 'zero')]);
}
