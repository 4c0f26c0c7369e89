/**
 * Each layer kind's ONNX lowering, run on onnxruntime, against the plain-loop reference ops,
 * on small seeded tensors with odd sizes, strides, paddings, dilations and groups; and the
 * combinators against references composed by hand.
 */
import { describe, expect, it } from 'vitest';
import * as ref from './reference/ops.ts';
import { uniform } from './helpers/random.ts';
import { compile, expectClose, modelSource, run, size, weight, type Compiled } from './helpers/emit.ts';
import type { ParamSpec } from '../src/compiler/layers/types.ts';
import { check } from '../src/index.ts';
import { GraphBuilder, buildModel } from '../src/compiler/onnx/builder.ts';
import { LowerContext, inputParams } from '../src/compiler/emit/context.ts';
import { lowerNode } from '../src/compiler/emit/lower.ts';
import { createSession, floatTensor, runSession } from '../src/runtime/session.ts';

type Shape4 = [number, number, number, number];

/** Compiles `input SHAPE` + `body`, runs a seeded batch and returns the result with the input. */
async function lowerAndRun(input: number[], body: string, opts: { batch?: number; seed?: number; init?: (name: string, spec: ParamSpec) => Float32Array | undefined } = {}) {
  const c = compile(modelSource(input.join('x'), body), { seed: opts.seed ?? 7, init: opts.init, partial: true });
  const dims = [opts.batch ?? 2, ...input];
  const x = uniform(101, size(dims), -2, 2);
  const out = await run(c.bytes, x, dims);
  expect(out.dims).toEqual([dims[0], ...c.model.output!]);
  return { c, x, dims, out };
}

/** Random values for the parameters `init` names (variances positive), the rest default. */
const randomParams = (seed: number) => (name: string, spec: ParamSpec) => {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('running_var')) return uniform(seed + name.length, n, 0.5, 2);
  return uniform(seed + name.length * 7, n, -1, 1);
};

