/**
 * The training graphs as a whole: optimizer updates vs a plain-TS implementation (PyTorch
 * semantics) over 3 steps, the losses and their gradients vs float64 TS, the K-step Loop vs K
 * single steps, freezing, and the ONNX checker on all three graphs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultTrainConfig, type TrainConfig } from '../src/compiler/train-config.ts';
import { compileTraining, graphSignature } from '../src/compiler/emit/train.ts';
import { initialState, trainPlan } from '../src/compiler/emit/train-plan.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import { stackBatches } from '../src/runtime/blocks.ts';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { readInitializers } from '../src/compiler/onnx/builder.ts';
import type { StepBatch, TrainState } from '../src/runtime/train-step.ts';
import { checkModel } from './helpers/grad-check.ts';
import { onnxCheck, onnxPython } from './helpers/onnx-check.ts';
import { uniform } from './helpers/random.ts';
import { SoftmaxRunner } from './helpers/softmax-runner.ts';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const model = (input: string, body: string) => checkModel(`model G {\n  input ${input}\n  ${body}\n}\n`);
const config = (over: { [K in keyof TrainConfig]?: Partial<TrainConfig[K]> | TrainConfig[K] } = {}): TrainConfig => {
  const base = defaultTrainConfig();
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(over)) {
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] = typeof b === 'object' && !Array.isArray(b) ? { ...(b as object), ...(v as object) } : v;
  }
  return out as unknown as TrainConfig;
};

function batch(seed: number, count: number, per: number, classes: number): StepBatch {
  return {
    x: uniform(seed, count * per, -1, 1),
    y: BigInt64Array.from({ length: count }, (_, i) => BigInt((i * 7 + seed) % classes)),
    count,
  };
}

function expectStateClose(a: TrainState, b: TrainState, names: string[], tol = 1e-5): void {
  for (const name of names) {
    const x = a.get(name)!.data, y = b.get(name)!.data;
    expect(x.length, name).toBe(y.length);
    for (let i = 0; i < x.length; i++) {
      if (!(Math.abs(x[i] - y[i]) <= tol * (1 + Math.abs(y[i])))) expect.fail(`${name}[${i}]: ${x[i]} vs ${y[i]}`);
    }
  }
}

describe('optimizers: 3 steps vs a plain-TS implementation with PyTorch semantics', () => {
  const optimizers: [string, Partial<TrainConfig['optimizer']>][] = [
    ['sgd', { kind: 'sgd', lr: 0.1 }],
    ['sgd momentum + weight decay', { kind: 'sgd', momentum: 0.9, weight_decay: 0.01 }],
    ['sgd nesterov', { kind: 'sgd', momentum: 0.8, nesterov: true, weight_decay: 1e-3 }],
    ['adam', { kind: 'adam' }],
    ['adam with weight decay (L2 in the gradient)', { kind: 'adam', weight_decay: 0.05, beta1: 0.8, beta2: 0.95 }],
    ['adamw (decoupled weight decay)', { kind: 'adamw', weight_decay: 0.1, eps: 1e-6 }],
  ];
  for (const [name, opt] of optimizers) {
    it(name, async () => {
      const m = model('1x3x4', 'flatten -> fc: dense 5');
      const cfg = config({ optimizer: opt });
      const runner = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: 6 });
      const reference = new SoftmaxRunner(12, 5, cfg);
      const start = runner.state();
      const refState: TrainState = new Map();
      for (const n of ['fc.weight', 'fc.bias']) {
        refState.set(n, start.get(n)!);
        for (const s of cfg.optimizer.kind === 'sgd' ? ['v'] : ['m', 'v']) refState.set(`optim.${n}.${s}`, { dims: start.get(n)!.dims, data: new Float32Array(start.get(n)!.data.length) });
      }
      reference.load(refState);
      const lrs = [0.1, 0.05, 0.02];
      for (let step = 0; step < 3; step++) {
        const b = batch(step + 1, 6, 12, 5);
        const got = await runner.run(b, lrs[step], step);
        const want = await reference.run(b, lrs[step], step);
        expect(got.loss).toBeCloseTo(want.loss, 5);
        expect(got.correct).toBe(want.correct);
      }
      expectStateClose(runner.state(), reference.state(), ['fc.weight', 'fc.bias']);
      if (cfg.optimizer.kind !== 'sgd') expectStateClose(runner.state(), reference.state(), ['optim.fc.weight.m', 'optim.fc.weight.v', 'optim.fc.bias.v']);
      if (cfg.optimizer.momentum > 0) {
        const mine = runner.state().get('optim.fc.weight.momentum')!, theirs = reference.state().get('optim.fc.weight.v')!;
        expectStateClose(new Map([['b', mine]]), new Map([['b', theirs]]), ['b']);
      }
      await runner.dispose();
    });
  }
});

/** Float64 losses from logits [N, K] and labels, as PyTorch computes them. */
function refLoss(kind: TrainConfig['loss']['kind'], smoothing: number, z: Float64Array, labels: number[], K: number): number {
  const N = labels.length;
  let total = 0;
  for (let n = 0; n < N; n++) {
    const row = Array.from(z.subarray(n * K, (n + 1) * K));
    const target = K === 1 ? [labels[n]] : row.map((_, k) => (k === labels[n] ? 1 : 0));
    if (kind === 'cross_entropy') {
      const max = Math.max(...row);
      const lse = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      const nll = lse - row[labels[n]];
      const uniformTerm = row.reduce((s, v) => s + (lse - v), 0) / K;
      total += (1 - smoothing) * nll + smoothing * uniformTerm;
    } else if (kind === 'bce') {
      row.forEach((v, k) => { total += Math.max(v, 0) - v * target[k] + Math.log1p(Math.exp(-Math.abs(v))); });
    } else {
      row.forEach((v, k) => { total += (v - target[k]) ** 2; });
    }
  }
  return kind === 'cross_entropy' ? total / N : total / (N * K);
}

