/**
 * train.py of `cnnc export --torch` against cnnc itself (PyTorch from /usr/bin/python3; skipped with
 * a warning without it):
 * - two training steps (one for the deep zoo models) of train.py's train_step, run in float64 from
 *   cnnc's initial weights, give the weights, batch-norm statistics and optimizer state of cnnc's
 *   training graph on the same batches, to cnnc's float32 rounding, for the examples and for models
 *   that cover each loss, optimizer option and freezing;
 * - its learning rate is cnnc's step by step; its augmentation with cnnc's draws and its
 *   normalisation give cnnc's batches exactly; each process takes its slice of the same global
 *   batches; SyncBatchNorm conversion keeps cnnc's names; the flags default to the train section
 *   and refuse what it refuses; bad input is one line;
 * - end to end: train.py on generated IDX files and PNG class folders, cnnc predict and cnnc train
 *   --init on its checkpoint, --resume against an uninterrupted run, and a real 2-process
 *   DistributedDataParallel run (torchrun, gloo) against one process with the whole batch.
 * All Python work runs in one helper process and two train.py command lines (importing torch takes seconds). */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check, type CheckedModel } from '../src/index.ts';
import { denseOutput } from '../src/compiler/dense.ts';
import { initialState, labelDims, trainPlan } from '../src/compiler/emit/train.ts';
import { applyOverrides } from '../src/compiler/train-config.ts';
import { torchPackage } from '../src/compiler/emit/torch/index.ts';
import { compileCommand } from '../src/cli/compile.ts';
import { predictCommand } from '../src/cli/predict.ts';
import { trainCommand } from '../src/cli/train.ts';
import { loadCheckpointSync, saveCheckpoint } from '../src/runtime/checkpoint.ts';
import { batches, mixSeed, seededRandom, type Dataset } from '../src/runtime/dataset.ts';
import { writeIdx } from '../src/runtime/idx.ts';
import { learningRate } from '../src/runtime/schedule.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import type { TrainState } from '../src/runtime/train-step.ts';
import { uniform } from './helpers/random.ts';
import { pythonWith } from './helpers/python.ts';

/**
 * The tolerance of the step comparisons, relative to how far the steps moved each tensor (see
 * stepErrors). train.py's step runs in float64 (its code is the same in any precision), so what
 * differs is cnnc's float32 rounding; the largest seen is 8e-4 (a convolution bias before batch
 * norm, whose gradient is zero up to rounding), most cases stay under 3e-4.
 */
const STEP_TOLERANCE = 2e-3;

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const HELPER = join(ROOT, 'test/helpers/torch_train.py');

