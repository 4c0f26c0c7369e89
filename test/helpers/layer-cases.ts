/**
 * The case tables of the numerical tests, in one place so that test/registry.test.ts can require
 * every registry kind and every combinator in each: the lowering against the float64 reference
 * (emit-layers.test.ts), the gradient against finite differences (grad-layers.test.ts,
 * grad-combinators.test.ts) and the PyTorch parity (export-torch.test.ts, over every model of these
 * files). A new kind adds its cases here and its forward to test/reference/layers.ts; a new
 * combinator its cases here and its forward to test/reference/combinators.ts.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { ParamSpec } from '../../src/compiler/layers/types.ts';
import * as ref from '../reference/ops.ts';
import { modelSource, weight, type Compiled } from './emit.ts';
import { uniform } from './random.ts';

// ---------------------------------------------------------------------------------------------
// Lowering: the inference graph on onnxruntime against the reference ops

export interface LoweringCase {
  name: string;
  /** The per-sample input shape; the batch is 2. */
  input: number[];
  body: string;
  /** The expected output from the batch x ([2, ...input]) and the compiled parameters. */
  expected(x: Float32Array, dims: number[], c: Compiled): ref.Result;
  /** Parameters from `randomParams(seed)` instead of their initial values. */
  randomSeed?: number;
  /** The range of the input's values (default [-2, 2]). */
  xRange?: [number, number];
  /** Source before the model (blocks it uses). */
  prelude?: string;
}

/** A lowering case's source: its prelude, then a model of `input` and `body`. */
export const loweringSource = (k: LoweringCase) => `${k.prelude ?? ''}${modelSource(k.input.join('x'), k.body)}`;

/** Random values for the parameters (running variances positive), for an EmitOptions init. */
export const randomParams = (seed: number) => (name: string, spec: ParamSpec) => {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('running_var')) return uniform(seed + name.length, n, 0.5, 2);
  return uniform(seed + name.length * 7, n, -1, 1);
};

type Pads = [number, number, number, number];

/**
 * A conv or dwconv case whose padding, stride and dilation are spelled out, not taken from the
 * checker's window, so the case checks how `pad=same` and friends resolve too.
 */
function convCase(name: string, input: number[], body: string, o: ref.Conv2dOptions, bias = true): LoweringCase {
  const prefix = body.startsWith('dwconv') ? 'dwconv1' : 'conv1';
  return {
    name, input, body,
    expected(x, dims, c) {
      const w = c.weights.get(`${prefix}.weight`)!;
      if (!bias) expect(c.weights.has(`${prefix}.bias`)).toBe(false);
      return ref.conv2d(x, dims, w.data, w.dims, bias ? weight(c, `${prefix}.bias`) : null, o);
    },
  };
}

/** A convtranspose case with its padding, output padding, stride and dilation spelled out. */
function convTransposeCase(name: string, input: number[], body: string, o: ref.ConvTranspose2dOptions, bias = true): LoweringCase {
  return {
    name, input, body,
    expected(x, dims, c) {
      const w = c.weights.get('convtranspose1.weight')!;
      if (!bias) expect(c.weights.has('convtranspose1.bias')).toBe(false);
      return ref.convTranspose2d(x, dims, w.data, w.dims, bias ? weight(c, 'convtranspose1.bias') : null, o);
    },
  };
}

/** A case whose expected output depends on the input alone (activations, pools). */
const plain = (body: string, input: number[], f: (x: Float32Array, dims: number[]) => ref.Result, name = body): LoweringCase =>
  ({ name, input, body, expected: (x, dims) => f(x, dims) });

const MAP = [3, 4, 5];

