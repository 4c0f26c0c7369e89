/**
 * Each layer kind's ONNX lowering, run on onnxruntime, against the plain-loop reference ops,
 * on small seeded tensors with odd sizes, strides, paddings, dilations and groups (the cases are
 * test/helpers/layer-cases.ts's LOWERING_CASES); and the combinators against references composed
 * by hand (COMBINATOR_LOWERING_CASES).
 */
import { describe, expect, it } from 'vitest';
import * as ref from './reference/ops.ts';
import { uniform } from './helpers/random.ts';
import { compile, expectClose, modelSource, run, size, weight } from './helpers/emit.ts';
import { COMBINATOR_LOWERING_CASES, LOWERING_CASES, loweringSource, randomParams, type LoweringCase } from './helpers/layer-cases.ts';
import { check } from '../src/index.ts';
import { GraphBuilder, buildModel } from '../src/compiler/onnx/builder.ts';
import { LowerContext, inputParams } from '../src/compiler/emit/context.ts';
import { lowerNode } from '../src/compiler/emit/lower.ts';
import { createSession, floatTensor, runSession } from '../src/runtime/session.ts';

/** Compiles a case's model, runs it on a seeded batch of 2 and compares the output with the case's expected one. */
async function expectLowering(k: LoweringCase) {
  const c = compile(loweringSource(k), { seed: 7, init: k.randomSeed === undefined ? undefined : randomParams(k.randomSeed), partial: true });
  const dims = [2, ...k.input];
  const x = uniform(101, size(dims), ...(k.xRange ?? [-2, 2]));
  const out = await run(c.bytes, x, dims);
  const expected = k.expected(x, dims, c);
  expect(out.dims).toEqual(expected.shape);
  expectClose(out.data, expected.data);
}

describe('layer lowering against the reference (test/helpers/layer-cases.ts)', () => {
  for (const k of LOWERING_CASES) it(`${k.name}: ${k.body}`, () => expectLowering(k));
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

describe('combinator lowering (test/helpers/layer-cases.ts)', () => {
  for (const k of COMBINATOR_LOWERING_CASES) it(k.name, () => expectLowering(k));
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