describe('conv and dwconv lowering', () => {
  const cases: { name: string; input: number[]; body: string; pads: Shape4; stride: [number, number]; dilation?: [number, number]; groups?: number; bias?: boolean }[] = [
    { name: 'odd sizes, asymmetric explicit pads, dilation', input: [3, 7, 9], body: 'conv 4 3x2 stride=2x1 pad=[1,0,2,1] dilation=1x2', pads: [1, 0, 2, 1], stride: [2, 1], dilation: [1, 2] },
    { name: 'pad=same with stride 2 on odd and even sizes (extra pad at the end)', input: [2, 7, 6], body: 'conv 3 3x3 stride=2 pad=same', pads: [1, 0, 1, 1], stride: [2, 2] },
    { name: 'pad=same, even kernel, stride 1', input: [2, 5, 5], body: 'conv 3 4x4 pad=same', pads: [1, 1, 2, 2], stride: [1, 1] },
    { name: 'groups with stride and symmetric padding', input: [4, 6, 5], body: 'conv 6 3x3 groups=2 stride=2 pad=1', pads: [1, 1, 1, 1], stride: [2, 2], groups: 2 },
    { name: 'no bias, PHxPW padding', input: [3, 5, 8], body: 'conv 5 3x5 pad=2x1 bias=off', pads: [2, 1, 2, 1], stride: [1, 1], bias: false },
    { name: 'dwconv dilated, multiplier 2', input: [3, 6, 5], body: 'dwconv 3x3 dilation=2 pad=2 multiplier=2', pads: [2, 2, 2, 2], stride: [1, 1], dilation: [2, 2], groups: 3 },
    { name: 'dwconv stride 2 pad=same', input: [4, 9, 9], body: 'dwconv 5x5 stride=2 pad=same', pads: [2, 2, 2, 2], stride: [2, 2], groups: 4 },
  ];
  for (const k of cases) {
    it(k.name, async () => {
      const { c, x, dims, out } = await lowerAndRun(k.input, k.body);
      const w = c.weights.get('conv1.weight') ?? c.weights.get('dwconv1.weight')!;
      const prefix = c.weights.has('conv1.weight') ? 'conv1' : 'dwconv1';
      const bias = k.bias === false ? null : weight(c, `${prefix}.bias`);
      if (k.bias === false) expect(c.weights.has(`${prefix}.bias`)).toBe(false);
      const expected = ref.conv2d(x, dims, w.data, w.dims, bias, { stride: k.stride, pads: k.pads, dilation: k.dilation, groups: k.groups });
      expect(out.dims).toEqual(expected.shape);
      expectClose(out.data, expected.data);
    });
  }

  it('initialises weights as PyTorch does: U(-1/sqrt(fanIn), 1/sqrt(fanIn)), deterministically per seed', () => {
    const src = modelSource('4x8x8', 'conv 16 3x3 groups=2 -> flatten -> dense 5');
    const a = compile(src, { seed: 3 }), b = compile(src, { seed: 3 }), other = compile(src, { seed: 4 });
    const w = weight(a, 'conv1.weight');
    const bound = 1 / Math.sqrt(2 * 9);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(Math.max(...weight(a, 'conv1.bias').map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...weight(a, 'dense1.weight').map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(16 * 36));
    expect([...weight(b, 'conv1.weight')]).toEqual([...w]);
    expect([...weight(other, 'conv1.weight')]).not.toEqual([...w]);
  });
});

describe('bn, layernorm, dense, flatten, dropout lowering', () => {
  it('bn (inference, running statistics) on a feature map and on a vector', async () => {
    for (const input of [[3, 5, 4], [6]]) {
      const { c, x, dims, out } = await lowerAndRun(input, 'bn eps=1e-3', { init: randomParams(5) });
      const p = (n: string) => weight(c, `bn1.${n}`);
      const expected = ref.batchNormInference(x, dims, p('weight'), p('bias'), p('running_mean'), p('running_var'), 1e-3);
      expectClose(out.data, expected.data);
    }
  });

  it('layernorm over the channels at each position of a feature map, and over a vector', async () => {
    for (const input of [[5, 4, 3], [7]]) {
      const { c, x, dims, out } = await lowerAndRun(input, 'layernorm eps=1e-3', { init: randomParams(6) });
      expectClose(out.data, ref.layerNorm(x, dims, weight(c, 'layernorm1.weight'), weight(c, 'layernorm1.bias'), 1e-3).data);
    }
  });

  it('layernorm stays exact where the mean is far larger than the spread (two passes), and starts as PyTorch', async () => {
    const c = compile(modelSource('6x3x3', 'layernorm eps=1e-6'), { seed: 7, partial: true });
    expect([...weight(c, 'layernorm1.weight')]).toEqual([1, 1, 1, 1, 1, 1]);
    expect([...weight(c, 'layernorm1.bias')]).toEqual([0, 0, 0, 0, 0, 0]);
    const x = uniform(104, 2 * 54, 99, 101);
    expectClose((await run(c.bytes, x, [2, 6, 3, 3])).data, ref.layerNorm(x, [2, 6, 3, 3], new Float32Array(6).fill(1), new Float32Array(6), 1e-6).data);
  });

  it('bn parameters start as PyTorch: weight 1, bias 0, running mean 0, running var 1', () => {
    const c = compile(modelSource('2x3x3', 'bn'));
    expect([...weight(c, 'bn1.weight')]).toEqual([1, 1]);
    expect([...weight(c, 'bn1.bias')]).toEqual([0, 0]);
    expect([...weight(c, 'bn1.running_mean')]).toEqual([0, 0]);
    expect([...weight(c, 'bn1.running_var')]).toEqual([1, 1]);
  });

  it('flatten then dense (Gemm with the [units, in] weight), with and without bias', async () => {
    const { c, x, out } = await lowerAndRun([2, 3, 5], 'flatten -> dense 7 -> dense 4 bias=off');
    expect(c.weights.get('dense1.weight')!.dims).toEqual([7, 30]);
    const h = ref.dense(x, [2, 30], weight(c, 'dense1.weight'), [7, 30], weight(c, 'dense1.bias'));
    const expected = ref.dense(h.data, h.shape, weight(c, 'dense2.weight'), [4, 7], null);
    expect(c.weights.has('dense2.bias')).toBe(false);
    expectClose(out.data, expected.data);
  });

  it('dropout is the identity at inference', async () => {
    const { x, out } = await lowerAndRun([3, 4, 4], 'dropout 0.3 -> relu');
    expectClose(out.data, ref.relu(x, [2, 3, 4, 4]).data);
    const only = await lowerAndRun([5], 'dropout');
    expectClose(only.out.data, only.x);
  });
});

describe('activation lowering', () => {
  const s = [2, 3, 4, 5];
  const cases: [string, (x: Float32Array) => ref.Result][] = [
    ['relu', (x) => ref.relu(x, s)],
    ['leakyrelu 0.2', (x) => ref.leakyRelu(x, s, 0.2)],
    ['leakyrelu', (x) => ref.leakyRelu(x, s, 0.01)],
    ['elu 0.7', (x) => ref.elu(x, s, 0.7)],
    ['gelu', (x) => ref.gelu(x, s)],
    ['silu', (x) => ref.silu(x, s)],
    ['swish', (x) => ref.silu(x, s)],
    ['sigmoid', (x) => ref.sigmoid(x, s)],
    ['tanh', (x) => ref.tanh(x, s)],
    ['hardswish', (x) => ref.hardswish(x, s)],
    ['softmax', (x) => softmaxChannels(x, s)],
  ];
  it('relu6 (inputs past 0 and 6)', async () => {
    const c = compile(modelSource('3x4x5', 'relu6'), { seed: 7, partial: true });
    const x = uniform(102, 2 * 60, -9, 9);
    expectClose((await run(c.bytes, x, [2, 3, 4, 5])).data, ref.relu6(x, s).data);
  });
  it('hardsigmoid (inputs past -3 and 3) is PyTorch\'s relu6(x + 3) / 6', async () => {
    const c = compile(modelSource('3x4x5', 'hardsigmoid'), { seed: 7, partial: true });
    const x = uniform(103, 2 * 60, -5, 5);
    expectClose((await run(c.bytes, x, [2, 3, 4, 5])).data, ref.hardsigmoid(x, s).data);
  });
  it('identity on a feature map and on a vector, alone and between layers', async () => {
    for (const input of [[3, 4, 5], [7]]) {
      const only = await lowerAndRun(input, 'identity');
      expectClose(only.out.data, only.x);
    }
    const { x, out } = await lowerAndRun([3, 4, 5], 'identity -> tanh -> identity');
    expectClose(out.data, ref.tanh(x, s).data);
  });
  for (const [body, f] of cases) {
    it(body, async () => {
      const { x, out } = await lowerAndRun(s.slice(1), body);
      expectClose(out.data, f(x).data);
    });
  }

  it('softmax over a vector', async () => {
    const { x, out } = await lowerAndRun([7], 'softmax');
    expectClose(out.data, ref.softmax(x, [2, 7]).data);
  });

  it('prelu: one slope (default 0.25), per channel on a feature map and on a vector', async () => {
    const one = await lowerAndRun([3, 4, 4], 'prelu');
    expect(one.c.weights.get('prelu1.weight')!.dims).toEqual([1]);
    expectClose(one.out.data, ref.leakyRelu(one.x, [2, 3, 4, 4], 0.25).data);
    for (const input of [[3, 4, 5], [6]]) {
      const { c, x, dims, out } = await lowerAndRun(input, 'prelu per_channel=on', { init: randomParams(9) });
      expect(c.weights.get('prelu1.weight')!.dims).toEqual([input[0]]);
      expectClose(out.data, ref.prelu(x, dims, weight(c, 'prelu1.weight')).data);
    }
  });
});

/** Softmax over axis 1 of NCHW. */
function softmaxChannels(x: Float32Array, [N, C, H, W]: number[]): ref.Result {
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let p = 0; p < H * W; p++) {
      const idx = (c: number) => (n * C + c) * H * W + p;
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, x[idx(c)]);
      let total = 0;
      for (let c = 0; c < C; c++) total += out[idx(c)] = Math.exp(x[idx(c)] - max);
      for (let c = 0; c < C; c++) out[idx(c)] /= total;
    }
  return { data: out, shape: [N, C, H, W] };
}