export const LOWERING_CASES: readonly LoweringCase[] = [
  convCase('odd sizes, asymmetric explicit pads, dilation', [3, 7, 9], 'conv 4 3x2 stride=2x1 pad=[1,0,2,1] dilation=1x2', { pads: [1, 0, 2, 1], stride: [2, 1], dilation: [1, 2] }),
  convCase('pad=same with stride 2 on odd and even sizes (extra pad at the end)', [2, 7, 6], 'conv 3 3x3 stride=2 pad=same', { pads: [1, 0, 1, 1], stride: [2, 2] }),
  convCase('pad=same, even kernel, stride 1', [2, 5, 5], 'conv 3 4x4 pad=same', { pads: [1, 1, 2, 2], stride: [1, 1] }),
  convCase('groups with stride and symmetric padding', [4, 6, 5], 'conv 6 3x3 groups=2 stride=2 pad=1', { pads: [1, 1, 1, 1], stride: [2, 2], groups: 2 }),
  convCase('no bias, PHxPW padding', [3, 5, 8], 'conv 5 3x5 pad=2x1 bias=off', { pads: [2, 1, 2, 1], stride: [1, 1] }, false),
  convCase('dwconv dilated, multiplier 2', [3, 6, 5], 'dwconv 3x3 dilation=2 pad=2 multiplier=2', { pads: [2, 2, 2, 2], stride: [1, 1], dilation: [2, 2], groups: 3 }),
  convCase('dwconv stride 2 pad=same', [4, 9, 9], 'dwconv 5x5 stride=2 pad=same', { pads: [2, 2, 2, 2], stride: [2, 2], groups: 4 }),

  convTransposeCase('U-Net up-convolution', [3, 4, 5], 'convtranspose 4 2x2 stride=2', { stride: [2, 2] }),
  convTransposeCase('pad 1 with output padding 1', [3, 5, 4], 'convtranspose 4 3x3 stride=2 pad=1 output_padding=1', { stride: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 1] }),
  convTransposeCase('asymmetric pads, dilation, groups, no bias', [4, 4, 3], 'convtranspose 6 3x2 stride=2x3 pad=[1,0,2,1] dilation=2x1 groups=2 bias=off',
    { stride: [2, 3], pads: [1, 0, 2, 1], dilation: [2, 1], groups: 2 }, false),
  convTransposeCase('pad=same cropping the excess at the end', [2, 5, 4], 'deconv 3 3x3 stride=2 pad=same', { stride: [2, 2], pads: [0, 0, 1, 1] }),
  convTransposeCase('pad=same with a kernel shorter than the stride (output padding)', [2, 3, 2], 'upconv 2 1x1 stride=3 pad=same', { stride: [3, 3], outputPadding: [2, 2] }),
  convTransposeCase('dilated, output padding along W', [2, 4, 3], 'convtranspose 2 3x3 stride=1x3 dilation=3 output_padding=0x2', { stride: [1, 3], dilation: [3, 3], outputPadding: [0, 2] }),

  ...[[3, 5, 4], [6]].map((input): LoweringCase => ({
    name: `bn (inference, running statistics) on ${input.length === 1 ? 'a vector' : 'a feature map'}`,
    input, body: 'bn eps=1e-3', randomSeed: 5,
    expected(x, dims, c) {
      const p = (n: string) => weight(c, `bn1.${n}`);
      return ref.batchNormInference(x, dims, p('weight'), p('bias'), p('running_mean'), p('running_var'), 1e-3);
    },
  })),
  {
    name: 'flatten then dense (Gemm with the [units, in] weight), with and without bias', input: [2, 3, 5], body: 'flatten -> dense 7 -> dense 4 bias=off',
    expected(x, _dims, c) {
      expect(c.weights.get('dense1.weight')!.dims).toEqual([7, 30]);
      expect(c.weights.has('dense2.bias')).toBe(false);
      const h = ref.dense(x, [2, 30], weight(c, 'dense1.weight'), [7, 30], weight(c, 'dense1.bias'));
      return ref.dense(h.data, h.shape, weight(c, 'dense2.weight'), [4, 7], null);
    },
  },
  ...[[5, 4, 3], [7]].map((input): LoweringCase => ({
    name: `layernorm over ${input.length === 1 ? 'a vector' : 'the channels at each position of a feature map'}`,
    input, body: 'layernorm eps=1e-3', randomSeed: 6,
    expected: (x, dims, c) => ref.layerNorm(x, dims, weight(c, 'layernorm1.weight'), weight(c, 'layernorm1.bias'), 1e-3),
  })),
  plain('dropout 0.3 -> relu', [3, 4, 4], (x, d) => ref.relu(x, d), 'dropout is the identity at inference (before relu)'),
  plain('dropout', [5], (x, d) => ({ data: Float64Array.from(x), shape: d }), 'dropout is the identity at inference (alone)'),
  plain('droppath 0.3 -> relu', [3, 4, 4], (x, d) => ref.relu(x, d), 'droppath is the identity at inference (before relu)'),
  plain('droppath 0.5', [5], ref.identity, 'droppath is the identity at inference (alone, on a vector)'),

  plain('relu', MAP, ref.relu),
  { ...plain('relu6', MAP, ref.relu6, 'relu6 (inputs past 0 and 6)'), xRange: [-9, 9] },
  plain('leakyrelu 0.2', MAP, (x, d) => ref.leakyRelu(x, d, 0.2)),
  plain('leakyrelu', MAP, (x, d) => ref.leakyRelu(x, d, 0.01)),
  plain('elu 0.7', MAP, (x, d) => ref.elu(x, d, 0.7)),
  plain('gelu', MAP, ref.gelu),
  plain('silu', MAP, ref.silu),
  plain('swish', MAP, ref.silu),
  plain('sigmoid', MAP, ref.sigmoid),
  plain('tanh', MAP, ref.tanh),
  plain('hardswish', MAP, ref.hardswish),
  { ...plain('hardsigmoid', MAP, ref.hardsigmoid, 'hardsigmoid, PyTorch\'s relu6(x + 3) / 6 (inputs past -3 and 3)'), xRange: [-5, 5] },
  plain('identity', MAP, ref.identity, 'identity on a feature map'),
  plain('identity', [7], ref.identity, 'identity on a vector'),
  plain('identity -> tanh -> identity', MAP, ref.tanh, 'identity between layers'),
  plain('softmax', MAP, ref.softmaxChannels, 'softmax over the channels'),
  plain('softmax', [7], ref.softmax, 'softmax over a vector'),
  {
    name: 'prelu: one slope, 0.25 by default', input: [3, 4, 4], body: 'prelu',
    expected(x, dims, c) {
      expect(c.weights.get('prelu1.weight')!.dims).toEqual([1]);
      return ref.leakyRelu(x, dims, 0.25);
    },
  },
  ...[[3, 4, 5], [6]].map((input): LoweringCase => ({
    name: `prelu per channel on ${input.length === 1 ? 'a vector' : 'a feature map'}`, input, body: 'prelu per_channel=on', randomSeed: 9,
    expected(x, dims, c) {
      expect(c.weights.get('prelu1.weight')!.dims).toEqual([input[0]]);
      return ref.prelu(x, dims, weight(c, 'prelu1.weight'));
    },
  })),

  ...([[[6, 3, 2], 2], [[12, 2, 3], 3], [[12, 2, 3], 4], [[5, 2, 2], 1], [[5, 2, 2], 5]] as [number[], number][]).map(([input, groups]) =>
    plain(`shuffle ${groups}`, input, (x, d) => ref.channelShuffle(x, d, groups), `shuffle ${groups} of ${input[0]} channels`)),
  ...[[4, 3, 2], [6]].map((input): LoweringCase => ({
    name: `scale, [C, 1, 1] on a map and [C] on a vector: ${input.join('×')}`, input, body: 'scale', randomSeed: 8,
    expected(x, dims, c) {
      expect(c.weights.get('scale1.layer_scale')!.dims).toEqual(input.length === 3 ? [input[0], 1, 1] : [input[0]]);
      return ref.channelScale(x, dims, weight(c, 'scale1.layer_scale'));
    },
  })),

  plain('maxpool 2', [3, 6, 7], (x, d) => ref.maxPool2d(x, d, { kernel: [2, 2] })),
  plain('maxpool 3 stride=2 pad=[1,0,1,1]', [2, 7, 6], (x, d) => ref.maxPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 0, 1, 1] })),
  plain('maxpool 3x2 stride=1x2 pad=same', [2, 5, 7], (x, d) => ref.maxPool2d(x, d, { kernel: [3, 2], stride: [1, 2], pads: [1, 0, 1, 1] })),
  plain('avgpool 3 stride=2 pad=1', [2, 6, 7], (x, d) => ref.avgPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], countIncludePad: true })),
  plain('avgpool 3 stride=2 pad=1 count_pad=off', [2, 6, 7], (x, d) => ref.avgPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], countIncludePad: false })),
  plain('avgpool 2x3 pad=[0,1,1,0] count_pad=off', [2, 5, 7], (x, d) => ref.avgPool2d(x, d, { kernel: [2, 3], pads: [0, 1, 1, 0] as Pads, countIncludePad: false })),
  plain('sumpool 2', [3, 6, 6], (x, d) => ref.sumPool2d(x, d, { kernel: [2, 2] })),
  plain('sumpool 3 stride=2 pad=1', [2, 7, 6], (x, d) => ref.sumPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1] })),
  // Ceil mode: GoogLeNet's maxpool 3 stride=2 on 112 and 7, a window PyTorch leaves out as it would
  // start in the padding, and avgpool divisors counting padding but not ceil mode's overhang.
  plain('maxpool 3 stride=2 ceil=on', [2, 8, 7], (x, d) => ref.maxPool2d(x, d, { kernel: [3, 3], stride: [2, 2], ceil: true })),
  plain('maxpool 1x2 stride=1x3 pad=0x1 ceil=on', [2, 3, 5], (x, d) => ref.maxPool2d(x, d, { kernel: [1, 2], stride: [1, 3], pads: [0, 1, 0, 1], ceil: true })),
  plain('avgpool 3 stride=2 pad=1 ceil=on', [2, 6, 7], (x, d) => ref.avgPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], ceil: true })),
  plain('avgpool 3 stride=2 pad=1 ceil=on count_pad=off', [2, 6, 7], (x, d) => ref.avgPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], ceil: true, countIncludePad: false })),
  plain('avgpool 2 stride=3 pad=[1,0,0,1] ceil=on', [2, 6, 5], (x, d) => ref.avgPool2d(x, d, { kernel: [2, 2], stride: [3, 3], pads: [1, 0, 0, 1], ceil: true })),
  plain('sumpool 3 stride=2 ceil=on', [2, 6, 7], (x, d) => ref.sumPool2d(x, d, { kernel: [3, 3], stride: [2, 2], ceil: true })),
  plain('globalavgpool', [3, 5, 4], ref.globalAvgPool),
  plain('gmp', [3, 5, 4], ref.globalMaxPool),

  plain('adaptiveavgpool 7', [2, 7, 7], (x, d) => ref.adaptiveAvgPool2d(x, d, [7, 7]), 'adaptiveavgpool to the input size (no node)'),
  plain('adaptiveavgpool 7', [3, 14, 21], (x, d) => ref.adaptiveAvgPool2d(x, d, [7, 7]), 'adaptiveavgpool dividing the input (AveragePool)'),
  plain('adaptiveavgpool 4x5', [2, 10, 9], (x, d) => ref.adaptiveAvgPool2d(x, d, [4, 5]), 'adaptiveavgpool with overlapping bins (matrix products)'),
  plain('adaptive_avgpool 7x4', [2, 5, 3], (x, d) => ref.adaptiveAvgPool2d(x, d, [7, 4]), 'adaptiveavgpool to more than the input'),
  plain('adaptiveavgpool 1', [3, 5, 4], (x, d) => ref.adaptiveAvgPool2d(x, d, [1, 1]), 'adaptiveavgpool to 1x1'),
  plain('pixelshuffle 2', [8, 3, 4], (x, d) => ref.pixelShuffle(x, d, 2)),
  plain('depth_to_space 3', [9, 2, 3], (x, d) => ref.pixelShuffle(x, d, 3)),
  plain('upsample 2', [3, 4, 5], (x, d) => ref.upsampleNearest2d(x, d, [8, 10])),
  plain('upsample 3x1', [2, 3, 4], (x, d) => ref.upsampleNearest2d(x, d, [9, 4])),
  // Sizes where onnxruntime's Resize picks other neighbours than PyTorch: 6 to 74, 14 to 2.
  plain('upsample size=74x2', [2, 6, 14], (x, d) => ref.upsampleNearest2d(x, d, [74, 2])),
  plain('upsample size=7x11', [2, 3, 4], (x, d) => ref.upsampleNearest2d(x, d, [7, 11])),
  plain('upsample 2 mode=bilinear', [3, 4, 5], (x, d) => ref.upsampleBilinear2d(x, d, [8, 10])),
  plain('upsample size=3x9 mode=bilinear', [2, 5, 4], (x, d) => ref.upsampleBilinear2d(x, d, [3, 9])),
  plain('upsample size=7x1 mode=bilinear align_corners=on', [2, 3, 4], (x, d) => ref.upsampleBilinear2d(x, d, [7, 1], true)),
];

