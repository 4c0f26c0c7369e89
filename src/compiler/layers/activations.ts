/** Element-wise activations and softmax: the shape passes through unchanged. */
import type { ArgSpec, LayerKind } from './types.ts';

function activation(name: string, doc: string, args: ArgSpec[] = [], aliases: string[] = []): LayerKind {
  return { name, aliases, doc, args, shape: (input) => input };
}

export const relu = activation('relu', 'max(x, 0)');
export const leakyrelu = activation('leakyrelu', 'x if x > 0 else slope·x: leakyrelu [SLOPE]', [
  { name: 'slope', type: 'number', positional: true, default: 0.01, doc: 'slope for negative inputs' },
]);
export const elu = activation('elu', 'x if x > 0 else alpha·(exp(x) - 1): elu [ALPHA]', [
  { name: 'alpha', type: 'number', positional: true, default: 1, doc: 'scale of the negative part' },
]);
export const gelu = activation('gelu', 'x·Φ(x), the exact (erf) form');
export const silu = activation('silu', 'x·sigmoid(x)', [], ['swish']);
export const sigmoid = activation('sigmoid', '1 / (1 + exp(-x))');
export const tanh = activation('tanh', 'hyperbolic tangent');
export const hardswish = activation('hardswish', 'x·relu6(x + 3) / 6');
export const softmax = activation('softmax', 'softmax over the channel (or vector) axis');

export const prelu: LayerKind = {
  name: 'prelu',
  doc: 'leaky ReLU with a learned slope (one, or one per channel): prelu [per_channel=]',
  args: [{ name: 'per_channel', type: 'bool', default: false, doc: 'one slope per channel instead of one in all' }],
  shape: (input) => input,
  params: (input, args) => [{ name: 'weight', shape: [args.per_channel ? input[0] : 1], trainable: true, init: { kind: 'constant', value: 0.25 } }],
};
