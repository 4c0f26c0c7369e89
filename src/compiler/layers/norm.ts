/** Batch normalisation. */
import type { LayerKind } from './types.ts';

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
  lower(ctx, x, node) {
    const inputs = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => ctx.param(node, p));
    const epsilon = { float: node.args.eps as number };
    if (ctx.mode === 'inference') return ctx.op('BatchNormalization', [x, ...inputs], { epsilon });
    // Training: batch statistics. ONNX's momentum weighs the old running value (PyTorch's weighs
    // the batch), and ONNX updates running_var with the biased batch variance (PyTorch: unbiased).
    const [y, mean, variance] = ctx.ops('BatchNormalization', [x, ...inputs], {
      epsilon, momentum: { float: 1 - (node.args.momentum as number) }, training_mode: 1,
    }, { outputs: 3 });
    ctx.updateState(node, 'running_mean', mean);
    ctx.updateState(node, 'running_var', variance);
    return y;
  },
};
