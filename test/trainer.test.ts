import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { check } from '../src/index.ts';
import type { CheckedModel } from '../src/compiler/model.ts';
import type { TrainConfig } from '../src/compiler/train-config.ts';
import { UserError } from '../src/errors.ts';
import { loadCheckpoint } from '../src/runtime/checkpoint.ts';
import { FASHION_MNIST_CLASSES, loadDataset, seededRandom, type Dataset } from '../src/runtime/dataset.ts';
import { curvesSvg, fitParts, LossTrace, sliceDataset, train, type LogRecord, type ProgressOutput, type TrainOptions } from '../src/runtime/trainer.ts';
import { writeIdx } from '../src/runtime/idx.ts';
import type { CreateTrainRunner } from '../src/runtime/train-step.ts';
import { loadRunnerFactory, overridesFrom, trainCommand } from '../src/cli/train.ts';
import { applyOverrides } from '../src/compiler/train-config.ts';
import { SoftmaxRunner } from './helpers/softmax-runner.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cnnc-train-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function tinyModel(train = ''): CheckedModel {
  const src = `model Tiny {\n  input 1x4x4\n  flatten -> dense 3\n  train {\n    ${train}\n  }\n}\n`;
  const r = check(src, 'tiny.cnn');
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map((d) => d.message).join('\n'));
  return r.models[0];
}

/** A learnable 3-class set of 4x4 images: class c lights up row c, plus noise. */
function synthetic(size: number, seed: number, opts: { shape?: [number, number, number]; labelMax?: number; source?: string } = {}): Dataset {
  const shape = opts.shape ?? [1, 4, 4];
  const per = shape[0] * shape[1] * shape[2];
  const rand = seededRandom(seed);
  const images = new Uint8Array(size * per);
  const labels = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const c = i % 3;
    labels[i] = c;
    for (let p = 0; p < per; p++) images[i * per + p] = Math.floor(rand() * 100) + (Math.floor(p / shape[2]) === c ? 120 : 0);
  }
  if (opts.labelMax !== undefined) labels[size - 1] = opts.labelMax;
  return { source: opts.source ?? `synthetic-${seed}`, size, shape, classes: ['a', 'b', 'c'], images, labels };
}

function sink(isTTY = false): ProgressOutput & { text: string } {
  const out = { text: '', isTTY, columns: 120, write(s: string) { out.text += s; return true; } };
  return out;
}