/** A convolution of `x` with the compiled weights of layer `name`. */
const convOf = (c: Compiled, name: string, x: ArrayLike<number>, xs: number[], o: ref.Conv2dOptions = {}, bias = true) => {
  const w = c.weights.get(`${name}.weight`)!;
  return ref.conv2d(x as Float64Array, xs, w.data, w.dims, bias ? weight(c, `${name}.bias`) : null, o);
};
const addInto = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]);

/** Combinators against references composed by hand from the reference ops. */
export const COMBINATOR_LOWERING_CASES: readonly LoweringCase[] = [
  {
    name: 'residual with an identity shortcut: x + f(x)', input: [3, 5, 6], body: 'residual { conv 3 3x3 pad=1 -> relu }',
    expected(x, dims, c) {
      const f = ref.relu(convOf(c, 'residual1.conv1', x, dims, { pads: [1, 1, 1, 1] }).data, dims);
      return { data: addInto(f.data, x), shape: dims };
    },
  },
  {
    name: 'residual with a projection shortcut: f(x) + bn(conv1x1 stride 2 (x))', input: [3, 8, 6], body: 'residual project { conv 5 3x3 stride=2 pad=1 }', randomSeed: 3,
    expected(x, dims, c) {
      const body = convOf(c, 'residual1.conv1', x, dims, { stride: [2, 2], pads: [1, 1, 1, 1] });
      expect(c.weights.has('residual1.shortcut.conv.bias')).toBe(false);
      const proj = convOf(c, 'residual1.shortcut.conv', x, dims, { stride: [2, 2] }, false);
      const p = (n: string) => weight(c, `residual1.shortcut.bn.${n}`);
      const short = ref.batchNormInference(proj.data, proj.shape, p('weight'), p('bias'), p('running_mean'), p('running_var'));
      return { data: addInto(body.data, short.data), shape: body.shape };
    },
  },
  {
    name: 'concat joins branches on channels', input: [3, 5, 5], body: 'concat { conv 2 1x1 | maxpool 3 stride=1 pad=1 | conv 4 3x3 pad=same -> tanh }',
    expected(x, dims, c) {
      const a = convOf(c, 'concat1.0.conv1', x, dims);
      const b = ref.maxPool2d(x, dims, { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] });
      const d = ref.tanh(convOf(c, 'concat1.2.conv1', x, dims, { pads: [1, 1, 1, 1] }).data, [2, 4, 5, 5]);
      const expected: number[] = [];
      for (let n = 0; n < 2; n++)
        for (const [t, ch] of [[a.data, 2], [b.data, 3], [d.data, 4]] as const) expected.push(...t.slice(n * ch * 25, (n + 1) * ch * 25));
      return { data: Float64Array.from(expected), shape: [2, 9, 5, 5] };
    },
  },
  {
    name: 'add sums two branches', input: [2, 4, 4], body: 'add { conv 2 1x1 | maxpool 1 }',
    expected: (x, dims, c) => ({ data: addInto(convOf(c, 'add1.0.conv1', x, dims).data, x), shape: dims }),
  },
  {
    name: 'add sums three branches', input: [2, 4, 4], body: 'add { conv 2 1x1 | conv 2 3x3 pad=1 | maxpool 1 }',
    expected(x, dims, c) {
      const a = convOf(c, 'add1.0.conv1', x, dims).data;
      const b = convOf(c, 'add1.1.conv1', x, dims, { pads: [1, 1, 1, 1] }).data;
      return { data: addInto(addInto(a, b), x), shape: dims };
    },
  },
  {
    name: 'split runs branch i on channel part i and joins the outputs; an empty branch passes its part', input: [5, 4, 4], body: 'split [2, 3] { | conv 4 3x3 pad=1 -> tanh }',
    expected(x, _dims, c) {
      const part = (from: number, to: number) => { const p: number[] = []; for (let n = 0; n < 2; n++) p.push(...x.slice((n * 5 + from) * 16, (n * 5 + to) * 16)); return Float64Array.from(p); };
      const b = ref.tanh(convOf(c, 'split1.1.conv1', part(2, 5), [2, 3, 4, 4], { pads: [1, 1, 1, 1] }).data, [2, 4, 4, 4]);
      const a = part(0, 2);
      const expected: number[] = [];
      for (let n = 0; n < 2; n++) expected.push(...a.slice(n * 32, (n + 1) * 32), ...b.data.slice(n * 64, (n + 1) * 64));
      return { data: Float64Array.from(expected), shape: [2, 6, 4, 4] };
    },
  },
  {
    name: 'empty branches pass the input; repeat 0 passes it on', input: [2, 3, 3], body: 'concat { | conv 1 1x1 } -> repeat 0 { conv 7 1x1 } -> add { | maxpool 1 }',
    expected(x, dims, c) {
      const f = convOf(c, 'concat1.1.conv1', x, dims);
      const joined: number[] = [];
      for (let n = 0; n < 2; n++) joined.push(...x.slice(n * 18, (n + 1) * 18), ...f.data.slice(n * 9, (n + 1) * 9));
      return { data: Float64Array.from(joined, (v) => 2 * v), shape: [2, 3, 3, 3] };
    },
  },
  {
    name: 'gate multiplies by a broadcast C×1×1 gate (squeeze-and-excitation)', input: [3, 4, 5], body: 'gate { globalavgpool -> conv 2 1x1 -> relu -> conv 3 1x1 -> sigmoid }',
    expected(x, dims, c) {
      const g0 = ref.globalAvgPool(x, dims);
      const g1 = ref.relu(convOf(c, 'gate1.conv1', g0.data, g0.shape).data, [2, 2, 1, 1]);
      const g = ref.sigmoid(convOf(c, 'gate1.conv2', g1.data, [2, 2, 1, 1]).data, [2, 3, 1, 1]);
      return { data: Float64Array.from(x, (v, i) => v * g.data[Math.floor(i / 20)]), shape: dims };
    },
  },
  {
    name: 'frozen lowers like its body; blocks and repeats name parameters after the source', input: [2, 4, 4],
    prelude: 'block vgg(c) { conv c 3x3 pad=same -> relu -> conv c 1x1 }\n', body: 'frozen { stem: conv 3 1x1 } -> vgg(2) -> repeat 2 { conv 2 1x1 }',
    expected(x, dims, c) {
      expect([...c.weights.keys()].filter((n) => !n.includes('/')).sort()).toEqual([
        'repeat1.0.conv1.bias', 'repeat1.0.conv1.weight', 'repeat1.1.conv1.bias', 'repeat1.1.conv1.weight',
        'stem.bias', 'stem.weight', 'vgg1.conv1.bias', 'vgg1.conv1.weight', 'vgg1.conv2.bias', 'vgg1.conv2.weight',
      ]);
      let h = convOf(c, 'stem', x, dims);
      h = ref.relu(convOf(c, 'vgg1.conv1', h.data, h.shape, { pads: [1, 1, 1, 1] }).data, dims);
      for (const name of ['vgg1.conv2', 'repeat1.0.conv1', 'repeat1.1.conv1']) h = convOf(c, name, h.data, h.shape);
      return h;
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Gradients: the backward pass against central differences of the reference forward

export interface GradientCase {
  name: string;
  /** The input shape as the language writes it (`3x4x5`). */
  input: string;
  body: string;
  batch?: number;
  xRange?: [number, number];
}

const grads = (group: string, cases: [string, string, string][], opts: Omit<GradientCase, 'name' | 'input' | 'body'> = {}): GradientCase[] =>
  cases.map(([name, input, body]) => ({ name: `${group}: ${name}`, input, body, ...opts }));

export const GRADIENT_CASES: readonly GradientCase[] = [
  ...grads('conv', [
    ['plain 3x3', '3x6x5', 'conv 4 3x3'],
    ['stride 2, asymmetric pads, dilation, leftover rows', '3x9x8', 'conv 4 3x2 stride=2x1 pad=[1,0,2,1] dilation=1x2'],
    ['stride 3 dropping rows and columns', '2x10x11', 'conv 3 3x3 stride=3'],
    ['pad=same stride 2 on odd sizes', '2x7x6', 'conv 3 3x3 stride=2 pad=same'],
    ['even kernel pad=same', '2x5x5', 'conv 3 4x4 pad=same'],
    ['groups with stride and padding', '4x6x5', 'conv 6 3x3 groups=2 stride=2 pad=1'],
    ['no bias, large pads', '3x5x8', 'conv 5 3x5 pad=2x1 bias=off'],
    ['dilated, stride 3 with leftover rows past the dilation', '2x11x10', 'conv 2 2x2 stride=3 dilation=2'],
    ['dilated stride 2 with one leftover row', '2x12x9', 'conv 2 3x3 stride=2 dilation=2'],
    ['1x1 stride 2', '3x7x7', 'conv 4 1x1 stride=2'],
    ['stride 1 dilated with asymmetric pads keeping the size (dx as a Conv)', '2x9x8', 'conv 3 3x2 dilation=2x1 pad=[2,0,2,1]'],
    ['padding wider than the kernel (dx as a ConvTranspose)', '2x5x5', 'conv 3 2x2 pad=2'],
    ['a layer too large for im2col (dW as a Conv over x and dy)', '16x64x64', 'conv 2 3x3 pad=[1,0,2,1]'],
    ['16 input channels (dW as one GEMM per kernel tap), stride, asymmetric pads, dilation', '16x7x6', 'conv 3 3x2 stride=2x1 pad=[1,0,2,1] dilation=1x2'],
    ['dwconv dilated, multiplier 2', '3x6x5', 'dwconv 3x3 dilation=2 pad=2 multiplier=2'],
    ['dwconv stride 2 pad=same', '4x9x9', 'dwconv 5x5 stride=2 pad=same'],
  ]),
  ...grads('convtranspose', [
    ['U-Net 2x2 stride 2', '3x4x5', 'convtranspose 4 2x2 stride=2'],
    ['pad 1, output padding 1', '3x4x3', 'convtranspose 4 3x3 stride=2 pad=1 output_padding=1'],
    ['asymmetric pads, dilation, groups, no bias', '4x4x3', 'convtranspose 6 3x2 stride=2x3 pad=[1,0,2,1] dilation=2x1 groups=2 bias=off'],
    ['pad=same, kernel shorter than the stride', '2x3x2', 'convtranspose 2 1x1 stride=3 pad=same'],
    ['dilated, output padding along W', '2x4x3', 'convtranspose 2 3x3 stride=1x3 dilation=3 output_padding=0x2'],
    ['16 filters (dw as one GEMM per kernel tap)', '3x4x5', 'convtranspose 16 3x3 stride=2 pad=1'],
    ['too large for im2col (dw as a Conv over dy and x)', '4x64x64', 'convtranspose 16 3x3 stride=2 pad=1'],
  ]),
  ...grads('pooling', [
    ['maxpool 2', '2x6x6', 'maxpool 2'],
    ['maxpool 3 stride 2 pad 1 odd size (overlapping windows)', '2x7x5', 'maxpool 3 stride=2 pad=1'],
    ['maxpool 2 on odd size (dropped row)', '2x5x7', 'maxpool 2'],
    ['maxpool 2 with end padding (non-overlapping: MaxUnpool)', '2x7x7', 'maxpool 2 pad=[0,0,1,1]'],
    ['maxpool 2x2 stride 3 (gaps between windows)', '2x8x7', 'maxpool 2 stride=3'],
    ['avgpool 3 stride 2 pad 1 count_pad on', '2x7x6', 'avgpool 3 stride=2 pad=1'],
    ['avgpool count_pad off, asymmetric pads', '2x7x6', 'avgpool 3 stride=2 pad=[1,0,1,2] count_pad=off'],
    ['avgpool 2 on odd size', '3x5x5', 'avgpool 2'],
    ['sumpool 2x3 stride 1 pad same', '2x5x6', 'sumpool 2x3 stride=1 pad=same'],
    ['maxpool 3 stride 2 ceil (overlapping, a partial last window)', '2x8x7', 'maxpool 3 stride=2 ceil=on'],
    ['maxpool 2 ceil on odd sizes (MaxUnpool)', '2x5x7', 'maxpool 2 ceil=on'],
    ['avgpool ceil, count_pad on (divisors without the overhang)', '2x6x7', 'avgpool 3 stride=2 pad=1 ceil=on'],
    ['avgpool ceil, count_pad off, asymmetric pads', '2x6x5', 'avgpool 2 stride=3 pad=[1,0,0,1] ceil=on count_pad=off'],
    ['sumpool ceil', '2x6x7', 'sumpool 3 stride=2 ceil=on'],
    ['globalavgpool', '3x5x4', 'globalavgpool'],
    ['globalmaxpool', '3x5x4', 'globalmaxpool'],
  ]),
  ...grads('resampling', [
    ['adaptiveavgpool at the input size', '2x4x3', 'adaptiveavgpool 4x3'],
    ['adaptiveavgpool dividing the input', '2x6x4', 'adaptiveavgpool 3x2'],
    ['adaptiveavgpool with overlapping bins', '2x7x5', 'adaptiveavgpool 3'],
    ['adaptiveavgpool to more than the input along H', '2x3x6', 'adaptiveavgpool 5x4'],
    ['pixelshuffle 2 on 8 channels', '8x3x4', 'pixelshuffle 2'],
    ['pixelshuffle 3', '9x2x3', 'pixelshuffle 3'],
    ['upsample 2 nearest', '2x3x4', 'upsample 2'],
    ['upsample nearest to a size not a multiple (and down along W)', '2x4x6', 'upsample size=7x4'],
    ['upsample 2x3 bilinear', '2x3x4', 'upsample 2x3 mode=bilinear'],
    ['upsample bilinear to a size, align_corners', '2x4x3', 'upsample size=6x5 mode=bilinear align_corners=on'],
    ['upsample bilinear down along H, identity along W', '2x5x3', 'upsample size=3x3 mode=bilinear'],
  ]),
  ...grads('normalisation, activation and head', [
    ['bn on a feature map (batch statistics)', '3x4x5', 'bn eps=1e-3'],
    ['bn on a vector', '6', 'bn'],
    ['layernorm over channels on a feature map', '5x4x3', 'layernorm eps=1e-3'],
    ['layernorm over a vector', '7', 'layernorm'],
    ['layernorm with one channel (x̂ = 0)', '1x3x2', 'layernorm'],
    ['relu', '3x4x5', 'relu'],
    ['leakyrelu', '3x4x5', 'leakyrelu 0.2'],
    ['prelu shared', '3x4x5', 'prelu'],
    ['prelu per channel', '3x4x5', 'prelu per_channel=on'],
    ['prelu per channel on a vector', '7', 'prelu per_channel=on'],
    ['elu', '3x4x5', 'elu 0.7'],
    ['gelu', '3x4x5', 'gelu'],
    ['silu', '3x4x5', 'silu'],
    ['sigmoid', '3x4x5', 'sigmoid'],
    ['tanh', '3x4x5', 'tanh'],
    ['hardswish', '3x4x5', 'hardswish'],
    ['identity on a feature map', '3x4x5', 'identity'],
    ['identity on a vector, between layers', '6', 'dense 5 -> identity -> tanh'],
    ['softmax over channels', '4x3x2', 'softmax'],
    ['softmax over a vector', '7', 'softmax'],
    ['flatten then dense', '3x4x5', 'flatten -> dense 6'],
    ['dense without bias', '9', 'dense 4 bias=off'],
    ['dropout p=0', '9', 'dropout 0'],
    ['droppath p=0', '9', 'droppath 0'],
    ['droppath p=0 at the end of a residual body', '3x4x4', 'residual { conv 3 3x3 pad=1 -> droppath 0 }'],
  ], { batch: 3, xRange: [-4, 4] }),
  ...grads('normalisation, activation and head', [['relu6, inputs on both sides of 0 and 6', '3x4x5', 'relu6']], { batch: 3, xRange: [-9, 9] }),
  ...grads('normalisation, activation and head', [['hardsigmoid, inputs on both sides of -3 and 3', '3x4x5', 'hardsigmoid']], { batch: 3, xRange: [-5, 5] }),
  ...grads('channels', [
    ['shuffle 3 of 6 channels', '6x3x2', 'shuffle 3'],
    ['shuffle 4 of 12 channels (not its own inverse)', '12x2x3', 'shuffle 4'],
    ['shuffle in a residual body', '4x3x3', 'residual { conv 4 1x1 -> shuffle 2 -> conv 4 3x3 pad=1 }'],
    ['scale on a feature map', '4x3x5', 'scale'],
    ['scale on a vector', '7', 'scale init=0.3'],
    ['scale at the end of a residual body (layer scale)', '4x3x3', 'residual { dwconv 3x3 pad=1 -> layernorm -> conv 4 1x1 -> scale }'],
    ['frozen layernorm and scale: no parameter gradients, the input gradient through them', '4x3x3', 'conv 4 1x1 -> frozen { layernorm -> scale init=0.5 } -> conv 2 1x1'],
  ]),
];

/** Combinators, frozen parts and whole small networks (batch 3). */
export const COMBINATOR_GRADIENT_CASES: readonly GradientCase[] = grads('combinators', [
  ['residual, identity shortcut', '3x5x5', 'residual { conv 3 3x3 pad=1 -> relu -> conv 3 3x3 pad=1 } -> relu'],
  ['residual with projection (stride 2, bn)', '3x6x6', 'residual project { conv 4 3x3 stride=2 pad=1 -> bn -> relu -> conv 4 3x3 pad=1 }'],
  ['concat of conv, conv and maxpool branches', '3x5x6', 'concat { conv 2 1x1 | conv 3 3x3 pad=same | maxpool 3 stride=1 pad=1 }'],
  ['add of three branches', '3x5x5', 'add { conv 3 3x3 pad=same | conv 3 1x1 | conv 3 1x1 -> tanh }'],
  ['gate (squeeze-and-excitation)', '4x5x5', 'gate { globalavgpool -> conv 2 1x1 -> silu -> conv 4 1x1 -> sigmoid }'],
  ['gate broadcasting a per-position map', '3x4x5', 'gate { conv 1 3x3 pad=same -> sigmoid }'],
  ['a small network', '2x9x9', 'conv 4 3x3 pad=1 -> bn -> relu -> maxpool 2 -> conv 5 3x3 -> gelu -> flatten -> dense 6 -> softmax'],
  ['split in equal halves (a ShuffleNetV2 unit)', '4x5x5', 'split { | conv 2 1x1 -> bn -> relu -> dwconv 3x3 pad=1 -> conv 2 1x1 } -> relu'],
  ['split with sizes, both branches trained', '5x4x4', 'split [2, 3] { conv 3 3x3 pad=1 | conv 1 1x1 -> tanh }'],
  ['empty branches in concat and add', '3x4x4', 'concat { | conv 2 3x3 pad=same } -> add { conv 5 1x1 | }'],
  ['repeat 0 passes its input', '3x4x4', 'conv 2 1x1 -> repeat 0 { conv 3 1x1 } -> relu -> conv 2 1x1'],
  ['repeat 2: copies with parameters of their own', '3x5x5', 'repeat 2 { conv 3 3x3 pad=1 -> relu }'],
  ['frozen residual between trained layers (its bn on the running statistics)', '3x5x5', 'conv 3 1x1 -> frozen { residual { conv 3 3x3 pad=1 -> bn } } -> conv 2 1x1'],
  ['nested blocks', '4x6x6', 'residual { concat { conv 2 3x3 pad=1 | dwconv 3x3 pad=1 multiplier=1 -> conv 2 1x1 } -> bn -> relu } -> avgpool 2 -> gate { gap -> conv 4 1x1 -> sigmoid }'],
], { batch: 3 });

// ---------------------------------------------------------------------------------------------
// PyTorch parity: every model of these files, model.py against the ONNX graph

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The .cnn files under `dir` (repository-relative), sorted. */
export const cnnFiles = (dir: string): string[] =>
  readdirSync(path.join(root, dir), { recursive: true }).map(String).filter((f) => f.endsWith('.cnn')).sort().map((f) => path.join(dir, f));

/** Repository-relative .cnn files whose every model export-torch.test.ts runs in PyTorch and onnxruntime. */
export const TORCH_PARITY_FILES: readonly string[] = [...cnnFiles('examples'), ...cnnFiles('bench/models'), ...cnnFiles('test/fixtures/export')];
