/** The registry of layer kinds: the parser, checker, emitter, completion and docs all read it. */
import { conv, convtranspose, dwconv } from './conv.ts';
import { avgpool, globalavgpool, globalmaxpool, maxpool, sumpool } from './pool.ts';
import { adaptiveavgpool, pixelshuffle, upsample } from './resample.ts';
import { bn, layernorm } from './norm.ts';
import { elu, gelu, hardsigmoid, hardswish, identity, leakyrelu, prelu, relu, relu6, sigmoid, silu, softmax, tanh } from './activations.ts';
import { dense, dropout, droppath, flatten } from './dense.ts';
import { scale, shuffle } from './channels.ts';
import type { LayerKind } from './types.ts';

export const layerKinds: readonly LayerKind[] = [
  conv, dwconv, convtranspose, bn, layernorm,
  relu, relu6, leakyrelu, prelu, elu, gelu, silu, sigmoid, tanh, hardswish, hardsigmoid, softmax, identity,
  maxpool, avgpool, sumpool, globalavgpool, globalmaxpool, adaptiveavgpool,
  upsample, pixelshuffle,
  shuffle, scale,
  flatten, dense, dropout, droppath,
];

const byName = new Map<string, LayerKind>();
for (const kind of layerKinds) for (const name of [kind.name, ...(kind.aliases ?? [])]) byName.set(name, kind);

export function lookupLayer(name: string): LayerKind | undefined {
  return byName.get(name);
}

export const layerNames: readonly string[] = [...byName.keys()];
export type { LayerKind } from './types.ts';