describe('pooling lowering', () => {
  const cases: { body: string; input: number[]; f: (x: Float32Array, d: number[]) => ref.Result }[] = [
    { body: 'maxpool 2', input: [3, 6, 7], f: (x, d) => ref.maxPool2d(x, d, { kernel: [2, 2] }) },
    { body: 'maxpool 3 stride=2 pad=[1,0,1,1]', input: [2, 7, 6], f: (x, d) => ref.maxPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 0, 1, 1] }) },
    { body: 'maxpool 3x2 stride=1x2 pad=same', input: [2, 5, 7], f: (x, d) => ref.maxPool2d(x, d, { kernel: [3, 2], stride: [1, 2], pads: [1, 0, 1, 1] }) },
    { body: 'avgpool 3 stride=2 pad=1', input: [2, 6, 7], f: (x, d) => ref.avgPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], countIncludePad: true }) },
    { body: 'avgpool 3 stride=2 pad=1 count_pad=off', input: [2, 6, 7], f: (x, d) => ref.avgPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], countIncludePad: false }) },
    { body: 'avgpool 2x3 pad=[0,1,1,0] count_pad=off', input: [2, 5, 7], f: (x, d) => ref.avgPool2d(x, d, { kernel: [2, 3], pads: [0, 1, 1, 0], countIncludePad: false }) },
    { body: 'sumpool 2', input: [3, 6, 6], f: (x, d) => ref.sumPool2d(x, d, { kernel: [2, 2] }) },
    { body: 'sumpool 3 stride=2 pad=1', input: [2, 7, 6], f: (x, d) => ref.sumPool2d(x, d, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1] }) },
    { body: 'globalavgpool', input: [3, 5, 4], f: (x, d) => ref.globalAvgPool(x, d) },
    { body: 'gmp', input: [3, 5, 4], f: (x, d) => ref.globalMaxPool(x, d) },
  ];
  for (const k of cases) {
    it(k.body, async () => {
      const { x, dims, out } = await lowerAndRun(k.input, k.body);
      const expected = k.f(x, dims);
      expect(out.dims).toEqual(expected.shape);
      expectClose(out.data, expected.data);
    });
  }
});