describe('losses and their gradients', () => {
  const cases: [string, TrainConfig['loss'], number][] = [
    ['cross-entropy', { kind: 'cross_entropy', smoothing: 0 }, 4],
    ['cross-entropy with label smoothing', { kind: 'cross_entropy', smoothing: 0.2 }, 4],
    ['bce, one output', { kind: 'bce', smoothing: 0 }, 1],
    ['bce, one-hot over 3 outputs', { kind: 'bce', smoothing: 0 }, 3],
    ['mse, one output', { kind: 'mse', smoothing: 0 }, 1],
    ['mse, one-hot over 3 outputs', { kind: 'mse', smoothing: 0 }, 3],
  ];
  for (const [name, loss, K] of cases) {
    it(name, async () => {
      const m = model('5', `fc: dense ${K}`);
      const cfg = config({ loss, optimizer: { kind: 'sgd', lr: 1 } });
      const runner = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: 7 });
      const classes = Math.max(K, 2);
      const b = batch(3, 7, 5, classes);
      const labels = Array.from(b.y as BigInt64Array, Number);
      const start = runner.state();
      const w = Float64Array.from(start.get('fc.weight')!.data), bias = Float64Array.from(start.get('fc.bias')!.data);
      const logits = (wv: Float64Array, bv: Float64Array) => {
        const z = new Float64Array(7 * K);
        for (let n = 0; n < 7; n++) for (let k = 0; k < K; k++) {
          let s = bv[k];
          for (let i = 0; i < 5; i++) s += wv[k * 5 + i] * b.x[n * 5 + i];
          z[n * K + k] = s;
        }
        return z;
      };
      const ev = await runner.evaluateWithLogits(b);
      const want = refLoss(loss.kind, loss.smoothing, logits(w, bias), labels, K);
      expect(ev.loss).toBeCloseTo(want, 5);
      const r = await runner.run(b, 1, 0);
      expect(r.loss).toBeCloseTo(want, 5);
      expect(r.correct).toBe(ev.correct);
      // Plain SGD with lr 1: the gradient is the change; check it by central differences.
      const grad = start.get('fc.weight')!.data.map((v, i) => v - runner.state().get('fc.weight')!.data[i]);
      const u = uniform(9, w.length, -1, 1);
      const eps = 1e-6;
      const numeric = (refLoss(loss.kind, loss.smoothing, logits(w.map((v, i) => v + eps * u[i]), bias), labels, K) -
        refLoss(loss.kind, loss.smoothing, logits(w.map((v, i) => v - eps * u[i]), bias), labels, K)) / (2 * eps);
      const analytic = grad.reduce((s, g, i) => s + g * u[i], 0);
      expect(Math.abs(analytic - numeric)).toBeLessThan(1e-4 * (1 + Math.abs(numeric)));
      await runner.dispose();
    });
  }

  it('a final softmax is folded into cross-entropy (the loss sees the logits before it)', async () => {
    const plain = await OrtTrainRunner.create(model('5', 'fc: dense 4'), config(), { device: 'cpu', threads: 1, batch: 4 });
    const soft = await OrtTrainRunner.create(model('5', 'fc: dense 4 -> softmax'), config(), { device: 'cpu', threads: 1, batch: 4 });
    const b = batch(5, 4, 5, 4);
    const [a, c] = [await plain.evaluateWithLogits(b), await soft.evaluateWithLogits(b)];
    expect(c.loss).toBeCloseTo(a.loss, 6);
    expect(c.logits.slice(0, 4).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5); // the model still outputs probabilities
    await plain.run(b, 0.01, 0);
    await soft.run(b, 0.01, 0);
    expectStateClose(plain.state(), soft.state(), ['fc.weight', 'fc.bias']);
  });

  // The same network written flat and with its final layer inside blocks: the tail folds the same
  // way wherever it is, so one SGD step gives the same loss and new weights.
  const folds: [string, TrainConfig['loss'], string][] = [
    ['softmax into cross-entropy', { kind: 'cross_entropy', smoothing: 0 }, 'softmax'],
    ['sigmoid into bce', { kind: 'bce', smoothing: 0 }, 'sigmoid'],
  ];
  for (const [name, loss, tail] of folds) {
    it(`a final ${name} folds inside blocks as at the top level`, async () => {
      const flat = checkModel(`model G {\n  input 5\n  dense 4 -> relu -> dense 3 -> ${tail}\n}\n`);
      const nested = checkModel(`block head(n) { dense n -> ${tail} }\nblock top(n) { dense 4 -> relu -> head(n) }\nmodel G {\n  input 5\n  top(3)\n}\n`);
      const cfg = config({ loss, optimizer: { kind: 'sgd', lr: 0.5, momentum: 0 } });
      const a = await OrtTrainRunner.create(flat, cfg, { device: 'cpu', threads: 1, batch: 6 });
      const b = await OrtTrainRunner.create(nested, cfg, { device: 'cpu', threads: 1, batch: 6 });
      // The same parameters under each model's names (both list them in layer order).
      const [namesA, namesB] = [[...a.state().keys()], [...b.state().keys()]];
      expect(namesB).toEqual(['top1.dense1.weight', 'top1.dense1.bias', 'top1.head1.dense1.weight', 'top1.head1.dense1.bias']);
      const rename = (s: TrainState, from: string[], to: string[]): TrainState => new Map(from.map((n, i) => [to[i], s.get(n)!]));
      b.load(rename(a.state(), namesA, namesB));
      const data = batch(4, 6, 5, 3);
      const [evalA, evalB] = [await a.evaluateWithLogits(data), await b.evaluateWithLogits(data)];
      expect(evalB.loss).toBeCloseTo(evalA.loss, 6);
      const [stepA, stepB] = [await a.run(data, 0.5, 0), await b.run(data, 0.5, 0)];
      expect(stepB.loss).toBeCloseTo(stepA.loss, 6);
      expect(stepB.loss).toBeCloseTo(evalA.loss, 6);
      expectStateClose(rename(b.state(), namesB, namesA), a.state(), namesA, 1e-6);
      await a.dispose();
      await b.dispose();
    });
  }
});

