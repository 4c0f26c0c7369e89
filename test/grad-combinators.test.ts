/**
 * The backward pass through combinators (residual with and without projection, concat, add, gate),
 * frozen layers and freeze patterns, whole small networks; batch-norm running statistics, and
 * dropout and droppath masks in training vs evaluation.
 */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { checkModel, expectGradients, runGradient } from './helpers/grad-check.ts';
import { COMBINATOR_GRADIENT_CASES } from './helpers/layer-cases.ts';
import { batchNormTrain } from './reference/ops.ts';
import { defaultTrainConfig } from '../src/compiler/train-config.ts';
import { emitEval, emitGradient, frozenMatcher, GRAD_PREFIX, graphSignature, NEW_PREFIX, trainPlan } from '../src/compiler/emit/train.ts';
import { uniform } from './helpers/random.ts';
import { decodeModel } from '../src/compiler/onnx/builder.ts';

const model = (input: string, body: string) => checkModel(`model G {\n  input ${input}\n  ${body}\n}\n`);

describe('combinator gradients (test/helpers/layer-cases.ts)', () => {
  for (const k of COMBINATOR_GRADIENT_CASES) it(k.name, async () => expectGradients(await runGradient(model(k.input, k.body), { batch: k.batch, xRange: k.xRange })));
});

describe('relu before max pooling', () => {
  // The training graphs run `relu -> maxpool` as `maxpool -> relu` (train.ts): it must route the
  // gradient exactly as the layers in order do, to each window's first maximum of the relus and
  // only when that is positive, with the ties that small integers give everywhere.
  const N = 2, C = 2, H = 6, W = 6;
  for (const [pool, k, stride, pad] of [['maxpool 2', 2, 2, 0], ['maxpool 3 stride=2 pad=1', 3, 2, 1], ['globalmaxpool', 6, 1, 0]] as const) {
    it(`relu -> ${pool}`, async () => {
      const x = Float32Array.from(uniform(5, N * C * H * W, -2.5, 2.5), Math.round);
      const run = await runGradient(model(`${C}x${H}x${W}`, `relu -> ${pool}`), { batch: N, x });
      const expected = reluMaxPoolGrad(x, [N, C, H, W], k, stride, pad, run.dy);
      const got = run.outputs[`${GRAD_PREFIX}input`].data;
      expect(got.length).toBe(expected.length);
      for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - expected[i]) > 1e-6) expect.fail(`dx[${i}]: ${got[i]} vs ${expected[i]}`);
    });
  }

  // The kinds' fields decide the exchange: relu commutes with a max, gelu (not monotone) does not.
  it.each([['relu', 'input'], ['gelu', 'gelu1']])('%s -> maxpool 2: the training graph pools %s', (act, pooled) => {
    const graph = decodeModel(emitGradient(trainPlan(model('2x4x4', `${act} -> maxpool 2`), defaultTrainConfig()))).graph!;
    const pool = graph.node!.filter((n) => n.opType === 'MaxPool');
    expect(pool.map((n) => n.input)).toEqual([[pooled]]);
  });
});

/** dx of relu then a k×k max pool, by the definition: each window's first largest relu, if positive, gets dy. */
function reluMaxPoolGrad(x: Float32Array, [N, C, H, W]: number[], k: number, stride: number, pad: number, dy: Float32Array): Float64Array {
  const OH = Math.floor((H + 2 * pad - k) / stride) + 1, OW = Math.floor((W + 2 * pad - k) / stride) + 1;
  const dx = new Float64Array(x.length);
  for (let nc = 0; nc < N * C; nc++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let best = -Infinity, at = -1;
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) {
            const h = oh * stride - pad + i, w = ow * stride - pad + j;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const idx = (nc * H + h) * W + w;
            if (Math.max(x[idx], 0) > best) [best, at] = [Math.max(x[idx], 0), idx];
          }
        }
        if (x[at] > 0) dx[at] += dy[(nc * OH + oh) * OW + ow];
      }
    }
  }
  return dx;
}