const python = pythonWith('torch');
if (!python) console.warn('export-train: skipping: no python3 with torch (install python3-torch, or set CNNC_PYTHON)');
const pillow = python !== null && spawnSync(python, ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0;
if (python && !pillow) console.warn('export-train: skipping the PNG class-folder run: no Pillow (install python3-pil)');

const work = mkdtempSync(join(tmpdir(), 'cnnc-export-train-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * Exports `source`'s first model to DIR as cnnc export --torch does; `set` changes its train
 * settings first, as `cnnc train --set` would (so train.py gets them as its defaults).
 */
function exportPackage(dir: string, file: string, source: string, set?: string): CheckedModel {
  const result = check(source, file);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`${file}: ${errors[0].message}`);
  const first = result.models[0];
  const model = set ? { ...first, train: applyOverrides(first.train, [{ flag: `--set ${set}`, entry: set }]) } : first;
  mkdirSync(dir, { recursive: true });
  const models = result.models.map((m) => (m === first ? model : m));
  for (const [f, text] of torchPackage({ file, source, models, model })) writeFileSync(join(dir, f), text);
  return model;
}

// ---------------------------------------------------------------------------------------------
// One training step, twice: the cases

interface StepCase {
  name: string;
  source: string;
  batch: number;
  /** Train-section lines applied as \`cnnc train --set\` would (the export gets them as its defaults). */
  set?: string;
  /** Steps compared: 2, or 1 for the deep models (see EXAMPLE_CASES). */
  steps: number;
}

/**
 * The examples as they are, except where that would compare rounding noise instead of semantics:
 * - dropout and droppath are 0: PyTorch draws its own masks and cnnc hashes its own (neither has
 *   parameters, so no name changes);
 * - 224x224 inputs are 64x64 (32x32 for the tutorials): where a global pool comes before the dense
 *   layers every tensor stays the same, and a step costs a twelfth;
 * - Adam's eps is 1e-3 (not 1e-8) for the binary tutorial model: its convolutions have biases
 *   before batch norm, whose gradients are zero up to rounding, and Adam divides a gradient by its
 *   size, so that with a tiny eps cnnc's float32 step moves such a bias by +lr or -lr at random;
 * - the deep models of the zoo (resnet18, mobilenet_v2, efficientnet_b0, googlenet, densenet121,
 *   mobilenet_v3_small) take one step
 *   of SGD (lr 1e-3, momentum 0.9) at batch 2 instead of two of their default Adam: at batch 2
 *   their float32 gradients are right to about 2e-4 of the largest (cnnc's, against float64 for
 *   MobileNetV2; PyTorch's own float32 to 5e-3), which Adam turns into random signs wherever a
 *   gradient is that small, and a second step from there compares two chaotic trajectories.
 * Left out: vgg16, alexnet, resnet50 and convnext_tiny, whose 25-138M parameters make one step and its
 * checkpoints cost more than all the rest; their layer kinds and combinators are in the ones kept.
 */
const DEEP = { set: 'optimizer: sgd lr=1e-3 momentum=0.9', steps: 1 };
const EXAMPLE_CASES: StepCase[] = ([
  ['fashion/bn.cnn', 4, {}], ['fashion/small.cnn', 4, {}],
  ['tutorials/000_binary_bn_224.cnn', 2, { size: 32, set: 'optimizer: eps=1e-3' }], ['tutorials/001_cifar10.cnn', 2, {}],
  ['tutorials/002_rgb224_flatten.cnn', 2, { size: 32 }], ['tutorials/003_mnist.cnn', 4, {}], ['tutorials/004_fashion_mnist.cnn', 4, {}],
  ['zoo/lenet5.cnn', 4, {}], ['zoo/resnet18.cnn', 2, { size: 64, ...DEEP }], ['zoo/mobilenet_v2.cnn', 2, { size: 64, ...DEEP }],
  ['zoo/efficientnet_b0.cnn', 2, { size: 64, ...DEEP }], ['zoo/googlenet.cnn', 2, { size: 64, ...DEEP }],
  ['zoo/densenet121.cnn', 2, { size: 64, ...DEEP }], ['zoo/mobilenet_v3_small.cnn', 2, { size: 64, ...DEEP }],
] as [string, number, { size?: number; set?: string; steps?: number }][]).map(([file, batch, o]) => {
  let source = readFileSync(join(ROOT, 'examples', file), 'utf8').replace(/\b(dropout|droppath)\s+[0-9.]+/g, '$1 0');
  if (o.size) source = source.replace(/input 3x224x224/, `input 3x${o.size}x${o.size}`);
  return { name: file, source, batch, set: o.set, steps: o.steps ?? 2 };
});

const FEATURE_BLOCKS = `block classifier(k) {
  dense 6 -> relu -> dense k -> softmax
}

block stage(c) {
  conv c 3x3 pad=same -> bn -> relu
}

`;

/** What the examples leave out: each loss, each optimizer option, label smoothing, freezing. */
const FEATURE_CASES: StepCase[] = [
  ['sgd, momentum, weight decay, label smoothing, bn on maps and vectors', `
  input 2x6x6 mean=[0.4, 0.5] std=[0.2, 0.3]
  conv 4 3x3 pad=same bias=off -> bn -> relu -> maxpool 2 -> flatten -> dense 8 -> bn -> relu -> dense 3
  train { loss: cross_entropy smoothing=0.1  optimizer: sgd lr=0.1 momentum=0.9 weight_decay=5e-4 }`],
  ['sgd with nesterov, a final softmax folded into cross-entropy inside a block', `
  input 1x5x5
  conv 3 3x3 -> tanh -> flatten -> head: classifier(4)
  train { optimizer: sgd lr=0.05 momentum=0.8 nesterov=on weight_decay=1e-3 }`],
  ['sgd, frozen { } and a freeze pattern: frozen batch norms keep their statistics', `
  input 1x6x6
  frozen { conv 4 3x3 pad=same -> bn } -> relu -> s1: stage(4) -> s2: stage(4) -> gap -> flatten -> fc: dense 3
  train { optimizer: sgd lr=0.2 momentum=0.5  freeze: "s1.bn*" }`],
  ['adam with weight decay, bce on one output, its final sigmoid folded', `
  input 1x4x4
  conv 3 3x3 -> relu -> flatten -> dense 4 -> elu -> dense 1 -> sigmoid
  train { loss: bce  optimizer: adam lr=0.01 weight_decay=1e-2 beta1=0.8 beta2=0.95 }`],
  ['adamw, bce on four one-hot outputs, freeze by a wildcard', `
  input 6
  fc1: dense 5 -> gelu -> fc2: dense 5 -> silu -> fc3: dense 4
  train { loss: bce  optimizer: adamw lr=0.02 weight_decay=0.1 eps=1e-6  freeze: "fc1*" }`],
  ['mse on one output against the 0/1 label, plain sgd', `
  input 1x4x4
  conv 2 3x3 -> leakyrelu -> flatten -> dense 1
  train { loss: mse  optimizer: sgd lr=0.1 }`],
  ['mse on one-hot targets, a final softmax not folded (mse takes probabilities)', `
  input 5
  dense 6 -> prelu -> dense 3 -> softmax
  train { loss: mse  optimizer: adam lr=0.01 }`],
  ['dense: cross-entropy per pixel against masks, an ignore label, label smoothing, bn', `
  input 1x6x6
  conv 4 3x3 pad=same -> bn -> relu -> conv 3 1x1
  train { loss: cross_entropy smoothing=0.1 ignore=255  optimizer: sgd lr=0.1 momentum=0.9 }`],
  ['dense: bce per pixel on one channel (binary masks), a final sigmoid folded', `
  input 2x5x5
  conv 4 3x3 pad=same -> relu -> conv 1 1x1 -> sigmoid
  train { loss: bce  optimizer: adam lr=0.01 }`],
  ['adamw through layernorm, shuffle, layer scale, hardsigmoid, identity and droppath 0 (a ConvNeXt-style block)', `
  input 4x6x6
  conv 8 3x3 pad=same -> layernorm eps=1e-6 -> shuffle 2
  -> residual { dwconv 3x3 pad=1 -> layernorm -> conv 16 1x1 -> hardsigmoid -> conv 8 1x1 -> scale init=0.5 -> droppath 0 }
  -> identity -> gap -> flatten -> dense 6 -> layernorm -> dense 3
  train { optimizer: adamw lr=0.01 weight_decay=0.05 }`],
  ['sgd through the spatial kinds: a ceil-mode pool, transposed convolution, upsampling, pixel shuffle, adaptive pooling', `
  input 2x8x8
  conv 4 3x3 pad=same -> bn -> relu -> maxpool 3 stride=2 ceil=on -> convtranspose 4 2x2 stride=2 -> upsample 2 mode=bilinear
  -> conv 8 3x3 stride=2 pad=same -> pixelshuffle 2 -> relu -> avgpool 3 stride=2 pad=1 ceil=on -> adaptiveavgpool 3
  -> upsample size=5x4 -> flatten -> dense 3
  train { optimizer: sgd lr=0.1 momentum=0.9 }`],
].map(([name, body], i) => ({
  name,
  source: `${FEATURE_BLOCKS}model Case${i} {${body.replace(/train \{ (.*) \}/, (_, t: string) => `train {\n    ${t.split(/\s{2,}/).join('\n    ')}\n  }`)}\n}\n`,
  batch: 6,
  steps: 2,
}));

interface PreparedStep {
  c: StepCase;
  model: CheckedModel;
  init: TrainState;
  want: TrainState;
  losses: number[];
  job: { dir: string; init: string; batches: { x: string; y: string; count: number }[]; lrs: number[]; out: string };
}

/** Labels in range: the classes (a dense model's channels), or 0/1 for a single output under bce or mse. */
const labelCount = (model: CheckedModel) => Math.max(2, denseOutput(model.output)?.channels ?? model.output!.reduce((a, b) => a * b, 1));

/** cnnc's side: the initial state as a checkpoint, and two steps of the training graph. */
async function prepareStep(c: StepCase, i: number): Promise<PreparedStep> {
  const dir = join(work, `step${i}`);
  const model = exportPackage(dir, c.name.endsWith('.cnn') ? c.name : `case${i}.cnn`, c.source, c.set);
  const plan = trainPlan(model, model.train);
  const init = initialState(plan);
  await saveCheckpoint(join(dir, 'init.ckpt'), { model: model.name, tensors: init });
  const runner = await OrtTrainRunner.create(model, model.train, { device: 'cpu', threads: 1, batch: c.batch });
  runner.load(init);
  const per = model.input!.reduce((a, b) => a * b, 1);
  const lrs = [model.train.optimizer.lr, model.train.optimizer.lr / 2].map(Math.fround).slice(0, c.steps);
  const job: PreparedStep['job'] = { dir, init: join(dir, 'init.ckpt'), batches: [], lrs, out: join(dir, 'torch.ckpt') };
  const losses: number[] = [];
  for (let s = 0; s < c.steps; s++) {
    const x = uniform(100 * i + s, c.batch * per, -2, 2);
    // A dense model's labels are masks, every seventh pixel the ignore label when there is one.
    const ignore = model.train.loss.ignore;
    const labels = c.batch * labelDims(model).reduce((a, b) => a * b, 1);
    const y = BigInt64Array.from({ length: labels }, (_, k) => BigInt(ignore !== undefined && k % 7 === 3 ? ignore : (k * 5 + s + i) % labelCount(model)));
    const files = { x: join(dir, `x${s}.bin`), y: join(dir, `y${s}.bin`), count: c.batch };
    writeFileSync(files.x, x);
    writeFileSync(files.y, new Uint8Array(y.buffer));
    job.batches.push(files);
    losses.push((await runner.run({ x, y, count: c.batch }, lrs[s], s)).loss);
  }
  const want = runner.state();
  await runner.dispose();
  return { c, model, init, want, losses, job };
}

/** The root mean square of a - b (of a alone without b). */
function rms(a: Float32Array, b?: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - (b ? b[i] : 0)) ** 2;
  return Math.sqrt(sum / Math.max(1, a.length));
}

/**
 * How far train.py's state is from cnnc's after the steps, per tensor: the root mean square of
 * the difference over that of cnnc's move from the initial value (a relative error in norm: single
 * weights with tiny gradients carry a large relative error of their own under Adam, whose update
 * divides the gradient by its size). Two floors for tensors that do not move mathematically, whose
 * move is rounding noise: 1e-3 of the largest move of any tensor of its kind in the step (model
 * tensors or optimizer state), and 1e-6 of its values (float32 resolves 1.2e-7 near 1, where batch
 * norms' scales stay).
 */
function stepErrors(got: TrainState, want: TrainState, init: TrainState): { errors: Map<string, number>; moved: number } {
  const kind = (name: string) => (name.startsWith('optim.') ? 'optim' : 'model');
  const largest = { optim: 0, model: 0 };
  for (const [name, t] of want) largest[kind(name)] = Math.max(largest[kind(name)], rms(t.data, init.get(name)!.data));
  const errors = new Map<string, number>();
  for (const [name, t] of want) {
    const floor = 1e-3 * largest[kind(name)] + 1e-6 * rms(t.data);
    errors.set(name, rms(got.get(name)!.data, t.data) / (rms(t.data, init.get(name)!.data) + floor));
  }
  return { errors, moved: largest.model };
}

/** The largest |a - b| / (1 + |b|) of two tensors. */
function difference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

// ---------------------------------------------------------------------------------------------
// The other jobs: schedules, batches, data sets

/** Sampler layouts: [samples, global batch, processes]. */
const SAMPLERS = [[10, 4, 2], [10, 4, 4], [11, 6, 3], [7, 8, 2]] as const;
/** [samples, global batch, processes, steps left] where the last batch would give each process one sample. */
const DROPPED = [[9, 4, 1, 2], [10, 4, 2, 2], [26, 8, 2, 3]] as const;

const SCHEDULES = [
  ['cosine warmup=1', 'lr=0.1', 7, 3], ['cosine warmup=0.5', 'lr=0.01', 5, 4], ['step step_size=2 gamma=0.5 warmup=1', 'lr=0.3', 4, 5],
  ['constant warmup=2.5', 'lr=0.2', 3, 2], ['cosine', 'lr=1e-3', 10, 1],
] as const;

/** Fashion-MNIST-like IDX files: `count` 28x28 images whose pixels depend on the label, so a model can learn them. */
function writeIdxData(dir: string, count: number, test: number): void {
  mkdirSync(dir, { recursive: true });
  const make = (n: number, seed: number) => {
    const labels = Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) % 10);
    const noise = uniform(seed, n * 784, 0, 60);
    const images = Uint8Array.from({ length: n * 784 }, (_, j) => {
      const label = labels[Math.floor(j / 784)], p = j % 784;
      return Math.min(255, Math.round(noise[j] + (Math.floor(p / 28) % 10 === label ? 180 : 0)));
    });
    return { images, labels };
  };
  const train = make(count, 1), held = make(test, 2);
  writeIdx(join(dir, 'train-images-idx3-ubyte.gz'), [count, 28, 28], train.images, { gzip: true });
  writeIdx(join(dir, 'train-labels-idx1-ubyte'), [count], train.labels);
  writeIdx(join(dir, 't10k-images-idx3-ubyte'), [test, 28, 28], held.images);
  writeIdx(join(dir, 't10k-labels-idx1-ubyte.gz'), [test], held.labels, { gzip: true });
}