/**
 * Dense prediction: a 1x1 convolution gives K logits at each of the H·W positions; each position
 * is a row of refLoss (the ignored ones dropped), so the reference is PyTorch's mean over positions.
 */
describe('dense losses (a K×H×W output against an H×W mask) and their gradients', () => {
  const [N, C, H, W] = [3, 2, 3, 4];
  const P = H * W;
  const cases: [string, TrainConfig['loss'], number][] = [
    ['cross-entropy per pixel', { kind: 'cross_entropy', smoothing: 0 }, 3],
    ['cross-entropy per pixel, smoothing and an ignored label', { kind: 'cross_entropy', smoothing: 0.1, ignore: 255 }, 3],
    ['bce per pixel, one channel (binary masks)', { kind: 'bce', smoothing: 0 }, 1],
    ['mse per pixel, one-hot over 3 channels, an ignored label', { kind: 'mse', smoothing: 0, ignore: 7 }, 3],
  ];
  for (const [name, loss, K] of cases) {
    it(name, async () => {
      const m = model(`${C}x${H}x${W}`, `head: conv ${K} 1x1`);
      expect(m.output).toEqual([K, H, W]);
      const cfg = config({ loss, optimizer: { kind: 'sgd', lr: 1 } });
      const runner = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: N });
      const classes = Math.max(K, 2);
      // Every third pixel carries the ignore label, when there is one.
      const mask = Array.from({ length: N * P }, (_, i) => (loss.ignore !== undefined && i % 3 === 1 ? loss.ignore : (i * 5 + 1) % classes));
      const b: StepBatch = { x: uniform(8, N * C * P, -1, 1), y: BigInt64Array.from(mask, BigInt), count: N };
      const start = runner.state();
      const w = Float64Array.from(start.get('head.weight')!.data), bias = Float64Array.from(start.get('head.bias')!.data);
      // Rows [position, K] of the logits and their labels, ignored positions left out.
      const rows = (wv: Float64Array) => {
        const z: number[] = [], labels: number[] = [];
        for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) {
          if (mask[n * P + p] === loss.ignore) continue;
          labels.push(mask[n * P + p]);
          for (let k = 0; k < K; k++) {
            let s = bias[k];
            for (let c = 0; c < C; c++) s += wv[k * C + c] * b.x[(n * C + c) * P + p];
            z.push(s);
          }
        }
        return { z: Float64Array.from(z), labels };
      };
      const reference = (wv: Float64Array) => { const r = rows(wv); return refLoss(loss.kind, loss.smoothing, r.z, r.labels, K); };
      const ev = await runner.evaluateWithLogits(b);
      expect(ev.loss).toBeCloseTo(reference(w), 5);
      // Correct pixels and the IoU counts, from the reference's predictions.
      const { z, labels } = rows(w);
      const pred = labels.map((_, i) => {
        const row = Array.from(z.subarray(i * K, (i + 1) * K));
        if (K > 1) return row.indexOf(Math.max(...row));
        return loss.kind === 'bce' ? Number(row[0] > 0) : Math.round(row[0]);
      });
      expect(ev.correct).toBe(pred.filter((p, i) => p === labels[i]).length);
      const counts = (f: (p: number, l: number, c: number) => boolean) => Array.from({ length: classes }, (_, c) => pred.filter((p, i) => f(p, labels[i], c)).length);
      expect(ev.intersection).toEqual(counts((p, l, c) => p === c && l === c));
      expect(ev.union).toEqual(counts((p, l, c) => p === c || l === c));
      const r = await runner.run(b, 1, 0);
      expect(r.loss).toBeCloseTo(ev.loss, 5);
      expect(r.intersection).toEqual(ev.intersection);
      // Plain SGD with lr 1: the gradient is the change; check it by central differences.
      const grad = start.get('head.weight')!.data.map((v, i) => v - runner.state().get('head.weight')!.data[i]);
      const u = uniform(9, w.length, -1, 1);
      const eps = 1e-6;
      const numeric = (reference(w.map((v, i) => v + eps * u[i])) - reference(w.map((v, i) => v - eps * u[i]))) / (2 * eps);
      const analytic = grad.reduce((s, g, i) => s + g * u[i], 0);
      expect(Math.abs(analytic - numeric)).toBeLessThan(1e-4 * (1 + Math.abs(numeric)));
      await runner.dispose();
    });
  }

  it('a K×1×1 output stays one prediction per sample; an ignored label drops the sample', async () => {
    const m = model('2x1x1', 'conv 3 1x1');
    const cfg = config({ loss: { kind: 'cross_entropy', smoothing: 0, ignore: 2 } });
    const runner = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: 4 });
    const b: StepBatch = { x: uniform(3, 8, -1, 1), y: BigInt64Array.of(0n, 2n, 1n, 2n), count: 4 };
    const all = await runner.evaluateWithLogits({ ...b, y: BigInt64Array.of(0n, 0n, 1n, 1n) });
    const some = await runner.evaluateWithLogits(b);
    expect(some.intersection).toBeUndefined();
    // The loss is the mean over the two samples kept: their terms, from the logits.
    const ce = (i: number, label: number) => {
      const row = Array.from(all.logits.subarray(i * 3, i * 3 + 3));
      return Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[label];
    };
    expect(some.loss).toBeCloseTo((ce(0, 0) + ce(2, 1)) / 2, 5);
    await runner.dispose();
  });
});