describe('channel layer lowering', () => {
  for (const [input, groups] of [[[6, 3, 2], 2], [[12, 2, 3], 3], [[12, 2, 3], 4], [[5, 2, 2], 1], [[5, 2, 2], 5]] as [number[], number][]) {
    it(`shuffle ${groups} on ${input.join('×')}`, async () => {
      const { x, dims, out } = await lowerAndRun(input, `shuffle ${groups}`);
      expectClose(out.data, ref.channelShuffle(x, dims, groups).data, 0);
    });
  }
});

describe('scale lowering', () => {
  it('a learned multiplier per channel, [C, 1, 1] on a map and [C] on a vector, starting at init', async () => {
    for (const input of [[4, 3, 2], [6]]) {
      const { c, x, dims, out } = await lowerAndRun(input, 'scale', { init: randomParams(8) });
      expect(c.weights.get('scale1.layer_scale')!.dims).toEqual(input.length === 3 ? [4, 1, 1] : [6]);
      expectClose(out.data, ref.channelScale(x, dims, weight(c, 'scale1.layer_scale')).data);
    }
    expect([...weight(compile(modelSource('3x2x2', 'scale')), 'scale1.layer_scale')]).toEqual(Array(3).fill(Math.fround(1e-6)));
    expect([...weight(compile(modelSource('2', 'scale init=0.5')), 'scale1.layer_scale')]).toEqual([0.5, 0.5]);
  });
});