/** Class folders of 8x8 RGB PNGs (no train/ and test/: train.py holds out a validation part). */
async function writePngFolders(dir: string): Promise<string> {
  const classes = ['circle', 'square', 'stripe'];
  for (const [c, name] of classes.entries()) {
    mkdirSync(join(dir, name), { recursive: true });
    for (let i = 0; i < 8; i++) {
      const noise = uniform(10 * c + i, 192, 0, 80);
      const rgb = Uint8Array.from(noise, (v, j) => Math.round(v + ((j % 3) === c ? 150 : 0)));
      await sharp(Buffer.from(rgb), { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(join(dir, name, `${i}.png`));
    }
  }
  return join(dir, 'square', '3.png');
}

/** Inputs train.py must refuse: a truncated IDX file, a model with fewer classes than the labels, a PNG of another size. */
async function writeBadInputs(): Promise<{ truncated: string; three: string; png: string }> {
  const truncated = join(work, 'truncated');
  mkdirSync(truncated, { recursive: true });
  writeIdx(join(truncated, 'train-labels-idx1-ubyte'), [4], Uint8Array.of(0, 1, 2, 3));
  const header = Buffer.from([0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 28, 0, 0, 0, 28]);
  writeFileSync(join(truncated, 'train-images-idx3-ubyte'), Buffer.concat([header, Buffer.alloc(3000 - header.length)]));
  const three = join(work, 'three');
  exportPackage(three, 'three.cnn', 'model Three {\n  input 1x28x28\n  flatten -> dense 3\n}\n');
  const png = join(work, 'bad-png');
  if (pillow) {
    for (const [cls, h] of [['a', 8], ['b', 9]] as const) {
      mkdirSync(join(png, cls), { recursive: true });
      await sharp(Buffer.alloc(h * 8 * 3, 90), { raw: { width: 8, height: h, channels: 3 } }).png().toFile(join(png, cls, '0.png'));
    }
  }
  return { truncated, three, png };
}

/** A train section that sets every field away from cnnc's defaults (Adam's are checked as cnnc's defaults). */
const SETTINGS_SOURCE = `block stage(c) {
  conv c 3x3 pad=same -> relu
}

model Settings {
  input 1x28x28
  s1: stage(4) -> flatten -> fc: dense 10
  train {
    loss: cross_entropy smoothing=0.05
    optimizer: sgd lr=0.02 momentum=0.85 nesterov=on weight_decay=3e-4
    schedule: step step_size=3 gamma=0.5 warmup=0.25
    batch: 24
    epochs: 7
    seed: 9
    augment: flip=on crop=3
    freeze: "s1.*" fc
  }
}
`;

/** [flag, value, argparse's complaint]: the bounds of the train section's own specs. */
const BAD_FLAGS = [
  ['--lr', '0', '0 is outside (0, inf)'], ['--momentum', '1', '1 is outside [0, 1)'], ['--label-smoothing', '1', '1 is outside [0, 1)'],
  ['--batch', '2.5', "expected an integer, got '2.5'"], ['--flip', 'maybe', "expected on or off, got 'maybe'"],
  ['--optimizer', 'rmsprop', "invalid choice: 'rmsprop'"], ['--gamma', 'nan', 'nan is outside (0, inf)'],
] as const;

/** The models the end-to-end runs train: MnistCnn from the tutorials, and small ones for DDP and PNGs. */
const DDP_SOURCE = `model NoBn {
  input 1x28x28 mean=[0.3] std=[0.3]
  conv 4 3x3 stride=2 -> relu -> maxpool 2 -> flatten -> dense 16 -> tanh -> dense 10
  train {
    optimizer: sgd lr=0.05 momentum=0.9 weight_decay=1e-4
    schedule: cosine warmup=0.5
    batch: 8
    epochs: 2
    augment: flip=on crop=2
  }
}
`;
const PNG_SOURCE = `model Shapes {
  input 3x8x8 mean=[0.5, 0.5, 0.5] std=[0.25, 0.25, 0.25]
  conv 6 3x3 pad=same -> bn -> relu -> gap -> flatten -> dense 3
  train {
    optimizer: adam lr=0.01
    batch: 4
    epochs: 1
    seed: 3
  }
}
`;

/** Runs a command; its output, or a thrown error with it. */
function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

/** The cnnc CLI commands in-process, their console output captured. */
async function captured(fn: () => Promise<unknown>): Promise<string> {
  const lines: string[] = [];
  const log = console.log, error = console.error, write = process.stderr.write;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  console.error = console.log;
  process.stderr.write = ((chunk: string) => { lines.push(String(chunk)); return true; }) as typeof process.stderr.write;
  try { await fn(); } finally { console.log = log; console.error = error; process.stderr.write = write; }
  return lines.join('\n');
}

const tensorsOf = (file: string) => loadCheckpointSync(file).tensors;

function expectSameTensors(a: string, b: string, tol: number): void {
  const x = tensorsOf(a), y = tensorsOf(b);
  expect([...x.keys()]).toEqual([...y.keys()]);
  for (const [name, t] of y) expect(difference(x.get(name)!.data, t.data), name).toBeLessThanOrEqual(tol);
}

// ---------------------------------------------------------------------------------------------

interface HelperAnswer {
  steps: { losses: number[]; correct: number[] }[];
  schedules: number[][];
  batches: number[][];
  convert: { before: string[]; after: string[]; converted: number }[];
  samplers: number[][][][];
  defaults: Record<string, unknown>[];
  runs: { log: string; error?: string }[];
  torch: string;
}

describe.skipIf(!python)('train.py of cnnc export --torch', () => {
  const steps: PreparedStep[] = [];
  let answer: HelperAnswer;
  const dirs = {
    idx: join(work, 'idx'), png: join(work, 'png'), mnist: join(work, 'mnist'), ddp: join(work, 'ddp'), shapes: join(work, 'shapes'),
    fashion: join(work, 'fashion'), rgb: join(work, 'rgb'), settings: join(work, 'settings'),
  };
  const batchCases: { ds: Dataset; dir: string; seed: number; epoch: number; want: Float32Array; out: string }[] = [];
  let pngImage = '';
  const runs: Record<string, { log: string; error?: string }> = {};

  beforeAll(async () => {
    const cases = [...EXAMPLE_CASES, ...FEATURE_CASES];
    for (const [i, c] of cases.entries()) steps.push(await prepareStep(c, i));
    writeIdxData(dirs.idx, 72, 24);
    if (pillow) pngImage = await writePngFolders(dirs.png);
    const mnist = readFileSync(join(ROOT, 'examples/tutorials/003_mnist.cnn'), 'utf8');
    exportPackage(dirs.mnist, '003_mnist.cnn', mnist);
    exportPackage(dirs.ddp, 'nobn.cnn', DDP_SOURCE);
    exportPackage(dirs.shapes, 'shapes.cnn', PNG_SOURCE);
    exportPackage(dirs.settings, 'settings.cnn', SETTINGS_SOURCE);
    const fashion = exportPackage(dirs.fashion, 'small.cnn', readFileSync(join(ROOT, 'examples/fashion/small.cnn'), 'utf8'));
    const rgb = exportPackage(dirs.rgb, 'resnet18.cnn', readFileSync(join(ROOT, 'examples/zoo/resnet18.cnn'), 'utf8').replace('3x224x224', '3x12x10'));
    batchCases.push(augmentCase(dirs.fashion, fashion, 0), augmentCase(dirs.rgb, rgb, 1));
    const mnistRun = (out: string, ...more: string[]) => ({ dir: dirs.mnist, argv: ['--data', dirs.idx, '--out', join(work, out), '--batch', '16', '--device', 'cpu', ...more] });
    const bad = await writeBadInputs();
    const runJobs: Record<string, { dir: string; argv: string[] }> = {
      // --resume against an uninterrupted run (both two epochs of MnistCnn, the second resumed)
      whole: mnistRun('whole', '--epochs', '2', '--flip', 'on', '--crop', '1'),
      first: mnistRun('resumed', '--epochs', '1', '--flip', 'on', '--crop', '1'),
      resumed: mnistRun('resumed', '--epochs', '2', '--flip', 'on', '--crop', '1', '--resume'),
      // the one-process reference for the DDP run
      single: { dir: dirs.ddp, argv: ['--data', dirs.idx, '--out', join(work, 'single'), '--device', 'cpu', '--limit-train', '36'] },
      ...(pillow ? { shapes: { dir: dirs.shapes, argv: ['--data', dirs.png, '--out', join(work, 'shapes-run'), '--device', 'cpu'] } } : {}),
      // bad input: one line each
      noData: mnistRun('bad1', '--data', join(work, 'nowhere')),
      truncated: mnistRun('bad2', '--data', bad.truncated),
      noRun: mnistRun('bad3', '--resume'),
      otherModel: mnistRun('bad4', '--init', steps[0].job.init),
      shape: { dir: dirs.shapes, argv: ['--data', dirs.idx, '--out', join(work, 'bad5'), '--device', 'cpu'] },
      labels: { dir: bad.three, argv: ['--data', dirs.idx, '--out', join(work, 'bad6'), '--device', 'cpu'] },
      ...(pillow ? { size: { dir: dirs.shapes, argv: ['--data', bad.png, '--out', join(work, 'bad7'), '--device', 'cpu'] } } : {}),
      // flags out of the train section's bounds
      ...Object.fromEntries(BAD_FLAGS.map(([flag, value], i) => [`flag${i}`, { dir: dirs.settings, argv: ['--data', dirs.idx, flag, value] }])),
    };
    const job = {
      steps: steps.map((s) => s.job),
      schedules: SCHEDULES.map(([schedule, opt, spe, epochs]) => ({ dir: dirs.ddp, argv: scheduleArgv(schedule, opt), steps_per_epoch: spe, epochs })),
      batches: batchCases.map((b) => ({ dir: b.dir, images: join(b.dir, 'images.bin'), count: b.ds.size, ...draws(b.ds, b.seed, b.epoch), out: b.out })),
      convert: [dirs.fashion],
      // each layout twice: in one process, and in `world`
      samplers: [
        ...SAMPLERS.flatMap(([size, batch, world]) => [1, world].map((w) => ({ dir: dirs.ddp, size, batch, world: w, seed: 5, epoch: 3 }))),
        ...DROPPED.map(([size, batch, world]) => ({ dir: dirs.ddp, size, batch, world, seed: 5, epoch: 3, drop_single: true })),
      ],
      defaults: [dirs.settings],
      runs: Object.values(runJobs),
    };
    const r = spawnSync(python!, [HELPER], { input: JSON.stringify(job), encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    if (r.status !== 0) throw new Error(`torch_train.py failed (status ${r.status}): ${r.stderr}`);
    answer = JSON.parse(r.stdout) as HelperAnswer;
    Object.keys(runJobs).forEach((key, i) => { runs[key] = answer.runs[i]; });
  }, 600_000);

  describe('one training step, twice, against cnnc\'s training graph', () => {
    it('names the same tensors: parameters, buffers and optimizer state', () => {
      for (const s of steps) expect([...tensorsOf(s.job.out).keys()].sort(), s.c.name).toEqual([...s.want.keys()].sort());
    });
    for (const [i, c] of [...EXAMPLE_CASES, ...FEATURE_CASES].entries()) {
      it(c.name, () => {
        const s = steps[i];
        const got = tensorsOf(s.job.out);
        answer.steps[i].losses.forEach((l, k) => expect(l, `loss of step ${k + 1}`).toBeCloseTo(s.losses[k], 4));
        const { errors, moved } = stepErrors(got, s.want, s.init);
        for (const [name, error] of errors) expect(error, name).toBeLessThanOrEqual(STEP_TOLERANCE);
        // The steps did move the weights (by 1e-5 in root mean square at least), so agreement says something.
        expect(moved).toBeGreaterThan(1e-5);
      });
    }
    it('frozen layers and their batch-norm statistics stay as they were, in both', () => {
      const s = steps.find((p) => p.c.name.startsWith('sgd, frozen'))!;
      const got = tensorsOf(s.job.out);
      const frozen = ['conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.running_mean', 'bn1.running_var', 's1.bn1.weight', 's1.bn1.bias', 's1.bn1.running_mean', 's1.bn1.running_var'];
      for (const name of frozen) {
        expect(got.get(name)!.data, name).toEqual(s.init.get(name)!.data);
        expect(s.want.get(name)!.data, name).toEqual(s.init.get(name)!.data);
      }
      expect([...got.keys()].filter((n) => n.startsWith('optim.')).sort()).toEqual(['s1.conv1.weight', 's1.conv1.bias', 's2.conv1.weight', 's2.conv1.bias',
        's2.bn1.weight', 's2.bn1.bias', 'fc.weight', 'fc.bias'].map((n) => `optim.${n}.momentum`).sort());
      // The trained batch norm after them did update its statistics.
      expect(got.get('s2.bn1.running_mean')!.data).not.toEqual(s.init.get('s2.bn1.running_mean')!.data);
    });
  });

  it('the learning rate of every step is cnnc\'s', () => {
    SCHEDULES.forEach(([schedule, opt, spe, epochs], i) => {
      const config = check(DDP_SOURCE.replace(/schedule: .*/, `schedule: ${schedule}`).replace(/lr=0.05/, opt), 's.cnn').models[0].train;
      const counts = { stepsPerEpoch: spe, totalSteps: spe * epochs };
      answer.schedules[i].forEach((lr, step) => expect(lr, `${schedule}, step ${step}`).toBeCloseTo(learningRate(config.optimizer.lr, config.schedule, step, counts), 12));
    });
  });

  it('augmentation with cnnc\'s draws, and normalisation, give cnnc\'s batches exactly', () => {
    batchCases.forEach((b, i) => {
      expect(answer.batches[i]).toEqual([b.ds.size, ...b.ds.shape]);
      expect(new Float32Array(readFileSync(b.out).buffer.slice(0))).toEqual(b.want);
    });
  });

  it('each process takes its slice of the same global batches, whatever the number of processes', () => {
    SAMPLERS.forEach(([size, batch, world], i) => {
      const [[alone], ranks] = [answer.samplers[2 * i], answer.samplers[2 * i + 1]];
      expect(alone).toHaveLength(Math.ceil(size / batch));
      expect(ranks).toHaveLength(world);
      alone.forEach((global, step) => {
        const slices = ranks.map((r) => r[step]);
        expect(new Set(slices.map((sl) => sl.length)).size, `${size}/${batch}/${world}, step ${step}: equal slices`).toBe(1);
        const joined = slices.flat();
        // A last batch that does not split evenly is padded with the epoch's first samples.
        expect(joined).toEqual([...global, ...alone.flat().slice(0, joined.length - global.length)]);
      });
    });
  });

  it('with batch norm, a last batch of one sample per process is left out', () => {
    DROPPED.forEach(([size, batch, world, steps], i) => {
      const ranks = answer.samplers[2 * SAMPLERS.length + i];
      for (const r of ranks) expect(r.map((b) => b.length), `${size}/${batch}/${world}`).toEqual(Array(steps).fill(batch / world));
    });
  });

  it('SyncBatchNorm conversion keeps cnnc\'s tensor names', () => {
    const c = answer.convert[0];
    expect(c.converted).toBe(3);
    expect(c.after).toEqual(c.before);
  });

  it('--resume continues a run exactly: the same tensors and history as an uninterrupted one', () => {
    for (const r of [runs.whole, runs.first, runs.resumed]) expect(r.error).toBeUndefined();
    expect(runs.resumed.log).toMatch(/resuming MnistCnn at epoch 2, step 6/);
    expectSameTensors(join(work, 'resumed', 'last.ckpt'), join(work, 'whole', 'last.ckpt'), 0);
    const history = (dir: string) => (loadCheckpointSync(join(work, dir, 'last.ckpt')).meta.history as { loss: number }[]).map((h) => h.loss);
    expect(history('resumed')).toEqual(history('whole'));
    expect(readFileSync(join(work, 'resumed', 'train.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('python train.py on IDX files from cnnc\'s init.ckpt; cnnc predict and cnnc train --init take its checkpoint', async () => {
    const init = join(work, 'mnist-init');
    await captured(() => compileCommand(join(ROOT, 'examples/tutorials/003_mnist.cnn'), { output: init, train: true }));
    const out = join(work, 'mnist-run');
    const log = run(python!, ['train.py', '--data', dirs.idx, '--out', out, '--device', 'cpu', '--batch', '16', '--init', join(init, 'init.ckpt')], dirs.mnist);
    expect(log).toMatch(/training MnistCnn: 1 epoch of 5 steps \(batch 16\), 72 training and 24 test samples, device cpu/);
    expect(log).toMatch(/epoch 1\/1 {2}loss [\d.]+ {2}acc [\d.]+% {2}test loss [\d.]+ {2}test acc [\d.]+% {2}lr 0.001 /);
    const best = join(out, 'best.ckpt');
    const ckpt = loadCheckpointSync(best);
    expect(ckpt.meta).toMatchObject({ format: 'cnnc-torch-train/1', epoch: 1, step: 5, classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
    expect([...ckpt.tensors.keys()]).toEqual(['conv1.weight', 'conv1.bias', 'fc1.weight', 'fc1.bias', ...['conv1.weight', 'conv1.bias', 'fc1.weight', 'fc1.bias'].flatMap((n) => [`optim.${n}.m`, `optim.${n}.v`])]);
    const predicted = await captured(() => predictCommand(join(ROOT, 'examples/tutorials/003_mnist.cnn'), [join(dirs.idx, 't10k-images-idx3-ubyte')], { weights: best, top: 1, device: 'cpu', limit: 3, json: true }));
    expect((JSON.parse(predicted.slice(predicted.indexOf('{'))) as { predictions: unknown[] }).predictions).toHaveLength(3);
    const trained = await captured(() => trainCommand(join(ROOT, 'examples/tutorials/003_mnist.cnn'), { data: dirs.idx, init: best, out: join(work, 'cnnc-run'), epochs: '1', limitTrain: '16', limitTest: '8' }, { handleSigint: false }));
    expect(trained).toMatch(/init from .*best\.ckpt: 4 tensors matched/);
    expect(trained).not.toMatch(/not in the file|another shape/);
  }, 120_000);

  it.skipIf(!pillow)('trains on PNG class folders with a held-out validation part; cnnc predict takes a PNG with its checkpoint', async () => {
    const r = runs.shapes;
    expect(r.error).toBeUndefined();
    expect(r.log).toMatch(/holding out 3 of its 24 images/);
    expect(r.log).toMatch(/21 training and 3 val samples/);
    expect(r.log).toMatch(/val acc/);
    const best = join(work, 'shapes-run', 'best.ckpt');
    expect(loadCheckpointSync(best).meta.classes).toEqual(['circle', 'square', 'stripe']);
    writeFileSync(join(work, 'shapes.cnn'), PNG_SOURCE);
    const predicted = await captured(() => predictCommand(join(work, 'shapes.cnn'), [pngImage], { weights: best, top: 3, device: 'cpu', json: true }));
    expect(predicted).toMatch(/circle/);
  });

  it('the flags default to the train { } section and refuse what the section refuses', () => {
    const config = check(SETTINGS_SOURCE, 'settings.cnn').models[0].train;
    expect(answer.defaults[0]).toMatchObject({
      loss: 'cross_entropy', label_smoothing: 0.05, optimizer: 'sgd', lr: 0.02, momentum: 0.85, nesterov: true, weight_decay: 3e-4,
      schedule: 'step', step_size: 3, gamma: 0.5, warmup: 0.25, batch: 24, epochs: 7, seed: 9, flip: true, crop: 3, freeze: ['s1.*', 'fc'],
    });
    expect(answer.defaults[0]).toMatchObject({ beta1: config.optimizer.beta1, beta2: config.optimizer.beta2, eps: config.optimizer.eps });
    BAD_FLAGS.forEach(([flag, value, why], i) => {
      expect(runs[`flag${i}`].error, `${flag} ${value}`).toBe('2');
      expect(runs[`flag${i}`].log).toContain(`train.py: error: argument ${flag}: ${why}`);
    });
  });

  it('bad input stops train.py with one line naming the file and the problem', () => {
    const error = (key: string) => runs[key].error ?? `no error; the log:\n${runs[key].log}`;
    expect(error('noData')).toBe(`train.py: error: ${join(work, 'nowhere')}: data directory does not exist`);
    expect(error('truncated')).toMatch(/^train\.py: error: .*train-images-idx3-ubyte: IDX dimensions \[4, 28, 28\] need 3152 bytes, the file has 3000$/);
    expect(error('noRun')).toBe(`train.py: error: ${join(work, 'bad3')}: --resume: no last.ckpt to resume from`);
    expect(error('otherModel')).toMatch(/^train\.py: error: .*init\.ckpt: a checkpoint of model FashionBN, not MnistCnn$/);
    expect(error('shape')).toBe(`train.py: error: ${dirs.idx}: images have shape [1, 28, 28] (channels, height, width) but the model's input is [3, 8, 8]`);
    expect(error('labels')).toMatch(/^train\.py: error: .*: label 9 is out of range: the model has 3 classes \(labels 0\.\.2\)$/);
    if (pillow) expect(error('size')).toMatch(/^train\.py: error: .*b[/\\]0\.png: image is 3x9x8 \(channels x height x width\) but the model takes 3x8x8; pass --resize/);
    for (const key of ['noData', 'truncated', 'noRun', 'otherModel', 'shape', 'labels', 'size']) expect(runs[key]?.error ?? '', key).not.toMatch(/\n/);
  });

  it('DistributedDataParallel with 2 processes (torchrun, gloo) gives the weights of one process with the whole batch', () => {
    expect(runs.single.error).toBeUndefined();
    const out = join(work, 'ddp-run');
    // Debian's torch 1.13 torchrun cannot parse its own --redirects default under Python 3.11 (see the README).
    const log = run(python!, ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--redirects', '2', '--tee', '2',
      'train.py', '--data', dirs.idx, '--out', out, '--device', 'cpu', '--limit-train', '36'], dirs.ddp);
    expect(log).toMatch(/2 epochs of 5 steps \(batch 8 = 2 processes x 4\), 36 training and 24 test samples, device cpu, 2 processes \(gloo\)/);
    expect(log.match(/^epoch \d\/2 /gm)).toHaveLength(2); // rank 0 alone logs
    expectSameTensors(join(out, 'last.ckpt'), join(work, 'single', 'last.ckpt'), 1e-5);
  }, 120_000);
});


function scheduleArgv(schedule: string, opt: string): string[] {
  const [kind, ...options] = schedule.split(' ');
  const argv = ['--schedule', kind, '--lr', opt.split('=')[1]];
  for (const o of options) {
    const [k, v] = o.split('=');
    argv.push(`--${k.replace('_', '-')}`, v);
  }
  if (!options.some((o) => o.startsWith('warmup'))) argv.push('--warmup', '0');
  return argv;
}

/** A uint8 data set for `model` (exported to `dir`) and cnnc's first augmented batch of it (flip and crop 2, unshuffled). */
function augmentCase(dir: string, model: CheckedModel, i: number) {
  const [c, h, w] = model.input as [number, number, number];
  const count = 5;
  const images = Uint8Array.from(uniform(7 + i, count * c * h * w, 0, 256), Math.floor);
  writeFileSync(join(dir, 'images.bin'), images);
  const ds: Dataset = { source: dir, size: count, shape: [c, h, w], classes: ['a', 'b'], images, labels: new Int32Array(count) };
  const [seed, epoch] = [11 + i, 2];
  const { mean, std } = model.preprocess;
  const b = batches(ds, { batchSize: count, shuffle: false, seed, epoch, augment: { flip: true, cropPad: 2 }, mean, std }).next().value!;
  return { ds, dir, seed, epoch, want: b.x, out: join(dir, 'batch.bin') };
}

/** cnnc's augmentation draws for the first batch of (seed, epoch), as makeBatch takes them: mirror, dy, dx per sample. */
function draws(ds: Dataset, seed: number, epoch: number): { dy: number[]; dx: number[]; mirror: boolean[] } {
  const rand = seededRandom(mixSeed(seed, epoch, 0, 0xa06));
  const out = { dy: [] as number[], dx: [] as number[], mirror: [] as boolean[] };
  for (let k = 0; k < ds.size; k++) {
    out.mirror.push(rand() < 0.5);
    out.dy.push(Math.floor(rand() * 5) - 2);
    out.dx.push(Math.floor(rand() * 5) - 2);
  }
  return out;
}