const SMALL_NET = 'conv 4 3x3 pad=1 -> bn -> relu -> maxpool 2 -> residual { conv 4 3x3 pad=1 -> bn } -> relu -> flatten -> dropout 0.3 -> dense 5';

describe('the K-step Loop graph', () => {
  for (const opt of ['sgd', 'adam'] as const) {
    it(`K steps in one Loop equal K single steps (${opt}, bn, dropout)`, async () => {
      const m = model('2x6x6', SMALL_NET);
      const cfg = config({ optimizer: { kind: opt, lr: 0.05, momentum: opt === 'sgd' ? 0.9 : 0 } });
      const single = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: 4 });
      const looped = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: 4, loop: true });
      const batches = [1, 2, 3].map((s) => batch(s, 4, 72, 5));
      const lrs = [0.05, 0.03, 0.01];
      const singles: { loss: number; correct: number }[] = [];
      for (let k = 0; k < 3; k++) singles.push(await single.run(batches[k], lrs[k], 10 + k));
      const block = await looped.runBlock(stackBatches(batches), lrs, 10);
      block.forEach((r, k) => {
        expect(r.loss).toBeCloseTo(singles[k].loss, 5);
        expect(r.correct).toBe(singles[k].correct);
      });
      const names = [...single.state().keys()];
      expectStateClose(looped.state(), single.state(), names, 1e-5);
      await single.dispose();
      await looped.dispose();
    });
  }
});

