/** Element-wise activations and softmax: the shape passes through unchanged. */
import type { ArgSpec, GradInput, LayerKind } from './types.ts';
import type { AttrValue } from '../onnx/builder.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';

/**
 * An element-wise layer's gradient: dx = dy · f'(x), where `derivative` builds f' from the
 * forward's input and output. Parameterless, so only the input gradient is ever asked for.
 */
const elementwise = (derivative: (ctx: LowerContext, g: GradInput, node: LayerNode) => string): LayerKind['grad'] =>
  (ctx, g, node) => (g.needInput ? { dx: ctx.op('Mul', [g.dy, derivative(ctx, g, node)]) } : {});

/** dy where x > 0, else dy · slope (the slope at 0 is the negative side's, as PyTorch). */
const piecewise = (ctx: LowerContext, g: GradInput, negative: string): string =>
  ctx.op('Where', [ctx.op('Greater', [g.x, ctx.scalar(0, 'zero')]), g.dy, negative]);

function activation(name: string, doc: string, lower: LayerKind['lower'], grad: LayerKind['grad'], torch: LayerKind['torch'], args: ArgSpec[] = [], aliases: string[] = []): LayerKind {
  return { name, aliases, doc, args, shape: (input) => input, lower, grad, torch };
}

/** PyTorch's module for an element-wise layer, `nn.ReLU()`, with the layer's arguments. */
const torchModule = (cls: string, args: (node: LayerNode) => number[] = () => []): LayerKind['torch'] =>
  (node, py) => py.call(`nn.${cls}`, args(node));

/** A layer that is one ONNX op on its input. */
const unary = (op: string, attrs: (args: LayerNode['args']) => Record<string, AttrValue> = () => ({})): LayerKind['lower'] =>
  (ctx, x, node) => ctx.op(op, [x], attrs(node.args));

// dy · (x > 0): a multiply by the cast mask runs faster on onnxruntime than Where.
export const relu: LayerKind = {
  ...activation('relu', 'max(x, 0)', unary('Relu'),
    elementwise((ctx, { x }) => ctx.op('Cast', [ctx.op('Greater', [x, ctx.scalar(0, 'zero')])], { to: 1 })), torchModule('ReLU')),
  commutesWithMax: true,
};
// Clip takes min and max as inputs since opset 11. PyTorch's backward (hardtanh's): dy where 0 < x < 6.
export const relu6 = activation('relu6', 'min(max(x, 0), 6), as in MobileNet', (ctx, x) => ctx.op('Clip', [x, ctx.scalar(0, 'zero'), ctx.scalar(6, 'six')]),
  elementwise((ctx, { x }) => ctx.op('Cast', [ctx.op('And', [ctx.op('Greater', [x, ctx.scalar(0, 'zero')]), ctx.op('Less', [x, ctx.scalar(6, 'six')])])], { to: 1 })), torchModule('ReLU6'));
export const leakyrelu = activation('leakyrelu', 'x if x > 0 else slope·x: leakyrelu [SLOPE]', unary('LeakyRelu', (a) => ({ alpha: { float: a.slope as number } })),
  (ctx, g, node) => (g.needInput ? { dx: piecewise(ctx, g, ctx.op('Mul', [g.dy, ctx.scalar(node.args.slope as number, 'slope')])) } : {}),
  torchModule('LeakyReLU', (node) => [node.args.slope as number]), [
    { name: 'slope', type: 'number', positional: true, default: 0.01, doc: 'slope for negative inputs' },
  ]);
// d/dx alpha·(exp(x) - 1) = alpha·exp(x) = y + alpha.
export const elu = activation('elu', 'x if x > 0 else alpha·(exp(x) - 1): elu [ALPHA]', unary('Elu', (a) => ({ alpha: { float: a.alpha as number } })),
  (ctx, g, node) => (g.needInput
    ? { dx: piecewise(ctx, g, ctx.op('Mul', [g.dy, ctx.op('Add', [g.y, ctx.scalar(node.args.alpha as number, 'alpha')])])) }
    : {}), torchModule('ELU', (node) => [node.args.alpha as number]), [
    { name: 'alpha', type: 'number', positional: true, default: 1, doc: 'scale of the negative part' },
  ]);