describe('combinator lowering', () => {
  const convOf = (c: Compiled, name: string, x: ArrayLike<number>, xs: number[], o: ref.Conv2dOptions = {}, bias = true) => {
    const w = c.weights.get(`${name}.weight`)!;
    return ref.conv2d(x as Float64Array, xs, w.data, w.dims, bias ? weight(c, `${name}.bias`) : null, o);
  };
  const addInto = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]);

  it('residual with an identity shortcut: x + f(x)', async () => {
    const { c, x, dims, out } = await lowerAndRun([3, 5, 6], 'residual { conv 3 3x3 pad=1 -> relu }');
    const f = ref.relu(convOf(c, 'residual1.conv1', x, dims, { pads: [1, 1, 1, 1] }).data, dims);
    expectClose(out.data, addInto(f.data, x));
  });

  it('residual with a projection shortcut: f(x) + bn(conv1x1 stride 2 (x))', async () => {
    const { c, x, dims, out } = await lowerAndRun([3, 8, 6], 'residual project { conv 5 3x3 stride=2 pad=1 }', { init: randomParams(3) });
    const body = convOf(c, 'residual1.conv1', x, dims, { stride: [2, 2], pads: [1, 1, 1, 1] });
    expect(c.weights.has('residual1.shortcut.conv.bias')).toBe(false);
    const proj = convOf(c, 'residual1.shortcut.conv', x, dims, { stride: [2, 2] }, false);
    const p = (n: string) => weight(c, `residual1.shortcut.bn.${n}`);
    const short = ref.batchNormInference(proj.data, proj.shape, p('weight'), p('bias'), p('running_mean'), p('running_var'));
    expect(out.dims).toEqual(body.shape);
    expectClose(out.data, addInto(body.data, short.data));
  });

  it('concat joins branches on channels', async () => {
    const { c, x, dims, out } = await lowerAndRun([3, 5, 5], 'concat { conv 2 1x1 | maxpool 3 stride=1 pad=1 | conv 4 3x3 pad=same -> tanh }');
    const a = convOf(c, 'concat1.0.conv1', x, dims);
    const b = ref.maxPool2d(x, dims, { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] });
    const d = ref.tanh(convOf(c, 'concat1.2.conv1', x, dims, { pads: [1, 1, 1, 1] }).data, [2, 4, 5, 5]);
    const expected: number[] = [];
    for (let n = 0; n < 2; n++)
      for (const [t, ch] of [[a.data, 2], [b.data, 3], [d.data, 4]] as const) expected.push(...t.slice(n * ch * 25, (n + 1) * ch * 25));
    expect(out.dims).toEqual([2, 9, 5, 5]);
    expectClose(out.data, expected);
  });

  it('add sums two and three branches', async () => {
    const two = await lowerAndRun([2, 4, 4], 'add { conv 2 1x1 | maxpool 1 }');
    expectClose(two.out.data, addInto(convOf(two.c, 'add1.0.conv1', two.x, two.dims).data, two.x));
    const three = await lowerAndRun([2, 4, 4], 'add { conv 2 1x1 | conv 2 3x3 pad=1 | maxpool 1 }');
    const a = convOf(three.c, 'add1.0.conv1', three.x, three.dims).data;
    const b = convOf(three.c, 'add1.1.conv1', three.x, three.dims, { pads: [1, 1, 1, 1] }).data;
    expectClose(three.out.data, addInto(addInto(a, b), three.x));
  });

  it('gate multiplies by a broadcast C×1×1 gate (squeeze-and-excitation)', async () => {
    const { c, x, dims, out } = await lowerAndRun([3, 4, 5], 'gate { globalavgpool -> conv 2 1x1 -> relu -> conv 3 1x1 -> sigmoid }');
    const g0 = ref.globalAvgPool(x, dims);
    const g1 = ref.relu(convOf(c, 'gate1.conv1', g0.data, g0.shape).data, [2, 2, 1, 1]);
    const g = ref.sigmoid(convOf(c, 'gate1.conv2', g1.data, [2, 2, 1, 1]).data, [2, 3, 1, 1]);
    expectClose(out.data, Float64Array.from(x, (v, i) => v * g.data[Math.floor(i / 20)]));
  });

  it('frozen lowers like its body; blocks and repeats name parameters after the source', async () => {
    const src = `block vgg(c) { conv c 3x3 pad=same -> relu -> conv c 1x1 }
model T {
  input 2x4x4
  frozen { stem: conv 3 1x1 } -> vgg(2) -> repeat 2 { conv 2 1x1 }
}
`;
    const c = compile(src);
    expect([...c.weights.keys()].sort()).toEqual([
      'repeat1.0.conv1.bias', 'repeat1.0.conv1.weight', 'repeat1.1.conv1.bias', 'repeat1.1.conv1.weight',
      'stem.bias', 'stem.weight', 'vgg1.conv1.bias', 'vgg1.conv1.weight', 'vgg1.conv2.bias', 'vgg1.conv2.weight',
    ]);
    const x = uniform(4, 2 * 32);
    let h = convOf(c, 'stem', x, [2, 2, 4, 4]);
    h = ref.relu(convOf(c, 'vgg1.conv1', h.data, h.shape, { pads: [1, 1, 1, 1] }).data, [2, 2, 4, 4]);
    for (const name of ['vgg1.conv2', 'repeat1.0.conv1', 'repeat1.1.conv1']) h = convOf(c, name, h.data, h.shape);
    expectClose((await run(c.bytes, x, [2, 2, 4, 4])).data, h.data);
  });
});

