/** Batch and layer normalisation. */
import type { GradOutput, LayerKind } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';

/** A per-channel [C] value shaped to broadcast over [N, C, H, W] (or [N, C]). */
const perChannel = (ctx: LowerContext, node: LayerNode, v: string) =>
  (node.input!.length === 3 ? ctx.op('Unsqueeze', [v, ctx.ints([1, 2])]) : v);

/**
 * Per-channel sum or mean ([C]) over all axes but the channel's. For [N, C, H, W], in two steps:
 * over H, W (contiguous), then over N; onnxruntime reduces [0, 2, 3] in one go several times slower.
 */
export function channelReduce(ctx: LowerContext, node: LayerNode, op: 'ReduceSum' | 'ReduceMean', v: string): string {
  const reduce = (input: string, axes: number[]) => (op === 'ReduceSum'
    ? ctx.op(op, [input, ctx.ints(axes)], { keepdims: 0 })
    : ctx.op(op, [input], { axes, keepdims: 0 }));
  return node.input!.length === 3 ? reduce(reduce(v, [2, 3]), [0]) : reduce(v, [0]);
}

/** The batch's values per channel (N·H·W), as a float scalar. */
const perChannelCount = (ctx: LowerContext, node: LayerNode, x: string) =>
  ctx.op('Cast', [ctx.op('Div', [ctx.op('Size', [x]), ctx.constant(BigInt64Array.of(BigInt(node.input![0])), [], 'channels')])], { to: 1 });

/**
 * scale·x̂ + bias per channel in one pass: ONNX's inference-mode BatchNormalization of the centred
 * values with mean 0 and the batch variance. (Not of x with the batch mean: onnxruntime folds the
 * mean into the bias, x·s + (bias - mean·s), which cancels badly where |mean| ≫ std.)
 */
const affine = (ctx: LowerContext, node: LayerNode, centred: string, scale: string, bias: string, variance: string) =>
  ctx.op('BatchNormalization', [centred, scale, bias, ctx.constant(new Float32Array(node.input![0]), [node.input![0]], 'zeros'), variance], { epsilon: { float: node.args.eps as number } });

