/** flatten, dense and dropout: the classifier head. */
import { product, type LayerKind } from './types.ts';

export const flatten: LayerKind = {
  name: 'flatten',
  doc: 'C×H×W to a vector of C·H·W',
  args: [],
  global: true,
  shape: (input) => [product(input)],
  lower: (ctx, x) => ctx.op('Flatten', [x], { axis: 1 }),
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
};

export const dropout: LayerKind = {
  name: 'dropout',
  doc: 'zeroes inputs with probability p while training: dropout [P]',
  args: [{ name: 'p', type: 'number', positional: true, default: 0.5, min: 0, max: 1, maxExclusive: true, doc: 'drop probability in [0, 1)' }],
  shape: (input) => input,
  // Nothing at inference; in training, ONNX Dropout (which scales kept values by 1/(1-p), as PyTorch).
  lower(ctx, x, node) {
    if (ctx.mode === 'inference' || node.args.p === 0) return x;
    const ratio = ctx.scalar(node.args.p as number, 'ratio');
    const training = ctx.constant(new Uint8Array([1]), [], 'training_mode', 'bool');
    return ctx.op('Dropout', [x, ratio, training]);
  },
};