// Opset 17 has no Gelu: x · 0.5 · (1 + erf(x / √2)); its derivative is Φ(x) + x·φ(x).
export const gelu = activation('gelu', 'x·Φ(x), the exact (erf) form', (ctx, x) => {
  const erf = ctx.op('Erf', [ctx.op('Mul', [x, ctx.scalar(Math.SQRT1_2, 'rsqrt2')])]);
  const half = ctx.op('Mul', [x, ctx.scalar(0.5, 'half')]);
  return ctx.op('Mul', [half, ctx.op('Add', [erf, ctx.scalar(1, 'one')])]);
}, elementwise((ctx, { x }) => {
  const cdf = ctx.op('Mul', [ctx.op('Add', [ctx.op('Erf', [ctx.op('Mul', [x, ctx.scalar(Math.SQRT1_2, 'rsqrt2')])]), ctx.scalar(1, 'one')]), ctx.scalar(0.5, 'half')]);
  const pdf = ctx.op('Mul', [ctx.op('Exp', [ctx.op('Mul', [ctx.op('Mul', [x, x]), ctx.scalar(-0.5, 'minus_half')])]), ctx.scalar(1 / Math.sqrt(2 * Math.PI), 'rsqrt_2pi')]);
  return ctx.op('Add', [cdf, ctx.op('Mul', [x, pdf])]);
}), torchModule('GELU'));
// Opset 17 has no Swish/SiLU op. d/dx x·s(x) = s·(1 + x·(1 - s)).
export const silu = activation('silu', 'x·sigmoid(x)', (ctx, x) => ctx.op('Mul', [x, ctx.op('Sigmoid', [x])]), elementwise((ctx, { x }) => {
  const s = ctx.op('Sigmoid', [x]);
  return ctx.op('Mul', [s, ctx.op('Add', [ctx.scalar(1, 'one'), ctx.op('Mul', [x, ctx.op('Sub', [ctx.scalar(1, 'one'), s])])])]);
}), torchModule('SiLU'), [], ['swish']);
export const sigmoid: LayerKind = {
  ...activation('sigmoid', '1 / (1 + exp(-x))', unary('Sigmoid'),
    elementwise((ctx, { y }) => ctx.op('Mul', [y, ctx.op('Sub', [ctx.scalar(1, 'one'), y])])), torchModule('Sigmoid')),
  probabilities: 'sigmoid',
};
export const tanh = activation('tanh', 'hyperbolic tangent', unary('Tanh'),
  elementwise((ctx, { y }) => ctx.op('Sub', [ctx.scalar(1, 'one'), ctx.op('Mul', [y, y])])), torchModule('Tanh'));
// PyTorch's hardswish backward: 0 below -3, x/3 + 1/2 up to 3 (inclusive), 1 above.
export const hardswish = activation('hardswish', 'x·relu6(x + 3) / 6', unary('HardSwish'), elementwise((ctx, { x }) => {
  const mid = ctx.op('Add', [ctx.op('Mul', [x, ctx.scalar(1 / 3, 'third')]), ctx.scalar(0.5, 'half')]);
  const upper = ctx.op('Where', [ctx.op('Greater', [x, ctx.scalar(3, 'three')]), ctx.scalar(1, 'one'), mid]);
  return ctx.op('Where', [ctx.op('Less', [x, ctx.scalar(-3, 'minus_three')]), ctx.scalar(0, 'zero'), upper]);
}), torchModule('Hardswish'));
// PyTorch's hardsigmoid backward: dy/6 strictly inside (-3, 3), 0 elsewhere (at ±3 too). ONNX's
// HardSigmoid defaults to alpha 0.2 (Keras's); alpha 1/6, beta 1/2 give relu6(x + 3)/6.
export const hardsigmoid = activation('hardsigmoid', 'relu6(x + 3) / 6, as PyTorch (not ONNX\'s default slope 0.2)',
  unary('HardSigmoid', () => ({ alpha: { float: 1 / 6 }, beta: { float: 0.5 } })), elementwise((ctx, { x }) => {
    const inside = ctx.op('And', [ctx.op('Greater', [x, ctx.scalar(-3, 'minus_three')]), ctx.op('Less', [x, ctx.scalar(3, 'three')])]);
    return ctx.op('Where', [inside, ctx.scalar(1 / 6, 'sixth'), ctx.scalar(0, 'zero')]);
  }), torchModule('Hardsigmoid'));