export const bn: LayerKind = {
  name: 'bn',
  aliases: ['batchnorm'],
  doc: 'batch normalisation over channels: bn [eps=] [momentum=]',
  args: [
    { name: 'eps', type: 'number', default: 1e-5, min: 0, minExclusive: true, doc: 'added to the variance for stability' },
    { name: 'momentum', type: 'number', default: 0.1, min: 0, max: 1, doc: 'running statistics update weight (PyTorch convention)' },
  ],
  shape: (input) => input,
  updates: ['running_mean', 'running_var'],
  // (x - 0) / sqrt((1 - eps) + eps) * 1 + bias: exact at inference.
  unfold: (bias, args) => ({
    weight: { data: new Float32Array(bias.length).fill(1), from: '1' },
    bias: { data: bias, from: 'the folded bias' },
    running_mean: { data: new Float32Array(bias.length), from: '0' },
    running_var: { data: new Float32Array(bias.length).fill(1 - (args.eps as number)), from: '1 - eps' },
  }),
  params: (input) => {
    const c = [input[0]];
    return [
      { name: 'weight', shape: c, trainable: true, init: { kind: 'constant', value: 1 } },
      { name: 'bias', shape: c, trainable: true, init: { kind: 'constant', value: 0 } },
      { name: 'running_mean', shape: c, trainable: false, init: { kind: 'constant', value: 0 } },
      { name: 'running_var', shape: c, trainable: false, init: { kind: 'constant', value: 1 } },
    ];
  },
  /**
   * Inference (and frozen layers in training): the running statistics. Training: the batch's mean
   * and (biased) variance, two-pass (the variance from the centred values), then y = γ·x̂ + β by an
   * inference-mode BatchNormalization fed the batch statistics: one pass over x where the written-out
   * form takes two. (ONNX's training-mode BatchNormalization updates running_var with the biased
   * variance and weighs momentum the other way.) The running statistics are updated as PyTorch does: r ← (1 - momentum)·r + momentum·s, with the
   * unbiased batch variance for running_var.
   */
  lower(ctx, x, node) {
    const inputs = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => ctx.param(node, p));
    const eps = node.args.eps as number;
    if (ctx.mode === 'inference' || ctx.isFrozen(node)) return ctx.op('BatchNormalization', [x, ...inputs], { epsilon: { float: eps } });
    const mean = channelReduce(ctx, node, 'ReduceMean', x);
    const centred = ctx.op('Sub', [x, perChannel(ctx, node, mean)]);
    const variance = channelReduce(ctx, node, 'ReduceMean', ctx.op('Mul', [centred, centred]));
    ctx.save(node, 'centred', centred);
    ctx.save(node, 'var', variance);
    const m = node.args.momentum as number;
    const update = (running: string, batch: string) => ctx.op('Add', [
      ctx.op('Mul', [running, ctx.scalar(1 - m, 'keep')]),
      ctx.op('Mul', [batch, ctx.scalar(m, 'momentum')]),
    ]);
    const count = perChannelCount(ctx, node, x);
    // count / (count - 1), kept finite for a single value per channel (PyTorch refuses that batch).
    const one = ctx.scalar(1, 'one');
    const unbiased = ctx.op('Mul', [variance, ctx.op('Div', [count, ctx.op('Max', [ctx.op('Sub', [count, one]), one])])]);
    ctx.updateState(node, 'running_mean', update(inputs[2], mean));
    ctx.updateState(node, 'running_var', update(inputs[3], unbiased));
    return affine(ctx, node, centred, inputs[0], inputs[1], variance);
  },
  /**
   * Batch statistics: dγ = Σ dy·x̂ = invstd·Σ dy·(x - mean), dβ = Σ dy, and
   * dx = γ·invstd·(dy - dβ/N - x̂·dγ/N) = a·dy + (-a·dγ/N)·x̂ - a·dβ/N with a = γ·invstd,
   * the last two terms as one affine BatchNormalization of the saved centred values.
   * Frozen (running statistics, an affine map): dx = dy·γ/√(running_var + eps).
   */
  grad(ctx, g, node) {
    const gamma = ctx.param(node, 'weight');
    const eps = ctx.scalar(node.args.eps as number, 'eps');
    if (ctx.isFrozen(node)) {
      if (!g.needInput) return {};
      const invstd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [ctx.param(node, 'running_var'), eps])])]);
      return { dx: ctx.op('Mul', [g.dy, perChannel(ctx, node, ctx.op('Mul', [gamma, invstd]))]) };
    }
    const centred = ctx.saved(node, 'centred'), variance = ctx.saved(node, 'var');
    const invstd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, eps])])]);
    const dgamma = ctx.op('Mul', [channelReduce(ctx, node, 'ReduceSum', ctx.op('Mul', [g.dy, centred])), invstd]);
    const dbeta = channelReduce(ctx, node, 'ReduceSum', g.dy);
    const out: GradOutput = { params: {} };
    if (g.needParam('weight')) out.params!.weight = dgamma;
    if (g.needParam('bias')) out.params!.bias = dbeta;
    if (g.needInput) {
      const a = ctx.op('Mul', [gamma, invstd]);
      const aN = ctx.op('Div', [a, perChannelCount(ctx, node, g.x)]);
      const rest = affine(ctx, node, centred, ctx.op('Neg', [ctx.op('Mul', [aN, dgamma])]), ctx.op('Neg', [ctx.op('Mul', [aN, dbeta])]), variance);
      out.dx = ctx.op('Add', [ctx.op('Mul', [g.dy, perChannel(ctx, node, a)]), rest]);
    }
    return out;
  },
  /**
   * cnnc's momentum is PyTorch's (r <- (1 - momentum)·r + momentum·s, unbiased running_var), so it
   * carries over as it is. A frozen bn stays in eval mode in training (model.py's CnncModel.train).
   */
  torch: (node, py) => py.call(node.input!.length === 3 ? 'nn.BatchNorm2d' : 'nn.BatchNorm1d', [node.input![0]], {
    eps: node.args.eps === 1e-5 ? undefined : (node.args.eps as number),
    momentum: node.args.momentum === 0.1 ? undefined : (node.args.momentum as number),
  }),
};