describe('freezing', () => {
  it('frozen layers and pattern-frozen layers keep their values; frozen bn keeps its statistics', async () => {
    const m = model('2x6x6', 'stem: conv 4 3x3 pad=1 -> frozen { bn } -> relu -> head: conv 3 3x3 -> flatten -> fc: dense 5');
    const cfg = config({ optimizer: { kind: 'adam', lr: 0.05 }, freeze: ['head'] });
    const runner = await OrtTrainRunner.create(m, cfg, { device: 'cpu', threads: 1, batch: 4 });
    const before = runner.state();
    for (let s = 0; s < 3; s++) await runner.run(batch(s, 4, 72, 5), 0.05, s);
    const after = runner.state();
    for (const name of ['bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'head.weight', 'head.bias']) {
      expect([...after.get(name)!.data], name).toEqual([...before.get(name)!.data]);
    }
    for (const name of ['stem.weight', 'fc.weight']) expect([...after.get(name)!.data], name).not.toEqual([...before.get(name)!.data]);
    expect([...after.keys()].filter((k) => k.startsWith('optim.'))).toEqual(['optim.stem.weight.m', 'optim.stem.weight.v', 'optim.stem.bias.m', 'optim.stem.bias.v', 'optim.fc.weight.m', 'optim.fc.weight.v', 'optim.fc.bias.m', 'optim.fc.bias.v']);
    await runner.dispose();
  });
});

describe('the graphs as files', () => {
  it('train_step, eval and train_loop pass the ONNX checker and shape inference (opset 17)', () => {
    if (!onnxPython()) return; // no python3-onnx on this machine
    const m = model('3x9x9', 'conv 4 3x3 stride=2 pad=same -> bn -> silu -> concat { conv 2 1x1 | maxpool 3 stride=1 pad=1 } -> gate { gap -> conv 6 1x1 -> sigmoid } -> avgpool 2 count_pad=off -> flatten -> dropout 0.2 -> dense 5');
    const g = compileTraining(m, config({ optimizer: { kind: 'adamw', weight_decay: 0.01 }, loss: { kind: 'cross_entropy', smoothing: 0.1 } }), { loop: true });
    checkGraphFiles(g);
    const sig = graphSignature(g.trainStep);
    expect(sig.inputs.slice(-4)).toEqual(['input', 'labels', 'lr', 'step']);
    expect(sig.outputs.slice(0, 3)).toEqual(['loss', 'correct', 'new:conv1.weight']);
    expect(sig.outputs).toContain('new:optim.dense1.bias.v');
    expect(sig.outputs).toContain('new:bn1.running_var');
  });

  it("a dense model's graphs (masks, ignore, IoU counts) pass the ONNX checker and shape inference", () => {
    if (!onnxPython()) return;
    const m = model('1x8x8', 'conv 4 3x3 pad=same -> bn -> relu -> maxpool 2 -> conv 8 3x3 pad=same -> relu -> conv 3 1x1');
    const g = compileTraining(m, config({ loss: { kind: 'cross_entropy', smoothing: 0, ignore: 255 } }), { loop: true });
    checkGraphFiles(g, (name, bytes) => expect(graphSignature(bytes).outputs, name).toEqual(expect.arrayContaining(['loss', 'correct', 'intersection', 'union'])));
  });

  it('initial parameters are those of cnnc compile for the same seed', () => {
    const m = model('2x6x6', SMALL_NET);
    const state = initialState(trainPlan(m, config({ seed: 5 })));
    const weights = readInitializers(compileInference(m, { seed: 5 }).bytes);
    for (const [name, t] of weights) expect([...state.get(name)!.data], name).toEqual([...t.data]);
    expect(weights.size).toBe(14);
  });
});

/** Writes train_step, eval and train_loop to files, runs ONNX's checker on each, then `more`. */
function checkGraphFiles(g: ReturnType<typeof compileTraining>, more: (name: string, bytes: Uint8Array) => void = () => {}): void {
  const dir = mkdtempSync(join(tmpdir(), 'cnnc-train-graphs-'));
  dirs.push(dir);
  for (const [name, bytes] of [['train_step', g.trainStep], ['eval', g.eval], ['train_loop', g.trainLoop!]] as const) {
    const file = join(dir, `${name}.onnx`);
    writeFileSync(file, bytes);
    const r = onnxCheck(file);
    expect(r.error, name).toBeUndefined();
    expect(r.ok, name).toBe(true);
    more(name, bytes);
  }
}