// Passes its input on: the graph gets no node for it (nor for its gradient).
export const identity = activation('identity', 'passes its input unchanged (PyTorch nn.Identity)', (_ctx, x) => x,
  (_ctx, g) => (g.needInput ? { dx: g.dy } : {}), torchModule('Identity'));
// dx = y · (dy - Σ_c dy·y) over the softmax axis.
export const softmax: LayerKind = {
  ...activation('softmax', 'softmax over the channel (or vector) axis', unary('Softmax', () => ({ axis: 1 })), (ctx, g) => {
    if (!g.needInput) return {};
    const dot = ctx.op('ReduceSum', [ctx.op('Mul', [g.dy, g.y]), ctx.ints([1])], { keepdims: 1 });
    return { dx: ctx.op('Mul', [g.y, ctx.op('Sub', [g.dy, dot])]) };
  }, (_node, py) => py.call('nn.Softmax', [], { dim: 1 })),
  probabilities: 'softmax',
};

export const prelu: LayerKind = {
  name: 'prelu',
  doc: 'leaky ReLU with a learned slope (one, or one per channel): prelu [per_channel=]',
  args: [{ name: 'per_channel', type: 'bool', default: false, doc: 'one slope per channel instead of one in all' }],
  shape: (input) => input,
  params: (input, args) => [{ name: 'weight', shape: [args.per_channel ? input[0] : 1], trainable: true, init: { kind: 'constant', value: 0.25 } }],
  // The weight keeps PyTorch's [C] (or [1]) shape; on C×H×W it is unsqueezed to [C, 1, 1] to broadcast.
  lower(ctx, x, node) {
    return ctx.op('PRelu', [x, preluSlope(ctx, node)]);
  },
  // dx = dy where x > 0, else dy·a; da = Σ dy·x where x <= 0, over all axes but the channel's.
  grad(ctx, g, node) {
    const out: ReturnType<LayerKind['grad']> = {};
    const positive = ctx.op('Greater', [g.x, ctx.scalar(0, 'zero')]);
    if (g.needInput) out.dx = ctx.op('Where', [positive, g.dy, ctx.op('Mul', [g.dy, preluSlope(ctx, node)])]);
    if (g.needParam('weight')) {
      const contrib = ctx.op('Where', [positive, ctx.scalar(0, 'zero'), ctx.op('Mul', [g.dy, g.x])]);
      const rank = node.input!.length + 1;
      const axes = node.args.per_channel ? [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)] : Array.from({ length: rank }, (_, i) => i);
      const sum = ctx.op('ReduceSum', [contrib, ctx.ints(axes)], { keepdims: 0 });
      out.params = { weight: node.args.per_channel ? sum : ctx.op('Reshape', [sum, ctx.ints([1], 'shape')]) };
    }
    return out;
  },
  // nn.PReLU's weight is [C] (or [1]) as cnnc's, and applies along dim 1 for maps and vectors alike.
  torch: (node, py) => py.call('nn.PReLU', [node.params[0].shape[0]]), // init 0.25, as cnnc's
};

function preluSlope(ctx: LowerContext, node: LayerNode): string {
  const slope = ctx.param(node, 'weight');
  return node.args.per_channel && node.input!.length === 3 ? ctx.op('Unsqueeze', [slope, ctx.ints([1, 2])]) : slope;
}
