/**
 * The float64 forward of each layer kind, by registry name, from the plain-loop operators in
 * ops.ts: what the gradient checks differentiate numerically, and what test/registry.test.ts
 * requires of every kind.
 */
import type { LayerNode } from '../../src/compiler/model.ts';
import { convGeometry, transposeGeometry } from '../../src/compiler/layers/conv.ts';
import { windowOf } from '../../src/compiler/layers/window.ts';
import * as ref from './ops.ts';

export interface T64 { data: Float64Array; dims: number[] }

/**
 * One layer on x ([N, ...node.input]); `param` gives its parameters by local name. `batchStats`:
 * normalise with the batch's statistics (a training layer that is not frozen).
 */
export type ReferenceLayer = (node: LayerNode, x: T64, param: (name: string) => Float64Array, batchStats: boolean) => T64;

const t64 = (res: ref.Result): T64 => ({ data: res.data, dims: res.shape });
const shapeOf = (node: LayerNode, name: string) => node.params.find((s) => s.name === name)!.shape as number[];

/** An element-wise layer from its reference operator. */
const unary = (f: (x: ref.Data, dims: number[], node: LayerNode) => ref.Result): ReferenceLayer => (node, x) => t64(f(x.data, x.dims, node));

const conv: ReferenceLayer = (node, x, param) => {
  const g = convGeometry(node.input!, node.args, node.layer.name);
  return t64(ref.conv2d(x.data, x.dims, param('weight'), shapeOf(node, 'weight'), node.args.bias ? param('bias') : null, {
    stride: [...g.window.stride] as [number, number], pads: [...g.window.pads] as [number, number, number, number],
    dilation: [...g.window.dilation] as [number, number], groups: g.groups,
  }));
};

/** A windowed pool with the node's arguments (its padding as written, and ceil mode as PyTorch's). */
const pool = (f: (x: ref.Data, dims: number[], o: ref.Pool2dOptions, node: LayerNode) => ref.Result): ReferenceLayer => (node, x) => {
  const w = windowOf(node.input!, node.args, 'window');
  const o = {
    kernel: [...w.kernel] as [number, number], stride: [...w.stride] as [number, number], pads: [...w.pads] as [number, number, number, number],
    ceil: node.args.ceil as boolean,
  };
  return t64(f(x.data, x.dims, o, node));
};

export const referenceLayers: Record<string, ReferenceLayer> = {
  conv,
  dwconv: conv,
  convtranspose: (node, x, param) => {
    const g = transposeGeometry(node.input!, node.args);
    return t64(ref.convTranspose2d(x.data, x.dims, param('weight'), shapeOf(node, 'weight'), node.args.bias ? param('bias') : null, {
      stride: [...g.window.stride] as [number, number], pads: [...g.window.pads] as [number, number, number, number],
      dilation: [...g.window.dilation] as [number, number], groups: g.groups, outputPadding: g.outputPadding,
    }));
  },
  bn: (node, x, param, batchStats) => {
    const eps = node.args.eps as number;
    if (batchStats) return t64(ref.batchNormTrain(x.data, x.dims, param('weight'), param('bias'), eps));
    return t64(ref.batchNormInference(x.data, x.dims, param('weight'), param('bias'), param('running_mean'), param('running_var'), eps));
  },
  layernorm: (node, x, param) => t64(ref.layerNorm(x.data, x.dims, param('weight'), param('bias'), node.args.eps as number)),
  shuffle: unary((x, d, node) => ref.channelShuffle(x, d, node.args.groups as number)),
  scale: (_node, x, param) => t64(ref.channelScale(x.data, x.dims, param('layer_scale'))),
  relu: unary(ref.relu),
  relu6: unary(ref.relu6),
  leakyrelu: unary((x, d, node) => ref.leakyRelu(x, d, node.args.slope as number)),
  prelu: (node, x, param) => {
    const s = param('weight');
    return t64(ref.prelu(x.data, x.dims, s.length === 1 ? new Float64Array(x.dims[1]).fill(s[0]) : s));
  },
  elu: unary((x, d, node) => ref.elu(x, d, node.args.alpha as number)),
  gelu: unary(ref.gelu),
  silu: unary(ref.silu),
  sigmoid: unary(ref.sigmoid),
  tanh: unary(ref.tanh),
  hardswish: unary(ref.hardswish),
  hardsigmoid: unary(ref.hardsigmoid),
  identity: (_node, x) => x,
  softmax: unary(ref.softmaxChannels),
  maxpool: pool(ref.maxPool2d),
  avgpool: pool((x, d, o, node) => ref.avgPool2d(x, d, { ...o, countIncludePad: node.args.count_pad as boolean })),
  sumpool: pool(ref.sumPool2d),
  globalavgpool: unary(ref.globalAvgPool),
  globalmaxpool: unary(ref.globalMaxPool),
  adaptiveavgpool: unary((x, d, node) => ref.adaptiveAvgPool2d(x, d, node.args.size as [number, number])),
  pixelshuffle: unary((x, d, node) => ref.pixelShuffle(x, d, node.args.factor as number)),
  upsample: (node, x) => {
    const out = [node.output![1], node.output![2]] as [number, number];
    const a = node.args;
    return t64(a.mode === 'bilinear' ? ref.upsampleBilinear2d(x.data, x.dims, out, a.align_corners as boolean) : ref.upsampleNearest2d(x.data, x.dims, out));
  },
  flatten: (_node, x) => ({ data: x.data, dims: [x.dims[0], x.dims.slice(1).reduce((a, b) => a * b, 1)] }),
  dense: (node, x, param) => t64(ref.dense(x.data, x.dims, param('weight'), shapeOf(node, 'weight'), node.args.bias ? param('bias') : null)),
  dropout: (node, x) => {
    if (node.args.p !== 0) throw new Error('the reference forward has no dropout masks');
    return x;
  },
  droppath: (node, x) => {
    if (node.args.p !== 0) throw new Error('the reference forward has no droppath masks');
    return x;
  },
};