const readLog = (dir: string): LogRecord[] =>
  readFileSync(join(dir, 'train.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogRecord);

/** The runner, stopping the trainer (as Ctrl-C would) after the step numbered stopAfter. */
function stoppingRunner(runner: SoftmaxRunner, stopAfter: number | undefined, controller: AbortController): SoftmaxRunner {
  if (stopAfter === undefined) return runner;
  const run = runner.run.bind(runner);
  runner.run = async (batch, lr, step) => {
    const r = await run(batch, lr, step);
    if (step === stopAfter) controller.abort();
    return r;
  };
  return runner;
}

interface RunSpec {
  model: CheckedModel;
  config?: TrainConfig;
  outDir: string;
  resume?: boolean;
  stopAfter?: number;
  fixedBatch?: boolean;
  trainSet?: Dataset;
  testSet?: Dataset;
  extra?: Partial<TrainOptions>;
}

async function runTraining(spec: RunSpec) {
  const config = spec.config ?? spec.model.train;
  const controller = new AbortController();
  const runner = stoppingRunner(new SoftmaxRunner(16, 3, config, { fixedBatch: spec.fixedBatch }), spec.stopAfter, controller);
  const log = sink();
  const result = await train({
    model: spec.model, config, runner, trainSet: spec.trainSet ?? synthetic(50, 1), testSet: spec.testSet ?? synthetic(21, 2),
    outDir: spec.outDir, resume: spec.resume, log, stop: controller.signal, logEvery: 3, ...spec.extra,
  });
  return { result, runner, log };
}

/** Timing fields differ between runs; everything else must be identical. */
const withoutTiming = (records: LogRecord[]) => records.map(({ images_per_s: _i, elapsed: _e, ...rest }) => rest);

async function expectSameTensors(a: string, b: string) {
  const ca = await loadCheckpoint(a), cb = await loadCheckpoint(b);
  expect([...cb.tensors.keys()]).toEqual([...ca.tensors.keys()]);
  for (const [name, t] of ca.tensors) {
    const u = cb.tensors.get(name)!;
    expect(u.dims, name).toEqual(t.dims);
    expect(Buffer.from(u.data.buffer).equals(Buffer.from(t.data.buffer)), `${name} differs`).toBe(true);
  }
}

describe('trainer: exact resume', () => {
  const cases: [string, string, number, boolean][] = [
    ['adam with cosine warm-up, stop at the epoch boundary', 'optimizer: adam lr=0.05\n schedule: cosine warmup=0.5\n batch: 8\n epochs: 2\n seed: 3', 6, false],
    ['sgd momentum, step decay, stop mid-epoch', 'optimizer: sgd lr=0.2 momentum=0.9 nesterov=on weight_decay=1e-3\n schedule: step step_size=1 gamma=0.5\n batch: 8\n epochs: 3\n seed: 5', 9, false],
    ['adamw, flip augmentation, fixed batch (last partial batch dropped), stop mid-epoch', 'optimizer: adamw lr=0.02 weight_decay=0.01\n augment: flip=on crop=1\n batch: 8\n epochs: 2\n seed: 7', 8, true],
  ];
  for (const [name, trainText, stopAfter, fixedBatch] of cases) {
    it(name, async () => {
      const model = tinyModel(trainText);
      const straight = tempDir(), resumed = tempDir();
      const a = await runTraining({ model, outDir: straight, fixedBatch });
      expect(a.result.interrupted).toBe(false);

      const b1 = await runTraining({ model, outDir: resumed, fixedBatch, stopAfter });
      expect(b1.result.interrupted).toBe(true);
      expect(b1.result.steps).toBe(stopAfter + 1);
      expect(b1.log.text).toMatch(/stopped at epoch \d+, step \d+; checkpoint .*last\.ckpt \(continue with --resume\)/);
      const meta = (await loadCheckpoint(join(resumed, 'last.ckpt'))).meta as { step: number };
      expect(meta.step).toBe(stopAfter + 1);

      const b2 = await runTraining({ model, outDir: resumed, fixedBatch, resume: true });
      expect(b2.result.interrupted).toBe(false);
      expect(b2.log.text).toContain(`resuming Tiny at epoch`);
      expect(b2.result.steps).toBe(a.result.steps);

      // Same steps with the same learning rates and batch sizes, in the same order.
      expect([...b1.runner.calls, ...b2.runner.calls]).toEqual(a.runner.calls);
      if (fixedBatch) expect(a.runner.calls.every((c) => c.count === 8)).toBe(true);
      // Parameter for parameter, optimizer state included, bit for bit.
      await expectSameTensors(join(straight, 'last.ckpt'), join(resumed, 'last.ckpt'));
      await expectSameTensors(join(straight, 'best.ckpt'), join(resumed, 'best.ckpt'));
      // The log reads as one run.
      expect(withoutTiming(readLog(resumed))).toEqual(withoutTiming(readLog(straight)));
      expect(withoutTiming(b2.result.history)).toEqual(withoutTiming(a.result.history));
    });
  }

  it('2 epochs == 1 epoch, then --resume with epochs raised to 2', async () => {
    const text = (epochs: number) => `optimizer: sgd lr=0.1 momentum=0.5\n batch: 8\n epochs: ${epochs}\n seed: 11`;
    const straight = tempDir(), resumed = tempDir();
    const a = await runTraining({ model: tinyModel(text(2)), outDir: straight });
    await runTraining({ model: tinyModel(text(1)), outDir: resumed });
    const b = await runTraining({ model: tinyModel(text(2)), outDir: resumed, resume: true });
    expect(b.log.text).toContain('notice: resuming with changed settings: epochs 1 -> 2');
    await expectSameTensors(join(straight, 'last.ckpt'), join(resumed, 'last.ckpt'));
    expect(withoutTiming(readLog(resumed))).toEqual(withoutTiming(readLog(straight)));
    expect(withoutTiming(b.result.history)).toEqual(withoutTiming(a.result.history));
  });

  it('refuses a resume that would change the data order, and a fresh run over an existing one', async () => {
    const dir = tempDir();
    await runTraining({ model: tinyModel('batch: 8\n epochs: 1'), outDir: dir });
    await expect(runTraining({ model: tinyModel('batch: 4\n epochs: 2'), outDir: dir, resume: true }))
      .rejects.toThrow(/cannot resume exactly, the data order would differ: batchSize 8 in the checkpoint, 4 now/);
    await expect(runTraining({ model: tinyModel('batch: 8\n epochs: 2'), outDir: dir }))
      .rejects.toThrow(/already holds a training run \(last\.ckpt\); pass --resume/);
    await expect(runTraining({ model: tinyModel('batch: 8\n epochs: 2'), outDir: tempDir(), resume: true }))
      .rejects.toThrow(/--resume: no last\.ckpt to resume from/);
  });

  it('a kill between last.ckpt and best.ckpt: --resume restores best.ckpt from last.ckpt', async () => {
    const model = tinyModel('optimizer: sgd lr=0.05\n batch: 8\n epochs: 3');
    const straight = tempDir(), dir = tempDir();
    const a = await runTraining({ model, outDir: straight });
    expect(a.result.best!.epoch).toBe(3); // the last epoch sets a new best
    // Run to the end of epoch 2, keep its best.ckpt, finish, then put the old best.ckpt back and
    // leave a temporary file: the state a kill after last.ckpt's rename in epoch 3 leaves.
    await runTraining({ model, outDir: dir, stopAfter: 13 });
    const older = readFileSync(join(dir, 'best.ckpt'));
    await runTraining({ model, outDir: dir, resume: true });
    writeFileSync(join(dir, 'best.ckpt'), older);
    writeFileSync(join(dir, 'best.ckpt.tmp-999999999'), older.subarray(0, 100));
    const b = await runTraining({ model, outDir: dir, resume: true });
    expect(b.log.text).toContain('notice: removed best.ckpt.tmp-999999999');
    expect(b.log.text).toMatch(/notice: .*best\.ckpt held epoch 2, not the best epoch 3; restored it from .*last\.ckpt/);
    expect(b.log.text).toContain('nothing to do');
    expect(readFileSync(join(dir, 'best.ckpt')).equals(readFileSync(join(dir, 'last.ckpt')))).toBe(true);
    await expectSameTensors(join(straight, 'best.ckpt'), join(dir, 'best.ckpt'));
    expect(readdirSync(dir).sort()).toEqual(['best.ckpt', 'curves.svg', 'last.ckpt', 'train.jsonl']);
  });

  it('drops log lines a crashed run wrote after its last checkpoint', async () => {
    const dir = tempDir();
    const model = tinyModel('batch: 8\n epochs: 2');
    await runTraining({ model, outDir: dir, stopAfter: 9 });
    // Simulate a crash after the checkpoint: lines for steps that the checkpoint does not cover.
    const { appendFileSync } = await import('node:fs');
    appendFileSync(join(dir, 'train.jsonl'), JSON.stringify({ type: 'step', epoch: 2, step: 12 }) + '\n');
    await runTraining({ model, outDir: dir, resume: true });
    const steps = readLog(dir).map((r) => `${r.type}${r.step}`);
    expect(steps).toEqual(['step3', 'step6', 'epoch7', 'step9', 'step12', 'epoch14']);
  });
});

describe('trainer: files', () => {
  it('writes checkpoints atomically each epoch, a JSONL log and curves', async () => {
    const dir = tempDir();
    const model = tinyModel('optimizer: sgd lr=0.3\n batch: 8\n epochs: 3');
    // Watch the output directory at the start of each epoch's first step.
    const seen: { step: number; files: string[]; epoch?: number }[] = [];
    const runner = new SoftmaxRunner(16, 3, model.train);
    const run = runner.run.bind(runner);
    runner.run = async (batch, lr, step) => {
      if (step % 7 === 0) {
        const files = readdirSync(dir).sort();
        const epoch = files.includes('last.ckpt') ? ((await loadCheckpoint(join(dir, 'last.ckpt'))).meta as { epoch: number }).epoch : undefined;
        seen.push({ step, files, epoch });
      }
      return run(batch, lr, step);
    };
    const result = await train({ model, config: model.train, runner, trainSet: synthetic(50, 1), testSet: synthetic(21, 2), outDir: dir, log: sink(), logEvery: 3 });
    expect(seen).toEqual([
      { step: 0, files: ['train.jsonl'], epoch: undefined },
      { step: 7, files: ['best.ckpt', 'curves.svg', 'last.ckpt', 'train.jsonl'], epoch: 1 },
      { step: 14, files: ['best.ckpt', 'curves.svg', 'last.ckpt', 'train.jsonl'], epoch: 2 },
    ]);
    expect(readdirSync(dir).sort()).toEqual(['best.ckpt', 'curves.svg', 'last.ckpt', 'train.jsonl']); // no temp files
    const last = await loadCheckpoint(join(dir, 'last.ckpt'));
    expect(last.model).toBe('Tiny');
    expect(last.meta).toMatchObject({ format: 'cnnc-train/1', epoch: 3, batch: 0, step: 21, data: { seed: 0, batchSize: 8, trainSize: 50, dropLast: false } });
    expect([...last.tensors.keys()]).toEqual(['fc.weight', 'fc.bias', 'optim.fc.weight.v', 'optim.fc.bias.v']);
    const best = await loadCheckpoint(join(dir, 'best.ckpt'));
    expect((best.meta as { epoch: number }).epoch).toBe(result.best!.epoch);

    // JSONL: a step line every 3 steps and one line per epoch, with the fields asked for.
    const log = readLog(dir);
    expect(log.map((r) => `${r.type}:${r.epoch}:${r.step}`)).toEqual([
      'step:1:3', 'step:1:6', 'epoch:1:7', 'step:2:9', 'step:2:12', 'epoch:2:14', 'step:3:15', 'step:3:18', 'epoch:3:21',
    ]);
    for (const r of log) {
      for (const k of ['epoch', 'step', 'loss', 'acc', 'lr', 'images_per_s', 'elapsed'] as const) expect(typeof r[k], `${r.type} ${k}`).toBe('number');
      if (r.type === 'epoch') {
        expect(r.test_acc).toBeGreaterThanOrEqual(0);
        expect(r.test_loss).toBeGreaterThan(0);
      } else expect(r.test_acc).toBeUndefined();
      expect(r.lr).toBe(0.3);
    }
    const epochs = log.filter((r) => r.type === 'epoch');
    expect(epochs.at(-1)!.test_acc).toBeGreaterThan(0.9); // the synthetic task is easy
    expect(epochs.at(-1)!.loss).toBeLessThan(epochs[0].loss);

    // SVG: well-formed, with curves, axes labels and a legend.
    const svg = readFileSync(join(dir, 'curves.svg'), 'utf8');
    expectWellFormedSvg(svg);
    expect(svg.match(/<polyline /g)).toHaveLength(5); // train and test, loss and accuracy, and the per-step loss
    for (const text of ['train loss', 'test loss', 'train acc', 'test acc', '>epoch<', '>loss<', '>accuracy<', 'Tiny: 3 epochs']) expect(svg).toContain(text);
  });

  it('curves for a single epoch and for runs without a test set are still well-formed', () => {
    const rec = (epoch: number, acc: number, test?: number): LogRecord => ({ type: 'epoch', epoch, step: epoch * 10, loss: 2 / epoch, acc, ...(test !== undefined && { test_acc: test, test_loss: 1 }), lr: 0.1, images_per_s: 1, elapsed: 1 });
    for (const h of [[rec(1, 0.5, 0.6)], [rec(1, 0.5), rec(2, 0.7)], [], Array.from({ length: 37 }, (_, i) => rec(i + 1, i / 40, i / 45))]) {
      const svg = curvesSvg(h, 'A<B & "C"');
      expectWellFormedSvg(svg);
      expect(svg).toContain('A&#60;B &#38; &#34;C&#34;');
      expect(svg).not.toMatch(/NaN|Infinity/);
    }
  });

  it('prints plain progress lines about every 10% of an epoch when not on a TTY', async () => {
    const dir = tempDir();
    const model = tinyModel('batch: 8\n epochs: 2');
    const { log } = await runTraining({ model, outDir: dir, trainSet: synthetic(800, 3) }); // 100 steps per epoch
    expect(log.text).not.toContain('\r');
    const lines = log.text.split('\n');
    const progress = lines.filter((l) => /^epoch \d\/2 +\d+%/.test(l));
    expect(progress.filter((l) => l.startsWith('epoch 1/2'))).toHaveLength(10);
    expect(progress.filter((l) => l.startsWith('epoch 2/2'))).toHaveLength(10);
    expect(progress[0]).toMatch(/^epoch 1\/2  10%  loss \d+\.\d{4}  acc \d+\.\d\d%  \d+ img\/s  ETA \d+:\d\d, run \d+:\d\d$/);
    expect(progress[9]).toMatch(/^epoch 1\/2 100%/);
    const summaries = lines.filter((l) => /^epoch \d\/2  loss/.test(l));
    expect(summaries).toHaveLength(2);
    expect(summaries[1]).toMatch(/^epoch 2\/2  loss \d\.\d{4}  acc [\d.]+%  test loss \d\.\d{4}  test acc [\d.]+%  lr 0\.00100  \d+ img\/s  \d+:\d\d$/);
    expect(lines[0]).toMatch(/^training Tiny: 2 epochs of 100 steps \(batch 8\), 800 training and 21 test samples, device cpu$/);
  });

  it('redraws one line with \\r on a TTY', async () => {
    const model = tinyModel('batch: 8\n epochs: 1');
    const runner = new SoftmaxRunner(16, 3, model.train);
    const log = sink(true);
    await train({ model, config: model.train, runner, trainSet: synthetic(50, 1), testSet: synthetic(21, 2), outDir: tempDir(), log });
    expect(log.text).toMatch(/\r\[#+\.*\] epoch 1\/1 +\d+%  loss/);
    expect(log.text).toMatch(/\r\x1b\[Kepoch 1\/1  loss/); // the bar is cleared before the summary
  });
});

describe('trainer: the training screen', () => {
  /** Trains with a fake clock: each training step takes 1 s and each evaluation batch `evalStep` s. */
  async function timed(opts: { epochs: number; trainSize: number; testSize: number; evalStep: number; columns?: number; isTTY?: boolean }) {
    const model = tinyModel(`batch: 8\n epochs: ${opts.epochs}`);
    const runner = new SoftmaxRunner(16, 3, model.train);
    let clock = 0;
    const run = runner.run.bind(runner), evaluate = runner.evaluate.bind(runner);
    runner.run = async (b, lr, step) => { clock += 1000; return run(b, lr, step); };
    runner.evaluate = async (b) => { clock += opts.evalStep * 1000; return evaluate(b); };
    const now = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    const log = sink(opts.isTTY);
    log.columns = opts.columns ?? 120;
    try {
      await train({ model, config: model.train, runner, trainSet: synthetic(opts.trainSize, 1), testSet: synthetic(opts.testSize, 2), outDir: tempDir(), log });
    } finally { now.mockRestore(); }
    return log.text;
  }

  it('shows the run\'s ETA beside the epoch\'s: later epochs at this speed, evaluation guessed then measured', async () => {
    // 10 steps an epoch, 3 epochs, 3 evaluation batches of 2 s each.
    const text = await timed({ epochs: 3, trainSize: 80, testSize: 24, evalStep: 2 });
    const line = (prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));
    // Epoch 1 after one step: 9 s left in it; no evaluation yet, so a third of the training time
    // per image times 24/80 (1 s) each, and 2 more epochs of 10 s: 9 + 1 + 2 * 11 = 32 s.
    expect(line('epoch 1/3  10%')).toMatch(/ETA 0:09, run 0:32$/);
    // Epoch 2: the evaluation took 6 s, so 9 + 6 + (10 + 6) = 31 s.
    expect(line('epoch 2/3  10%')).toMatch(/ETA 0:09, run 0:31$/);
    expect(line('epoch 3/3 100%')).toMatch(/ETA 0:00, run 0:06$/); // only the last evaluation left
  });

  it('fits the progress line to a 60-column terminal, dropping the bar and accuracy but keeping the ETA', async () => {
    const text = await timed({ epochs: 2, trainSize: 80, testSize: 24, evalStep: 1, columns: 60, isTTY: true });
    // What each \r redraws, up to the erase-line code; the epoch summaries are separate lines.
    const drawn = text.split('\r').slice(1).map((l) => l.split('\x1b[K')[0]).filter((l) => l !== '');
    expect(drawn.length).toBeGreaterThan(0);
    for (const l of drawn) {
      expect(l.length, l).toBeLessThanOrEqual(59);
      expect(l).toMatch(/^epoch \d\/2 +\d+%  loss \d\.\d{4}  \d+ img\/s  ETA \d+:\d\d, run \d+:\d\d$/);
    }
    // A wide terminal keeps everything, the bar included.
    expect(await timed({ epochs: 1, trainSize: 80, testSize: 24, evalStep: 1, columns: 200, isTTY: true })).toMatch(/\r\[#+\.*\] epoch 1\/1 +\d+%  loss \S+  acc \S+  \d+ img\/s  ETA/);
  });

  it('fitParts drops the lowest priority first and keeps the order of the rest', () => {
    const parts = [{ text: 'aaaa', priority: 3 }, { text: 'bb', priority: 1 }, { text: 'cccc', priority: 2 }, { text: 'ETA', priority: 4 }];
    expect(fitParts(parts, 100)).toBe('aaaa  bb  cccc  ETA');
    expect(fitParts(parts, 17)).toBe('aaaa  cccc  ETA');
    expect(fitParts(parts, 9)).toBe('aaaa  ETA');
    expect(fitParts(parts, 3)).toBe('ETA');
  });

  it('counts are singular for one: "1 epoch of 1 step"', async () => {
    const text = await timed({ epochs: 1, trainSize: 8, testSize: 8, evalStep: 1 });
    expect(text).toMatch(/^training Tiny: 1 epoch of 1 step \(batch 8\)/);
  });

  it('a one-epoch run with warmup=1 is warned at the start that it never decays', async () => {
    const warned = await runTraining({ model: tinyModel('batch: 8\n epochs: 1\n schedule: cosine warmup=1'), outDir: tempDir() });
    expect(warned.log.text.split('\n')[1]).toBe('warning: the warm-up (warmup=1) spans the whole run of 1 epoch: ' +
      'the learning rate only rises and the cosine decay never starts; lower warmup= or raise epochs');
    const fine = await runTraining({ model: tinyModel('batch: 8\n epochs: 2\n schedule: cosine warmup=1'), outDir: tempDir() });
    expect(fine.log.text).not.toContain('warning:');
  });

  it('the per-step loss is smoothed with a bias-corrected average, about 100 points an epoch', () => {
    const trace = new LossTrace(1000);
    for (let step = 1; step <= 1000; step++) trace.add(step, step <= 500 ? 2 : 1);
    expect(trace.points).toHaveLength(100); // every 10th step
    expect(trace.points[0][0]).toBeCloseTo(0.01);
    expect(trace.points[0][1]).toBeCloseTo(2, 10); // no pull toward 0 at the start
    expect(trace.points.at(-1)![1]).toBeCloseTo(1, 6);
    const early = new LossTrace(4);
    [3, 1].forEach((loss, i) => early.add(i + 1, loss));
    expect(early.points[1][1]).toBeCloseTo((0.09 * 3 + 0.1 * 1) / 0.19, 10);
  });

  it('a one-epoch run draws the per-step loss as a curve in curves.svg', async () => {
    const dir = tempDir();
    const { result } = await runTraining({ model: tinyModel('batch: 8\n epochs: 1'), outDir: dir, trainSet: synthetic(400, 3) }); // 50 steps
    expect(result.steps).toBe(50);
    const svg = readFileSync(join(dir, 'curves.svg'), 'utf8');
    expectWellFormedSvg(svg);
    const lines = [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) => m[1].split(' ').length);
    expect(lines[0]).toBe(50); // the steps' curve: one point per step at 50 steps an epoch
    expect(svg).toContain('train loss (steps)');
    expect(svg).toContain('Tiny: 1 epoch<');
  });

  it('a stopped run (Ctrl-C) writes the curves so far, the unfinished epoch\'s steps included', async () => {
    const dir = tempDir();
    const { result } = await runTraining({ model: tinyModel('batch: 8\n epochs: 2'), outDir: dir, trainSet: synthetic(400, 3), stopAfter: 11 });
    expect(result.interrupted).toBe(true);
    expect(result.history).toHaveLength(0);
    const svg = readFileSync(join(dir, 'curves.svg'), 'utf8');
    expectWellFormedSvg(svg);
    expect([...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) => m[1].split(' ').length)).toEqual([12]);
  });
});

describe('trainer: bad data stops before any step', () => {
  const model = tinyModel('batch: 8\n epochs: 1');
  const attempt = async (trainSet: Dataset, testSet: Dataset) => {
    const runner = new SoftmaxRunner(16, 3, model.train);
    const dir = tempDir();
    const error = await train({ model, config: model.train, runner, trainSet, testSet, outDir: dir, log: sink() }).then(() => undefined, (e: unknown) => e);
    expect(runner.calls).toHaveLength(0);
    expect(existsSync(join(dir, 'last.ckpt'))).toBe(false);
    return error as Error;
  };

  it('label out of range, in the training or the test set', async () => {
    let e = await attempt(synthetic(50, 1, { labelMax: 3, source: '/data/bad-train' }), synthetic(21, 2));
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toBe("/data/bad-train: label 3 (class '3') is out of range: the model has 3 classes (labels 0..2)");
    e = await attempt(synthetic(50, 1), synthetic(21, 2, { labelMax: 7, source: '/data/bad-test' }));
    expect(e.message).toMatch(/^\/data\/bad-test: label 7 .* out of range/);
  });

  it('wrong image size', async () => {
    const e = await attempt(synthetic(50, 1, { shape: [1, 5, 5], source: '/data/big-images' }), synthetic(21, 2));
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toBe("/data/big-images: images have shape [1, 5, 5] (channels, height, width) but the model's input is [1, 4, 4]");
  });

  it('a training set smaller than one fixed batch', async () => {
    const runner = new SoftmaxRunner(16, 3, model.train, { fixedBatch: true });
    await expect(train({ model, config: model.train, runner, trainSet: synthetic(5, 1, { source: '/data/small' }), outDir: tempDir(), log: sink() }))
      .rejects.toThrow(/^\/data\/small: the training set has 5 samples, fewer than one batch of 8/);
  });

  it('a diverging loss stops with advice', async () => {
    const runner = new SoftmaxRunner(16, 3, model.train);
    runner.run = async () => ({ loss: NaN, correct: 0 });
    await expect(train({ model, config: model.train, runner, trainSet: synthetic(50, 1), outDir: tempDir(), log: sink() }))
      .rejects.toThrow(/the loss became NaN in training at step 1; training diverged: try a lower learning rate/);
  });
});

const FASHION = '/usr/share/datasets/fashion-mnist';
const haveFashion = existsSync(join(FASHION, 'train-images-idx3-ubyte.gz')) || existsSync(join(FASHION, 'train-images-idx3-ubyte'));
if (!haveFashion) console.warn(`skipping the Fashion-MNIST training test: ${FASHION} not found`);

describe.skipIf(!haveFashion)('trainer: real data', () => {
  it('softmax regression on 2,000 Fashion-MNIST images beats chance by far in 2 epochs', async () => {
    const src = 'model FashionLinear {\n  input 1x28x28\n  flatten -> dense 10\n  train {\n    optimizer: sgd lr=0.1 momentum=0.9\n    batch: 32\n    epochs: 2\n    seed: 1\n  }\n}\n';
    const model = check(src, 'fashion-linear.cnn').models[0];
    const trainSet = sliceDataset(await loadDataset(FASHION, { split: 'train', classNames: FASHION_MNIST_CLASSES }), 2000);
    const testSet = sliceDataset(await loadDataset(FASHION, { split: 'test', classNames: FASHION_MNIST_CLASSES }), 1000);
    expect(trainSet.size).toBe(2000);
    const runner = new SoftmaxRunner(784, 10, model.train);
    const dir = tempDir();
    const result = await train({ model, config: model.train, runner, trainSet, testSet, outDir: dir, log: sink() });
    const last = result.history.at(-1)!;
    expect(result.steps).toBe(2 * Math.ceil(2000 / 32));
    expect(last.test_acc).toBeGreaterThan(0.6);
    expect(last.loss).toBeLessThan(result.history[0].loss);
  }, 60_000);
});

/** A small structural check: one root <svg>, every tag closed in order, attributes quoted. */
function expectWellFormedSvg(svg: string) {
  expect(svg.startsWith('<svg ')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let pos = 0;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    const between = svg.slice(pos, m.index);
    expect(between, `stray markup before ${m[0]}`).not.toMatch(/[<>]/);
    pos = m.index + m[0].length;
    const [, close, name, , selfClose] = m;
    if (close) expect(stack.pop(), `</${name}>`).toBe(name);
    else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
  }
  expect(svg.slice(pos)).not.toMatch(/[<>]/);
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
}

describe('cnnc train: options, overrides, data', () => {
  const source = (train: string) => {
    const dir = tempDir();
    const file = join(dir, 'model.cnn');
    writeFileSync(file, `model Tiny {\n  input 1x4x4\n  flatten -> dense 3\n  train {\n    ${train}\n  }\n}\n`);
    return file;
  };
  /** IDX train/t10k files of the synthetic set in a fresh directory. */
  const idxDir = (opts: { labelMax?: number; shape?: [number, number, number] } = {}) => {
    const dir = tempDir();
    for (const [prefix, size, seed] of [['train', 50, 1], ['t10k', 21, 2]] as const) {
      const ds = synthetic(size, seed, prefix === 'train' ? opts : { shape: opts.shape });
      writeIdx(join(dir, `${prefix}-images-idx3-ubyte`), [size, ds.shape[1], ds.shape[2]], ds.images);
      writeIdx(join(dir, `${prefix}-labels-idx1-ubyte`), [size], ds.labels as Uint8Array);
    }
    return dir;
  };
  const factory = () => {
    const made: { config: TrainConfig; opts: unknown; runner: SoftmaxRunner }[] = [];
    const create: CreateTrainRunner = async (model, config, opts) => {
      const runner = new SoftmaxRunner(16, 3, config);
      made.push({ config, opts, runner });
      return runner;
    };
    return { made, create };
  };

  it('applies overrides through the train-section specs, changing only what is written', () => {
    const base = tinyModel('optimizer: sgd lr=0.1 momentum=0.9\n schedule: step step_size=2').train;
    const c = applyOverrides(base, overridesFrom({ lr: '0.5', epochs: '7', set: ['schedule: cosine warmup=1.5', 'augment: flip=on', 'freeze: "fc*" conv1'] }));
    expect(c.optimizer).toEqual({ ...base.optimizer, lr: 0.5 });
    expect(c.schedule).toEqual({ kind: 'cosine', step_size: 2, gamma: 0.1, warmup: 1.5 });
    expect(c.epochs).toBe(7);
    expect(c.augment).toEqual({ flip: true, crop: 0 });
    expect(c.freeze).toEqual(['fc*', 'conv1']);
    expect(base.optimizer.lr).toBe(0.1); // the model's own config is not modified
    expect(applyOverrides(base, overridesFrom({ optimizer: 'adamw', batch: '1_000', seed: '0' }))).toMatchObject({ optimizer: { kind: 'adamw', lr: 0.1 }, batch: 1000, seed: 0 });
    // The specific flags win over --set.
    expect(applyOverrides(base, overridesFrom({ lr: '0.2', set: ['optimizer: lr=0.3'] })).optimizer.lr).toBe(0.2);
  });

  it('bad override values get the source checker\'s messages, naming the flag', () => {
    const base = tinyModel('').train;
    const bad = (o: Parameters<typeof overridesFrom>[0]) => () => applyOverrides(base, overridesFrom(o));
    expect(bad({ lr: '0' })).toThrow(/^--lr 0: optimizer lr = 0 is out of range: it must be > 0$/);
    expect(bad({ lr: 'fast' })).toThrow(/^--lr fast: optimizer lr = fast is not a number$/);
    expect(bad({ epochs: '2.5' })).toThrow(/^--epochs 2.5: epochs count = 2.5 is not an integer$/);
    expect(bad({ batch: '0' })).toThrow(/^--batch 0: batch size = 0 is out of range/);
    expect(bad({ optimizer: 'rmsprop' })).toThrow(/^--optimizer rmsprop: optimizer kind = rmsprop is not one of sgd, adam, adamw$/);
    expect(bad({ set: ['schedul: cosine'] })).toThrow(/^--set "schedul: cosine": there is no train field "schedul"; did you mean "schedule"\?$/);
    expect(bad({ set: ['optimizer: sgd momentun=0.9'] })).toThrow(/optimizer has no option "momentun" \(did you mean "momentum"\?\)/);
    expect(bad({ set: ['lr=3'] })).toThrow(/^--set "lr=3": write it as a train-section line, FIELD: VALUE/);
    expect(bad({ set: ['epochs: 3 } model X { input 1'] })).toThrow(/write it as a train-section line/);
    expect(bad({ set: ['epochs: 3 batch: 4'] })).toThrow(/write it as a train-section line/);
    expect(bad({ set: [''] })).toThrow(/write it as a train-section line/);
    expect(bad({ set: ['schedule: step gamma=2 step_size=0'] })).toThrow(/schedule step_size = 0 is out of range/);
    expect(bad({ set: ['freeze: 3'] })).toThrow(/^--set "freeze: 3": freeze pattern = this is not a layer name pattern/);
  });

  it('trains from IDX files with the overrides, writes the run directory and resumes', async () => {
    const file = source('optimizer: sgd lr=0.1\n batch: 8\n epochs: 1');
    const data = idxDir();
    const out = join(tempDir(), 'run');
    const printed: string[] = [];
    const f = factory();
    const deps = { createTrainRunner: f.create, log: sink(), print: (l: string) => printed.push(l), handleSigint: false };
    const r1 = await trainCommand(file, { data, out, lr: '0.3', device: 'cpu', threads: '2', limitTrain: '40' }, deps);
    expect(f.made[0].config.optimizer.lr).toBe(0.3);
    // The runner's graphs name the file and its check's texts (imports.test.ts checks what they do with them).
    const { source: texts, ...opts } = f.made[0].opts as { source?: { main: { text: string } } };
    expect(opts).toEqual({ device: 'cpu', threads: 2, batch: 8, file: 'model.cnn' });
    expect(texts?.main.text).toBe(readFileSync(file, 'utf8'));
    expect(r1.steps).toBe(5); // 40 samples in batches of 8
    expect(printed[0]).toMatch(/^Tiny: 1 epoch, 5 steps; test accuracy \d+\.\d\d%, best \d+\.\d\d% at epoch 1$/);
    expect(printed[1]).toBe(`checkpoints: ${join(out, 'last.ckpt')}, ${join(out, 'best.ckpt')}`);
    expect(readdirSync(out).sort()).toEqual(['best.ckpt', 'curves.svg', 'last.ckpt', 'train.jsonl']);
    const last = await loadCheckpoint(join(out, 'last.ckpt'));
    expect(last.sourceHash).toMatch(/^[0-9a-f]{64}$/);
    // Continue for a second epoch.
    const r2 = await trainCommand(file, { data, out, lr: '0.3', epochs: '2', resume: true, limitTrain: '40' }, deps);
    expect(r2.steps).toBe(10);
    expect(f.made[1].runner.calls.map((c) => c.step)).toEqual([5, 6, 7, 8, 9]);
    // The slice is part of the data order: resuming without it is refused.
    await expect(trainCommand(file, { data, out, epochs: '3', resume: true }, deps)).rejects.toThrow(/trainSize 40 in the checkpoint, 50 now/);
  });

  it('without a test split it trains with a notice; a finished run has nothing to do', async () => {
    const file = source('batch: 8\n epochs: 1');
    const data = idxDir();
    rmSync(join(data, 't10k-images-idx3-ubyte'));
    rmSync(join(data, 't10k-labels-idx1-ubyte'));
    const out = join(tempDir(), 'run');
    const log = sink();
    const deps = { createTrainRunner: factory().create, log, print: () => {}, handleSigint: false };
    const r = await trainCommand(file, { data, out }, deps);
    expect(log.text).toContain(`notice: ${data} has no test split (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte); training without evaluation`);
    expect(r.history[0].test_acc).toBeUndefined();
    expect(r.best).toEqual({ epoch: 1, acc: r.history[0].acc });
    const again = await trainCommand(file, { data, out, resume: true }, deps);
    expect(again.steps).toBe(r.steps);
    expect(log.text).toContain(`nothing to do: the run in ${out} has finished its 1 epoch (raise --epochs to train further)`);
  });

  it('bad data fails before the runner is even created, naming the data', async () => {
    const f = factory();
    const deps = { createTrainRunner: f.create, log: sink(), print: () => {}, handleSigint: false };
    const file = source('batch: 8\n epochs: 1');
    const labels = idxDir({ labelMax: 5 });
    await expect(trainCommand(file, { data: labels, out: tempDir() }, deps)).rejects.toThrow(`${join(labels, 'train-labels-idx1-ubyte')}: label 5 (class '5') is out of range: the model has 3 classes (labels 0..2)`);
    const size = idxDir({ shape: [1, 5, 5] });
    await expect(trainCommand(file, { data: size, out: tempDir() }, deps)).rejects.toThrow(`${size}: images have shape [1, 5, 5] (channels, height, width) but the model's input is [1, 4, 4]`);
    await expect(trainCommand(file, { data: join(size, 'nope'), out: tempDir() }, deps)).rejects.toThrow(/nope: data directory does not exist/);
    expect(f.made).toHaveLength(0);
  });

  it('a model with errors is refused before data is read', async () => {
    const dir = tempDir();
    const file = join(dir, 'broken.cnn');
    writeFileSync(file, 'model B {\n  input 1x4x4\n  dense 3\n}\n');
    const log = sink();
    await expect(trainCommand(file, { data: '/nonexistent' }, { log, createTrainRunner: factory().create })).rejects.toThrow(/broken\.cnn: has errors; fix them before training/);
    expect(log.text).toContain('dense needs a flat vector');
  });

  it('Ctrl-C stops after the current step with a checkpoint; --resume finishes the run exactly', async () => {
    const file = source('optimizer: adam lr=0.01\n batch: 8\n epochs: 2');
    const data = idxDir();
    const straight = join(tempDir(), 'a'), stopped = join(tempDir(), 'b');
    const quiet = { log: sink(), print: () => {} };
    await trainCommand(file, { data, out: straight }, { ...quiet, createTrainRunner: factory().create, handleSigint: false });

    // Other SIGINT listeners (the test runner's) are set aside while a synthetic SIGINT is emitted.
    const others = process.listeners('SIGINT');
    for (const l of others) process.off('SIGINT', l);
    try {
      const log = sink();
      const create: CreateTrainRunner = async (_m, config) => {
        const runner = new SoftmaxRunner(16, 3, config);
        const run = runner.run.bind(runner);
        runner.run = async (batch, lr, step) => {
          if (step === 4) process.emit('SIGINT');
          return run(batch, lr, step);
        };
        return runner;
      };
      const r = await trainCommand(file, { data, out: stopped }, { log, print: () => {}, createTrainRunner: create, handleSigint: true });
      expect(r.interrupted).toBe(true);
      expect(r.steps).toBe(5);
      expect(log.text).toContain('stopping after this step and saving a checkpoint (Ctrl-C again to abort)');
      expect(process.listeners('SIGINT')).toHaveLength(0); // the handler is removed afterwards
    } finally {
      for (const l of others) process.on('SIGINT', l);
    }
    await trainCommand(file, { data, out: stopped, resume: true }, { ...quiet, createTrainRunner: factory().create, handleSigint: false });
    await expectSameTensors(join(straight, 'last.ckpt'), join(stopped, 'last.ckpt'));
    expect(readdirSync(stopped).sort()).toEqual(['best.ckpt', 'curves.svg', 'last.ckpt', 'train.jsonl']);
  });

  it('says clearly when the training graphs are missing', async () => {
    const available = existsSync(join(import.meta.dirname, '..', 'src', 'runtime', 'train-runner.ts'));
    if (available) expect(typeof (await loadRunnerFactory())).toBe('function');
    else await expect(loadRunnerFactory()).rejects.toThrow(/^training graphs are not available yet in this build of cnnc/);
  });
});
