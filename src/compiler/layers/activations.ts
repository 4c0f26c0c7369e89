/** Element-wise activations and softmax: the shape passes through unchanged. */
import type { ArgSpec, LayerKind } from './types.ts';
import type { AttrValue } from '../onnx/builder.ts';
import type { LayerNode } from '../model.ts';

function activation(name: string, doc: string, lower: LayerKind['lower'], args: ArgSpec[] = [], aliases: string[] = []): LayerKind {
  return { name, aliases, doc, args, shape: (input) => input, lower };
}

/** A layer that is one ONNX op on its input. */
const unary = (op: string, attrs: (args: LayerNode['args']) => Record<string, AttrValue> = () => ({})): LayerKind['lower'] =>
  (ctx, x, node) => ctx.op(op, [x], attrs(node.args));

export const relu = activation('relu', 'max(x, 0)', unary('Relu'));
export const leakyrelu = activation('leakyrelu', 'x if x > 0 else slope·x: leakyrelu [SLOPE]', unary('LeakyRelu', (a) => ({ alpha: { float: a.slope as number } })), [
  { name: 'slope', type: 'number', positional: true, default: 0.01, doc: 'slope for negative inputs' },
]);
export const elu = activation('elu', 'x if x > 0 else alpha·(exp(x) - 1): elu [ALPHA]', unary('Elu', (a) => ({ alpha: { float: a.alpha as number } })), [
  { name: 'alpha', type: 'number', positional: true, default: 1, doc: 'scale of the negative part' },
]);
// Opset 17 has no Gelu: x · 0.5 · (1 + erf(x / √2)).
export const gelu = activation('gelu', 'x·Φ(x), the exact (erf) form', (ctx, x) => {
  const erf = ctx.op('Erf', [ctx.op('Mul', [x, ctx.scalar(Math.SQRT1_2, 'rsqrt2')])]);
  const half = ctx.op('Mul', [x, ctx.scalar(0.5, 'half')]);
  return ctx.op('Mul', [half, ctx.op('Add', [erf, ctx.scalar(1, 'one')])]);
});
// Opset 17 has no Swish/SiLU op.
export const silu = activation('silu', 'x·sigmoid(x)', (ctx, x) => ctx.op('Mul', [x, ctx.op('Sigmoid', [x])]), [], ['swish']);
export const sigmoid = activation('sigmoid', '1 / (1 + exp(-x))', unary('Sigmoid'));
export const tanh = activation('tanh', 'hyperbolic tangent', unary('Tanh'));
export const hardswish = activation('hardswish', 'x·relu6(x + 3) / 6', unary('HardSwish'));
export const softmax = activation('softmax', 'softmax over the channel (or vector) axis', unary('Softmax', () => ({ axis: 1 })));

export const prelu: LayerKind = {
  name: 'prelu',
  doc: 'leaky ReLU with a learned slope (one, or one per channel): prelu [per_channel=]',
  args: [{ name: 'per_channel', type: 'bool', default: false, doc: 'one slope per channel instead of one in all' }],
  shape: (input) => input,
  params: (input, args) => [{ name: 'weight', shape: [args.per_channel ? input[0] : 1], trainable: true, init: { kind: 'constant', value: 0.25 } }],
  // The weight keeps PyTorch's [C] (or [1]) shape; on C×H×W it is unsqueezed to [C, 1, 1] to broadcast.
  lower(ctx, x, node) {
    let slope = ctx.param(node, 'weight');
    if (node.args.per_channel && node.input!.length === 3) slope = ctx.op('Unsqueeze', [slope, ctx.ints([1, 2])]);
    return ctx.op('PRelu', [x, slope]);
  },
};