describe('training mode (the hook for the training graph)', () => {
  it('binds parameters as graph inputs, uses batch statistics in bn and reports its new running stats', async () => {
    const model = check(modelSource('2x3x3', 'bn momentum=0.1 -> dropout 0'), 't.cnn').models[0];
    const g = new GraphBuilder('train');
    const ctx = new LowerContext(g, { mode: 'training', params: inputParams, file: 't.cnn', source: '' });
    const y = lowerNode(ctx, model.root, g.input(ctx.reserve('input'), ['N', 2, 3, 3]));
    g.output(y, ['N', 2, 3, 3]);
    for (const [name, value] of ctx.stateUpdates) g.output(value, [2]), expect(name).toMatch(/^bn1\.running_(mean|var)$/);
    expect([...ctx.boundParams.keys()]).toEqual(['bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var']);
    const { session } = await createSession(buildModel(g, { producerName: 't', producerVersion: '0' }));
    const x = uniform(3, 36);
    const feeds = {
      input: floatTensor(x, [2, 2, 3, 3]),
      'bn1.weight': floatTensor(new Float32Array([1, 1]), [2]), 'bn1.bias': floatTensor(new Float32Array([0, 0]), [2]),
      'bn1.running_mean': floatTensor(new Float32Array([0, 0]), [2]), 'bn1.running_var': floatTensor(new Float32Array([1, 1]), [2]),
    };
    const out = await runSession(session, feeds);
    // Batch statistics per channel: the output has mean 0 in each channel.
    for (let c = 0; c < 2; c++) {
      let s = 0;
      for (let n = 0; n < 2; n++) for (let k = 0; k < 9; k++) s += out[y].data[(n * 2 + c) * 9 + k];
      expect(Math.abs(s / 18)).toBeLessThan(1e-5);
    }
    const meanC0 = [...x.slice(0, 9), ...x.slice(18, 27)].reduce((a, b) => a + b, 0) / 18;
    expect(out[ctx.stateUpdates.get('bn1.running_mean')!].data[0]).toBeCloseTo(0.1 * meanC0, 5);
  });
});
