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
};