describe('frozen layers', () => {
  it('frozen { } gives no gradient output; the input gradient still flows through', async () => {
    const m = model('2x6x6', 'conv 3 3x3 -> frozen { conv 3 3x3 pad=1 -> bn } -> relu -> conv 2 1x1');
    const run = await runGradient(m, { batch: 3 });
    const outs = Object.keys(run.outputs);
    expect(outs).not.toContain(`${GRAD_PREFIX}conv2.weight`);
    expect(outs).not.toContain(`${NEW_PREFIX}bn1.running_mean`);
    expect(outs).toContain(`${GRAD_PREFIX}conv1.weight`);
    expect(outs).toContain(`${GRAD_PREFIX}conv3.weight`);
    // The frozen bn runs on its running statistics, and the reference knows it.
    expectGradients(run);
  });

  it('freeze patterns match paths and their prefixes, * any run of characters', () => {
    const m = model('2x6x6', 'stem: conv 3 3x3 -> b1: residual { conv 3 3x3 pad=1 -> bn } -> head: conv 2 1x1');
    const names = (patterns: string[]) => trainPlan(m, { ...defaultTrainConfig(), freeze: patterns }).state.filter((e) => e.updated && e.kind === 'param').map((e) => e.name);
    expect(names([])).toEqual(['stem.weight', 'stem.bias', 'b1.conv1.weight', 'b1.conv1.bias', 'b1.bn1.weight', 'b1.bn1.bias', 'head.weight', 'head.bias']);
    expect(names(['b1'])).toEqual(['stem.weight', 'stem.bias', 'head.weight', 'head.bias']);
    expect(names(['b1.*', 'st*'])).toEqual(['head.weight', 'head.bias']);
    expect(names(['*bn*'])).toEqual(['stem.weight', 'stem.bias', 'b1.conv1.weight', 'b1.conv1.bias', 'head.weight', 'head.bias']);
    const match = frozenMatcher(['b1']);
    expect(match({ path: 'b10.conv1' } as never)).toBe(false);
  });

  it('a frozen first layer needs no input gradient through it', async () => {
    const m = model('2x6x6', 'frozen { conv 3 3x3 } -> conv 2 3x3');
    const run = await runGradient(m, { batch: 2 });
    expectGradients(run, { skipInput: true });
  });
});

