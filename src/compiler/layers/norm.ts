/** Batch normalisation. */
import type { LayerKind } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';

/** The axes statistics run over: all but the channel's. */
const statAxes = (node: LayerNode) => (node.input!.length === 3 ? [0, 2, 3] : [0]);

/** A per-channel [C] value shaped to broadcast over [N, C, H, W] (or [N, C]). */
const perChannel = (ctx: LowerContext, node: LayerNode, v: string) =>
  (node.input!.length === 3 ? ctx.op('Unsqueeze', [v, ctx.ints([1, 2])]) : v);

export const bn: LayerKind = {
  name: 'bn',
  aliases: ['batchnorm'],
  doc: 'batch normalisation over channels: bn [eps=] [momentum=]',
  args: [
    { name: 'eps', type: 'number', default: 1e-5, min: 0, minExclusive: true, doc: 'added to the variance for stability' },
    { name: 'momentum', type: 'number', default: 0.1, min: 0, max: 1, doc: 'running statistics update weight (PyTorch convention)' },
  ],
  shape: (input) => input,
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
   * Inference (and frozen layers in training): the running statistics. Training: batch statistics
   * written out (ONNX's training-mode BatchNormalization updates running_var with the biased
   * variance and weighs momentum the other way); the running statistics are updated as PyTorch does:
   * r ← (1 - momentum)·r + momentum·s, with the unbiased batch variance for running_var.
   */
  lower(ctx, x, node) {
    const inputs = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => ctx.param(node, p));
    const eps = node.args.eps as number;
    if (ctx.mode === 'inference' || ctx.isFrozen(node)) return ctx.op('BatchNormalization', [x, ...inputs], { epsilon: { float: eps } });
    const axes = statAxes(node);
    const mean = ctx.op('ReduceMean', [x], { axes, keepdims: 1 });
    const centred = ctx.op('Sub', [x, mean]);
    const variance = ctx.op('ReduceMean', [ctx.op('Mul', [centred, centred])], { axes, keepdims: 1 });
    const invstd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(eps, 'eps')])])]);
    const xhat = ctx.op('Mul', [centred, invstd]);
    ctx.save(node, 'xhat', xhat);
    ctx.save(node, 'invstd', invstd);
    const m = node.args.momentum as number;
    const channels = ctx.ints([node.input![0]], 'shape');
    const update = (running: string, batch: string) => ctx.op('Add', [
      ctx.op('Mul', [running, ctx.scalar(1 - m, 'keep')]),
      ctx.op('Mul', [ctx.op('Reshape', [batch, channels]), ctx.scalar(m, 'momentum')]),
    ]);
    const count = ctx.op('Cast', [ctx.op('Div', [ctx.op('Size', [x]), ctx.constant(BigInt64Array.of(BigInt(node.input![0])), [], 'channels')])], { to: 1 });
    // count / (count - 1), kept finite for a single value per channel (PyTorch refuses that batch).
    const one = ctx.scalar(1, 'one');
    const unbiased = ctx.op('Mul', [variance, ctx.op('Div', [count, ctx.op('Max', [ctx.op('Sub', [count, one]), one])])]);
    ctx.updateState(node, 'running_mean', update(inputs[2], mean));
    ctx.updateState(node, 'running_var', update(inputs[3], unbiased));
    return ctx.op('Add', [ctx.op('Mul', [xhat, perChannel(ctx, node, inputs[0])]), perChannel(ctx, node, inputs[1])]);
  },
  /**
   * Batch statistics: dx = γ·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
   * Frozen (running statistics, an affine map): dx = dy·γ/√(running_var + eps).
   */
  grad(ctx, g, node) {
    const gamma = perChannel(ctx, node, ctx.param(node, 'weight'));
    if (ctx.isFrozen(node)) {
      if (!g.needInput) return {};
      const eps = ctx.scalar(node.args.eps as number, 'eps');
      const invstd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [ctx.param(node, 'running_var'), eps])])]);
      return { dx: ctx.op('Mul', [g.dy, ctx.op('Mul', [gamma, perChannel(ctx, node, invstd)])]) };
    }
    const axes = statAxes(node);
    const xhat = ctx.saved(node, 'xhat');
    const dyXhat = ctx.op('Mul', [g.dy, xhat]);
    const out: ReturnType<LayerKind['grad']> = { params: {} };
    if (g.needParam('weight')) out.params!.weight = ctx.op('ReduceSum', [dyXhat, ctx.ints(axes)], { keepdims: 0 });
    if (g.needParam('bias')) out.params!.bias = ctx.op('ReduceSum', [g.dy, ctx.ints(axes)], { keepdims: 0 });
    if (g.needInput) {
      const meanDy = ctx.op('ReduceMean', [g.dy], { axes, keepdims: 1 });
      const meanDyXhat = ctx.op('ReduceMean', [dyXhat], { axes, keepdims: 1 });
      const inner = ctx.op('Sub', [ctx.op('Sub', [g.dy, meanDy]), ctx.op('Mul', [xhat, meanDyXhat])]);
      out.dx = ctx.op('Mul', [inner, ctx.op('Mul', [gamma, ctx.saved(node, 'invstd')])]);
    }
    return out;
  },
};
