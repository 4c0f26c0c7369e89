/**
 * Each layer kind's ONNX lowering, run on onnxruntime, against the plain-loop reference ops,
 * on small seeded tensors with odd sizes, strides, paddings, dilations and groups (the cases are
 * test/helpers/layer-cases.ts's LOWERING_CASES); and the combinators against references composed
 * by hand.
 */
import { describe, expect, it } from 'vitest';
import * as ref from './reference/ops.ts';
import { uniform } from './helpers/random.ts';
import { compile, expectClose, modelSource, run, size, weight, type Compiled } from './helpers/emit.ts';
import { LOWERING_CASES, randomParams } from './helpers/layer-cases.ts';
import type { ParamSpec } from '../src/compiler/layers/types.ts';
import { check } from '../src/index.ts';
import { GraphBuilder, buildModel } from '../src/compiler/onnx/builder.ts';
import { LowerContext, inputParams } from '../src/compiler/emit/context.ts';
import { lowerNode } from '../src/compiler/emit/lower.ts';
import { createSession, floatTensor, runSession } from '../src/runtime/session.ts';

/** Compiles `input SHAPE` + `body`, runs a seeded batch and returns the result with the input. */
async function lowerAndRun(input: number[], body: string, opts: { batch?: number; seed?: number; init?: (name: string, spec: ParamSpec) => Float32Array | undefined; xRange?: [number, number] } = {}) {
  const c = compile(modelSource(input.join('x'), body), { seed: opts.seed ?? 7, init: opts.init, partial: true });
  const dims = [opts.batch ?? 2, ...input];
  const x = uniform(101, size(dims), ...(opts.xRange ?? [-2, 2]));
  const out = await run(c.bytes, x, dims);
  expect(out.dims).toEqual([dims[0], ...c.model.output!]);
  return { c, x, dims, out };
}

describe('layer lowering against the reference (test/helpers/layer-cases.ts)', () => {
  for (const k of LOWERING_CASES) {
    it(`${k.name}: ${k.body}`, async () => {
      const { c, x, dims, out } = await lowerAndRun(k.input, k.body, { init: k.randomSeed === undefined ? undefined : randomParams(k.randomSeed), xRange: k.xRange });
      const expected = k.expected(x, dims, c);
      expect(out.dims).toEqual(expected.shape);
      expectClose(out.data, expected.data);
    });
  }
});

describe('initial parameters', () => {
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

  it('bn parameters start as PyTorch: weight 1, bias 0, running mean 0, running var 1', () => {
    const c = compile(modelSource('2x3x3', 'bn'));
    expect([...weight(c, 'bn1.weight')]).toEqual([1, 1]);
    expect([...weight(c, 'bn1.bias')]).toEqual([0, 0]);
    expect([...weight(c, 'bn1.running_mean')]).toEqual([0, 0]);
    expect([...weight(c, 'bn1.running_var')]).toEqual([1, 1]);
  });

  it('layernorm starts as PyTorch (weight 1, bias 0); scale at init=, 1e-6 by default (torchvision\'s ConvNeXt)', () => {
    const c = compile(modelSource('3x2x2', 'layernorm -> scale'));
    expect([...weight(c, 'layernorm1.weight')]).toEqual([1, 1, 1]);
    expect([...weight(c, 'layernorm1.bias')]).toEqual([0, 0, 0]);
    expect([...weight(c, 'scale1.layer_scale')]).toEqual(Array(3).fill(Math.fround(1e-6)));
    expect([...weight(compile(modelSource('2', 'scale init=0.5')), 'scale1.layer_scale')]).toEqual([0.5, 0.5]);
  });
});

describe('layernorm numerics', () => {
  it('stays exact where the mean is far larger than the spread (two passes; the one-pass E[x²] - E[x]² is off by 1e-3 here)', async () => {
    const c = compile(modelSource('6x3x3', 'layernorm eps=1e-6'), { seed: 7, partial: true });
    const x = uniform(104, 2 * 54, 99, 101);
    expectClose((await run(c.bytes, x, [2, 6, 3, 3])).data, ref.layerNorm(x, [2, 6, 3, 3], new Float32Array(6).fill(1), new Float32Array(6), 1e-6).data);
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