describe('batch norm running statistics', () => {
  it('updates as PyTorch: momentum-weighted batch mean and unbiased batch variance', async () => {
    const m = model('3x4x5', 'bn momentum=0.2');
    const run = await runGradient(m, { batch: 3 });
    const gamma = run.params.get('bn1.weight')!, beta = run.params.get('bn1.bias')!;
    const rm = run.params.get('bn1.running_mean')!, rv = run.params.get('bn1.running_var')!;
    const ref = batchNormTrain(Float64Array.from(run.x), run.xDims, gamma, beta, 1e-5);
    const newMean = run.outputs[`${NEW_PREFIX}bn1.running_mean`].data, newVar = run.outputs[`${NEW_PREFIX}bn1.running_var`].data;
    for (let c = 0; c < 3; c++) {
      expect(newMean[c]).toBeCloseTo(0.8 * rm[c] + 0.2 * ref.mean[c], 5);
      expect(newVar[c]).toBeCloseTo(0.8 * rv[c] + 0.2 * ref.variance[c] * ref.count / (ref.count - 1), 5);
    }
  });

  it('evaluation uses the running statistics', async () => {
    const m = model('3x2x2', 'bn');
    const plan = trainPlan(m, defaultTrainConfig());
    expect(graphSignature(emitEval(plan)).inputs).toEqual(['bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'input', 'labels']);
  });
});

describe('dropout', () => {
  const m = model('4000', 'dropout 0.3');
  const plan = trainPlan(m, defaultTrainConfig());
  const x = uniform(5, 2 * 4000, 0.5, 1.5);
  async function masks(steps: number[]) {
    const session = await ort.InferenceSession.create(emitGradient(plan), { intraOpNumThreads: 1 });
    const out = [];
    for (const step of steps) {
      const r = await session.run({
        input: new ort.Tensor('float32', x, [2, 4000]),
        dy: new ort.Tensor('float32', new Float32Array(8000).fill(1), [2, 4000]),
        step: new ort.Tensor('int64', BigInt64Array.of(BigInt(step)), []),
      });
      out.push({ y: r.output.data as Float32Array, dx: r[`${GRAD_PREFIX}input`].data as Float32Array });
    }
    await session.release();
    return out;
  }

  it('drops about p of the inputs, scales the rest by 1/(1-p), and the gradient uses the same mask', async () => {
    const [{ y, dx }] = await masks([0]);
    let kept = 0;
    for (let i = 0; i < y.length; i++) {
      const mask = y[i] / x[i];
      if (mask !== 0) {
        kept++;
        expect(mask).toBeCloseTo(1 / 0.7, 5);
      }
      expect(dx[i]).toBeCloseTo(mask, 5);
    }
    expect(kept / y.length).toBeGreaterThan(0.67);
    expect(kept / y.length).toBeLessThan(0.73);
    // Neighbouring elements are not correlated.
    let both = 0;
    for (let i = 0; i + 1 < y.length; i++) if (y[i] !== 0 && y[i + 1] !== 0) both++;
    expect(both / (y.length - 1)).toBeCloseTo(0.49, 1);
  });

  it('the mask depends only on the step: reproducible, and different between steps', async () => {
    const [a, b, a2] = await masks([3, 4, 3]);
    expect([...a2.y]).toEqual([...a.y]);
    let same = 0;
    for (let i = 0; i < a.y.length; i++) if ((a.y[i] === 0) === (b.y[i] === 0)) same++;
    expect(same / a.y.length).toBeLessThan(0.65); // independent masks agree on 0.7² + 0.3² = 58%
  });
});

describe('droppath (stochastic depth)', () => {
  const N = 3000, per = 2 * 2 * 2;
  const m = model('2x2x2', 'droppath 0.3');
  const plan = trainPlan(m, defaultTrainConfig());
  const x = uniform(6, N * per, 0.5, 1.5);
  async function steps(which: number[]) {
    const session = await ort.InferenceSession.create(emitGradient(plan), { intraOpNumThreads: 1 });
    const dy = uniform(7, N * per, -1, 1);
    const out = [];
    for (const step of which) {
      const r = await session.run({
        input: new ort.Tensor('float32', x, [N, 2, 2, 2]),
        dy: new ort.Tensor('float32', dy, [N, 2, 2, 2]),
        step: new ort.Tensor('int64', BigInt64Array.of(BigInt(step)), []),
      });
      out.push({ y: r.output.data as Float32Array, dx: r[`${GRAD_PREFIX}input`].data as Float32Array, dy });
    }
    await session.release();
    return out;
  }
  /** Each sample's mask (y / x), checked to be one value over the whole sample. */
  const sampleMasks = (y: Float32Array) => Array.from({ length: N }, (_, n) => {
    const ratios = Array.from({ length: per }, (_, k) => y[n * per + k] / x[n * per + k]);
    for (const r of ratios) expect(r).toBeCloseTo(ratios[0], 6);
    return ratios[0];
  });

  it('drops whole samples with probability p, scales the rest by 1/(1-p); the gradient is dy times the same mask', async () => {
    const [{ y, dx, dy }] = await steps([0]);
    const masks = sampleMasks(y);
    const kept = masks.filter((v) => v !== 0);
    for (const v of kept) expect(v).toBeCloseTo(1 / 0.7, 5);
    expect(kept.length / N).toBeGreaterThan(0.67);
    expect(kept.length / N).toBeLessThan(0.73);
    for (let i = 0; i < y.length; i++) expect(dx[i]).toBeCloseTo(dy[i] * masks[Math.floor(i / per)], 5);
    // Neighbouring samples are not correlated.
    let both = 0;
    for (let n = 0; n + 1 < N; n++) if (masks[n] !== 0 && masks[n + 1] !== 0) both++;
    expect(both / (N - 1)).toBeCloseTo(0.49, 1);
  });

  it('the draws depend only on the step: reproducible, and different between steps', async () => {
    const [a, b, a2] = await steps([3, 4, 3]);
    expect([...a2.y]).toEqual([...a.y]);
    const ma = sampleMasks(a.y), mb = sampleMasks(b.y);
    const same = ma.filter((v, n) => (v === 0) === (mb[n] === 0)).length;
    expect(same / N).toBeLessThan(0.65); // independent draws agree on 0.7² + 0.3² = 58%
  });

  it('at the end of a residual body: a dropped sample\'s gradient is the shortcut\'s alone, a kept one\'s adds the body\'s / (1-p)', async () => {
    const batch = 64;
    const run = await runGradient(model('3', 'residual { dense 3 bias=off -> droppath 0.5 }'), { batch, step: 2 });
    const w = run.params.get('residual1.dense1.weight')!; // [out, in]
    const { output, [`${GRAD_PREFIX}input`]: dx } = run.outputs;
    let dropped = 0;
    for (let n = 0; n < batch; n++) {
      const at = (t: ArrayLike<number>, j: number) => t[n * 3 + j];
      const body = [0, 1, 2].map((j) => at(output.data, j) - at(run.x, j));
      const kept = body.some((v) => Math.abs(v) > 1e-6);
      if (!kept) dropped++;
      for (let i = 0; i < 3; i++) {
        const through = [0, 1, 2].reduce((s, j) => s + at(run.dy, j) * w[j * 3 + i], 0) / 0.5;
        expect(at(dx.data, i)).toBeCloseTo(at(run.dy, i) + (kept ? through : 0), 5);
      }
    }
    expect(dropped).toBeGreaterThan(16);
    expect(dropped).toBeLessThan(48);
  });

  it('evaluation (the training run\'s eval graph) is the identity', async () => {
    const head = model('5', 'dense 4 -> droppath 0.5');
    const evalPlan = trainPlan(head, defaultTrainConfig());
    const session = await ort.InferenceSession.create(emitEval(evalPlan), { intraOpNumThreads: 1 });
    const w = uniform(8, 20, -1, 1), b = uniform(9, 4, -1, 1), xs = uniform(10, 3 * 5, -1, 1);
    const r = await session.run({
      input: new ort.Tensor('float32', xs, [3, 5]), labels: new ort.Tensor('int64', BigInt64Array.of(0n, 1n, 2n), [3]),
      'dense1.weight': new ort.Tensor('float32', w, [4, 5]), 'dense1.bias': new ort.Tensor('float32', b, [4]),
    });
    await session.release();
    const logits = r.logits.data as Float32Array;
    for (let n = 0; n < 3; n++)
      for (let o = 0; o < 4; o++) expect(logits[n * 4 + o]).toBeCloseTo(b[o] + [0, 1, 2, 3, 4].reduce((s, i) => s + xs[n * 5 + i] * w[o * 5 + i], 0), 5);
  });
});