/** The mean over axis 1, kept as an axis of 1 to broadcast back. */
const meanAxis1 = (ctx: LowerContext, v: string) => ctx.op('ReduceMean', [v], { axes: [1], keepdims: 1 });

/**
 * Layer normalisation over axis 1 (the channels at each position of C×H×W, the features of a
 * vector), written out: mean, then the variance of the centred values (two passes, exact where
 * |mean| ≫ std). On onnxruntime this runs about twice as fast on maps as opset 17's
 * LayerNormalization, which normalises the last axis and so needs a transpose either side.
 * Returns the normalised values x̂ and 1/√(var + eps) ([N, 1, ...]).
 */
function normaliseAxis1(ctx: LowerContext, x: string, eps: number): { xhat: string; invstd: string } {
  const centred = ctx.op('Sub', [x, meanAxis1(ctx, x)]);
  const variance = meanAxis1(ctx, ctx.op('Mul', [centred, centred]));
  const invstd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(eps, 'eps')])])]);
  return { xhat: ctx.op('Mul', [centred, invstd]), invstd };
}

const LAYER_NORM_2D = `class LayerNorm2d(nn.LayerNorm):
    """nn.LayerNorm over the channels at each position of N×C×H×W (ConvNeXt's): weight and bias [C]."""

    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)`;

export const layernorm: LayerKind = {
  name: 'layernorm',
  doc: 'layer normalisation over the channels at each position (C×H×W) or over a vector\'s features: layernorm [eps=]',
  args: [
    { name: 'eps', type: 'number', default: 1e-5, min: 0, minExclusive: true, doc: 'added to the variance for stability (PyTorch\'s default; ConvNeXt uses 1e-6)' },
  ],
  shape: (input) => input,
  params: (input) => [
    { name: 'weight', shape: [input[0]], trainable: true, init: { kind: 'constant', value: 1 } },
    { name: 'bias', shape: [input[0]], trainable: true, init: { kind: 'constant', value: 0 } },
  ],
  // y = γ·x̂ + β per channel; no batch statistics, so training computes what inference does.
  lower(ctx, x, node) {
    const { xhat, invstd } = normaliseAxis1(ctx, x, node.args.eps as number);
    if (ctx.mode === 'training') {
      ctx.save(node, 'xhat', xhat);
      ctx.save(node, 'invstd', invstd);
    }
    return ctx.op('Add', [ctx.op('Mul', [xhat, perChannel(ctx, node, ctx.param(node, 'weight'))]), perChannel(ctx, node, ctx.param(node, 'bias'))]);
  },
  /**
   * dβ = Σ dy and dγ = Σ dy·x̂ over all axes but the channel's; with g = dy·γ and means over the
   * normalised axis, dx = invstd·(g - mean(g) - x̂·mean(g·x̂)). Frozen layers differ only in
   * that no parameter gradient is asked for.
   */
  grad(ctx, g, node) {
    const xhat = ctx.saved(node, 'xhat');
    const out: GradOutput = { params: {} };
    if (g.needParam('weight')) out.params!.weight = channelReduce(ctx, node, 'ReduceSum', ctx.op('Mul', [g.dy, xhat]));
    if (g.needParam('bias')) out.params!.bias = channelReduce(ctx, node, 'ReduceSum', g.dy);
    if (g.needInput) {
      const gx = ctx.op('Mul', [g.dy, perChannel(ctx, node, ctx.param(node, 'weight'))]);
      const centred = ctx.op('Sub', [gx, meanAxis1(ctx, gx)]);
      const projected = ctx.op('Sub', [centred, ctx.op('Mul', [xhat, meanAxis1(ctx, ctx.op('Mul', [gx, xhat]))])]);
      out.dx = ctx.op('Mul', [projected, ctx.saved(node, 'invstd')]);
    }
    return out;
  },
  torch: (node, py) => py.call(node.input!.length === 3 ? py.define('LayerNorm2d', LAYER_NORM_2D) : 'nn.LayerNorm', [node.input![0]], {
    eps: node.args.eps === 1e-5 ? undefined : (node.args.eps as number),
  }),
};
