/**
 * `npm run bench:gpu` (bench/gpu/run.sh): cnnc on ONNX Runtime's CUDA provider against PyTorch eager
 * CUDA, float32 with TF32 off on both sides, and cnnc's CUDA results against its CPU results.
 *
 * - correctness: the logits of every zoo model on CUDA against the CPU (same weights, same input);
 *   one training step on CUDA against the CPU step, and a 2-step block (the Loop graph) against 2
 *   single steps on CUDA; where ONNX Runtime placed the nodes of the main graphs;
 * - inference: ResNet-50 and EfficientNet-B0 at 224, batch 1 and 64: images/s and latency;
 * - training: ResNet-18 and ResNet-50 at 224, batch 64, SGD with momentum: images/s in blocks of K
 *   steps (what `cnnc train --device cuda` does) and in single steps, and peak GPU memory.
 *
 * Rounds are interleaved (cnnc, PyTorch, PyTorch, cnnc, ...), each side in its own process. Writes
 * gpu-bench.json and gpu-bench.md to --out after every phase, so a run stopped by its deadline
 * still leaves what it measured. `--device cpu --quick --tiny` runs the same code on the CPU with
 * small models (a check of the harness, not a benchmark).
 *
 * Usage: bench-gpu [--device cuda|cpu] [--quick] [--tiny] [--out DIR] [--deadline SECONDS]
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { emitTrainLoop } from '../src/compiler/emit/train.ts';
import { trainPlan } from '../src/compiler/emit/train-plan.ts';
import type { CheckedModel } from '../src/compiler/model.ts';
import { applyOverrides } from '../src/compiler/train-config.ts';
import { chooseStepsPerCall, stackBatches } from '../src/runtime/blocks.ts';
import { freeGpuBytes } from '../src/runtime/cuda/probe.ts';
import { findOnnxruntime } from '../src/runtime/cuda/provider.ts';
import { createSession, type InferenceSession } from '../src/runtime/session.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import type { StepBatch, StepBlock, TrainState } from '../src/runtime/train-step.ts';
import { loadModel, torchModel } from './models.ts';
import { JsonProcess, serveJsonLines } from './torch-client.ts';
import { fmt, fmtRatio, median, range, stats } from './util.ts';

type Device = 'cuda' | 'cpu';

interface Args {
  device: Device;
  quick: boolean;
  tiny: boolean;
  out: string;
  /** Seconds after which the remaining measurements are skipped (and said to be). */
  deadline: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { device: 'cuda', quick: false, tiny: false, out: 'out/gpu-bench', deadline: 420 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--tiny') args.tiny = true;
    else if (a === '--device' && (argv[i + 1] === 'cuda' || argv[i + 1] === 'cpu')) args.device = argv[++i] as Device;
    else if (a === '--out' && argv[i + 1]) args.out = argv[++i];
    else if (a === '--deadline' && Number(argv[i + 1]) > 0) args.deadline = Number(argv[++i]);
    else throw new Error(`bench-gpu: unknown or incomplete argument ${a}; usage: [--device cuda|cpu] [--quick] [--tiny] [--out DIR] [--deadline SECONDS]`);
  }
  return args;
}

/** The rows. --tiny replaces the 224x224 networks by small ones (for runs on a CPU). */
function rows(tiny: boolean) {
  const zoo = readdirSync('examples/zoo').filter((f) => f.endsWith('.cnn')).sort().map((f) => `examples/zoo/${f}`);
  return tiny
    ? {
      correctness: ['examples/zoo/lenet5.cnn', 'bench/models/mnist_bn.cnn'], trainCheck: 'bench/models/mnist_bn.cnn',
      inference: [['examples/zoo/lenet5.cnn', 1], ['examples/zoo/lenet5.cnn', 64]] as [string, number][],
      training: [['examples/zoo/lenet5.cnn', 64], ['bench/models/mnist_bn.cnn', 64]] as [string, number][],
    }
    : {
      correctness: zoo, trainCheck: 'examples/zoo/resnet18.cnn',
      inference: [['examples/zoo/resnet50.cnn', 1], ['examples/zoo/resnet50.cnn', 64], ['examples/zoo/efficientnet_b0.cnn', 1], ['examples/zoo/efficientnet_b0.cnn', 64]] as [string, number][],
      training: [['examples/zoo/resnet18.cnn', 64], ['examples/zoo/resnet50.cnn', 64]] as [string, number][],
    };
}

/** The most training steps per call measured (see trainLoad). */
const BENCH_MAX_STEPS = 8;

/** SGD with momentum, as both sides train. */
const SGD = { lr: 0.01, momentum: 0.9 };
const trainConfig = (model: CheckedModel, batch: number) => applyOverrides(model.train, [
  { flag: 'bench', entry: `optimizer: sgd lr=${SGD.lr} momentum=${SGD.momentum}` }, { flag: 'bench', entry: `batch: ${batch}` },
]);

/** A fixed pseudo-random batch (the same on every run). */
function fixedBatch(model: CheckedModel, count: number): StepBatch {
  const per = model.input!.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: count * per }, (_, i) => Math.sin(i * 12.9898) * 0.8);
  const classes = model.output!.reduce((a, b) => a * b, 1);
  return { x, y: BigInt64Array.from({ length: count }, (_, i) => BigInt((i * 7) % Math.max(2, classes))), count };
}

/** Largest |a - b| and the largest |a|, over arrays of equal length. */
function maxDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return { diff, scale };
}

function stateDiff(a: TrainState, b: TrainState): { diff: number; scale: number; worst: string } {
  let best = { diff: 0, scale: 0, worst: '' };
  for (const [name, t] of a) {
    const d = maxDiff(t.data, b.get(name)!.data);
    if (d.diff >= best.diff) best = { ...d, worst: name };
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// The cnnc worker: this file with --worker, one process per phase or training model.

interface WorkerState {
  session?: InferenceSession;
  feeds?: Record<string, ort.Tensor>;
  runner?: OrtTrainRunner;
  batch?: StepBatch;
  block?: StepBlock;
  lrs?: number[];
  step: number;
}

async function compareInference(file: string, device: Device, batch: number) {
  const model = loadModel(file);
  const bytes = compileInference(model, { file, seed: 0 }).bytes;
  const x = new ort.Tensor('float32', fixedBatch(model, batch).x, [batch, ...model.input!]);
  const outputs: Float32Array[] = [];
  for (const d of ['cpu', device] as const) {
    const { session } = await createSession(bytes, { device: d });
    const out = await session.run({ [session.inputNames[0]]: x });
    outputs.push(out[session.outputNames[0]].data as Float32Array);
    await session.release();
  }
  return { model: model.name, ...maxDiff(outputs[0], outputs[1]) };
}

async function compareTraining(file: string, device: Device, batch: number) {
  const model = loadModel(file);
  const config = trainConfig(model, batch);
  const data = fixedBatch(model, batch);
  const cpu = await OrtTrainRunner.create(model, config, { device: 'cpu', batch });
  const dev = await OrtTrainRunner.create(model, config, { device, batch });
  const [a, b] = [await cpu.run(data, SGD.lr, 0), await dev.run(data, SGD.lr, 0)];
  const step = { lossCpu: a.loss, lossDevice: b.loss, ...stateDiff(cpu.state(), dev.state()) };
  // A block of 2 on the device against 2 single steps there (the Loop graph on the provider).
  const looped = await OrtTrainRunner.create(model, config, { device, batch });
  const second = await dev.run(data, SGD.lr, 1);
  const losses = await looped.runBlock(stackBatches([data, data]), [SGD.lr, SGD.lr], 0);
  const block = { lossBlock: losses[1].loss, lossSingle: second.loss, ...stateDiff(dev.state(), looped.state()) };
  for (const r of [cpu, dev, looped]) await r.dispose();
  return { model: model.name, batch, step, block };
}

/** Sessions with onnxruntime's verbose log, which names the provider each node went to. */
async function placement(file: string, graph: 'inference' | 'train_loop') {
  const model = loadModel(file);
  const bytes = graph === 'inference' ? compileInference(model, { file, seed: 0 }).bytes : emitTrainLoop(trainPlan(model, trainConfig(model, 64)), { file });
  // The default logger too (it writes the providers' "kernel not found" lines); this worker's first session sets it.
  ort.env.logLevel = 'verbose';
  process.stderr.write(`@@placement ${model.name} ${graph}\n`);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cuda'], logSeverityLevel: 0 });
  await session.release();
  process.stderr.write('@@end\n');
  return { model: model.name, graph };
}

async function workerCommand(state: WorkerState, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
  const device = msg.device as Device;
  switch (msg.cmd) {
    case 'compare-infer': return compareInference(msg.file as string, device, msg.batch as number);
    case 'compare-train': return compareTraining(msg.file as string, device, msg.batch as number);
    case 'placement': return placement(msg.file as string, msg.graph as 'inference' | 'train_loop');
    case 'infer-load': {
      const model = loadModel(msg.file as string);
      await state.session?.release();
      state.session = (await createSession(compileInference(model, { file: msg.file as string, seed: 0 }).bytes, { device })).session;
      const batch = msg.batch as number;
      state.feeds = { [state.session.inputNames[0]]: new ort.Tensor('float32', fixedBatch(model, batch).x, [batch, ...model.input!]) };
      return { model: model.name };
    }
    case 'infer': {
      const times: number[] = [];
      for (let i = 0; i < (msg.iters as number); i++) {
        const t = performance.now();
        await state.session!.run(state.feeds!);
        times.push((performance.now() - t) / 1000);
      }
      return { times };
    }
    case 'train-load': return trainLoad(state, msg.file as string, device, msg.batch as number);
    case 'train': return trainTimes(state, msg.iters as number, msg.mode as 'block' | 'step');
    default: throw new Error(`unknown command ${String(msg.cmd)}`);
  }
}

async function trainLoad(state: WorkerState, file: string, device: Device, batch: number) {
  const model = loadModel(file);
  state.runner = await OrtTrainRunner.create(model, trainConfig(model, batch), { device, batch, loop: true });
  state.batch = fixedBatch(model, batch);
  // K as `cnnc train` chooses it (auto, from the free memory now that the sessions exist), at most
  // BENCH_MAX_STEPS: more steps per call save little more and would take the benchmark's time.
  const free = device === 'cuda' ? freeGpuBytes() : undefined;
  const auto = chooseStepsPerCall({ requested: 'auto', device, batchBytes: state.batch.x.byteLength + batch * 8, freeDeviceBytes: free, canBlock: true }).steps;
  const k = Math.min(auto, BENCH_MAX_STEPS);
  state.block = stackBatches(Array.from({ length: k }, () => state.batch!));
  state.lrs = Array.from({ length: k }, () => SGD.lr);
  return { model: model.name, steps: k, auto, freeDeviceBytes: free ?? null };
}

/** Seconds per training step: `iters` single steps, or `iters` blocks (each block's time over its K steps). */
async function trainTimes(state: WorkerState, iters: number, mode: 'block' | 'step') {
  const times: number[] = [];
  let loss = NaN;
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    if (mode === 'step') {
      loss = (await state.runner!.run(state.batch!, SGD.lr, state.step++)).loss;
      times.push((performance.now() - t) / 1000);
    } else {
      const r = await state.runner!.runBlock(state.block!, state.lrs!, state.step);
      state.step += r.length;
      loss = r[r.length - 1].loss;
      times.push((performance.now() - t) / 1000 / r.length);
    }
  }
  return { times, loss };
}

async function worker(): Promise<void> {
  const state: WorkerState = { step: 0 };
  await serveJsonLines((msg) => workerCommand(state, msg));
  await state.session?.release();
  await state.runner?.dispose();
  process.exit(0);
}

/** This file again (compiled or through tsx, as this process runs). */
const cnncWorker = () => new JsonProcess('cnnc', process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--worker']);
const torchWorker = () => new JsonProcess('PyTorch', process.env.BENCH_PYTHON ?? '/usr/bin/python3',
  [fileURLToPath(new URL('./torch_gpu.py', import.meta.url))], { BENCH_THREADS: '4' });

// ---------------------------------------------------------------------------------------------
// GPU memory, polled from nvidia-smi per process while a model's rounds run

class GpuMemory {
  private peaks = new Map<number, number>();
  private timer?: NodeJS.Timeout;
  /** Whether nvidia-smi listed any process at all (it does not inside some containers). */
  seen = false;

  start(): void {
    this.timer = setInterval(() => {
      execFile('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], (err, stdout) => {
        if (err) return;
        for (const line of stdout.trim().split('\n').filter(Boolean)) {
          const [pid, mib] = line.split(',').map((s) => Number(s.trim()));
          this.seen = true;
          if (mib * 2 ** 20 > (this.peaks.get(pid) ?? 0)) this.peaks.set(pid, mib * 2 ** 20);
        }
      });
    }, 250);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  peak(pid: number | undefined): number | null {
    return pid === undefined ? null : this.peaks.get(pid) ?? null;
  }
}

// ---------------------------------------------------------------------------------------------
// The harness

interface Results {
  started: string;
  args: Args;
  machine: Record<string, unknown>;
  correctness: Record<string, unknown>[];
  trainCheck?: Record<string, unknown>;
  placement: { model: string; graph: string; providers: Record<string, number>; missingKernels: string[] }[];
  inference: Record<string, unknown>[];
  training: Record<string, unknown>[];
  skipped: string[];
  errors: string[];
  seconds?: number;
}

class Bench {
  private readonly t0 = performance.now();
  readonly rounds: number;
  readonly seconds: number;

  constructor(readonly args: Args, readonly results: Results) {
    this.rounds = args.quick ? 2 : 5;
    this.seconds = args.quick ? 0.2 : 0.6;
  }

  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** False (and the skip recorded) once the deadline has passed. */
  inTime(what: string): boolean {
    if (this.elapsed() < this.args.deadline) return true;
    this.results.skipped.push(`${what} (deadline of ${this.args.deadline} s reached)`);
    return false;
  }

  /** Runs a phase; its failure is recorded and the benchmark goes on, then the files are written. */
  async phase(name: string, fn: () => Promise<void>): Promise<void> {
    process.stderr.write(`bench-gpu: ${name} (${this.elapsed().toFixed(0)} s)\n`);
    try {
      await fn();
    } catch (e) {
      this.results.errors.push(`${name}: ${(e as Error).message.split('\n').slice(0, 3).join(' ')}`);
    }
    this.results.seconds = this.elapsed();
    writeResults(this.args.out, this.results);
  }

  /** Calls per measurement for about `seconds`, from a warm-up's seconds per step; a block is one call of `steps` steps. */
  iters(times: number[], steps = 1): number {
    return Math.max(steps > 1 ? 1 : 3, Math.min(200, Math.round(this.seconds / Math.max(1e-6, median(times) * steps))));
  }
}

async function correctness(b: Bench): Promise<void> {
  const { device } = b.args;
  const w = cnncWorker();
  try {
    for (const file of rows(b.args.tiny).correctness) {
      if (!b.inTime(`correctness of ${file}`)) break;
      const r = await w.send<Record<string, unknown>>({ cmd: 'compare-infer', file, device, batch: 2 });
      b.results.correctness.push({ file, ...r });
    }
    if (b.inTime('training step check')) {
      const file = rows(b.args.tiny).trainCheck;
      b.results.trainCheck = { file, ...(await w.send<Record<string, unknown>>({ cmd: 'compare-train', file, device, batch: 8 })) };
    }
  } finally {
    await w.close();
  }
}

async function placements(b: Bench): Promise<void> {
  if (b.args.device !== 'cuda') return void b.results.skipped.push('node placement (CUDA only)');
  const w = cnncWorker();
  try {
    const r = rows(b.args.tiny);
    const graphs: [string, 'inference' | 'train_loop'][] = [...new Set(r.inference.map(([f]) => f))].map((f) => [f, 'inference']);
    for (const [f] of r.training) graphs.push([f, 'train_loop']);
    for (const [file, graph] of graphs) {
      if (!b.inTime(`placement of ${file} ${graph}`)) break;
      const before = w.errorOutput.length;
      const { model } = await w.send<{ model: string }>({ cmd: 'placement', file, graph });
      b.results.placement.push({ model, graph, ...parsePlacement(w.errorOutput.slice(before)) });
    }
  } finally {
    await w.close();
  }
}

/** onnxruntime's verbose lines "Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 170" and missing kernels. */
export function parsePlacement(log: string): { providers: Record<string, number>; missingKernels: string[] } {
  const providers: Record<string, number> = {};
  for (const m of log.matchAll(/placed on \[(\w+)\]\. Number of nodes: (\d+)/g)) providers[m[1]] = (providers[m[1]] ?? 0) + Number(m[2]);
  const missing = new Set([...log.matchAll(/kernel not found in registries for Op type: (\w+)/g)].map((m) => m[1]));
  return { providers, missingKernels: [...missing].sort() };
}

/**
 * Interleaved rounds of two measurements; each takes a number of calls and returns seconds per
 * step, `oursSteps` steps per call of ours (a block), one per call of theirs.
 */
async function interleave(b: Bench, what: string, ours: (calls: number) => Promise<number[]>, theirs: (calls: number) => Promise<number[]>, oursSteps = 1) {
  const itersOurs = b.iters(await ours(oursSteps > 1 ? 2 : 3), oursSteps), itersTheirs = b.iters(await theirs(3));
  const a: number[][] = [], t: number[][] = [];
  for (let round = 0; round < b.rounds; round++) {
    if (round > 0 && !b.inTime(`${what}: rounds ${round + 1}-${b.rounds}`)) break;
    for (const side of round % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']) {
      if (side === 'ours') a.push(await ours(itersOurs));
      else t.push(await theirs(itersTheirs));
    }
  }
  return { ours: a, theirs: t, iters: [itersOurs, itersTheirs] };
}

/** images/s per round (batch / median seconds) and the latency over all iterations, in ms. */
function summarise(batch: number, rounds: number[][]) {
  const perRound = rounds.map((times) => batch / median(times));
  const all = rounds.flat().map((s) => s * 1000);
  return { imagesPerS: stats(perRound), latencyMs: stats(all), perRound };
}

async function inference(b: Bench): Promise<void> {
  const { device } = b.args;
  const ours = cnncWorker(), theirs = torchWorker();
  try {
    for (const [file, batch] of rows(b.args.tiny).inference) {
      if (!b.inTime(`inference ${file} batch ${batch}`)) break;
      const model = loadModel(file);
      await ours.send({ cmd: 'infer-load', file, batch, device });
      await theirs.send({ cmd: 'load', id: 'm', ...torchModel(file, model), batch, device });
      const run = (w: JsonProcess, extra = {}) => async (iters: number) => (await w.send<{ times: number[] }>({ cmd: 'infer', id: 'm', iters, ...extra })).times;
      const r = await interleave(b, `inference ${model.name} b${batch}`, run(ours), run(theirs));
      // PyTorch again with its input in host memory and its output copied back, as cnnc's calls do.
      const host = await run(theirs, { host: true })(r.iters[1]);
      const cnnc = summarise(batch, r.ours), torch = summarise(batch, r.theirs);
      b.results.inference.push({
        file, model: model.name, batch, iters: r.iters, cnnc, torch, torchHostInput: summarise(batch, [host]),
        ratio: stats(cnnc.perRound.map((x, i) => x / torch.perRound[i]).filter(Number.isFinite)),
      });
      await theirs.send({ cmd: 'drop', id: 'm' });
    }
  } finally {
    await ours.close();
    await theirs.close();
  }
}

async function trainingRow(b: Bench, file: string, batch: number): Promise<void> {
  const { device } = b.args;
  const model = loadModel(file);
  const ours = cnncWorker(), theirs = torchWorker(), memory = new GpuMemory();
  if (device === 'cuda') memory.start();
  try {
    const loaded = await ours.send<{ steps: number; auto: number; freeDeviceBytes: number | null }>({ cmd: 'train-load', file, batch, device });
    await theirs.send({ cmd: 'load', id: 'm', ...torchModel(file, model), batch, device, train: SGD });
    const run = (w: JsonProcess, extra = {}) => async (iters: number) => (await w.send<{ times: number[] }>({ cmd: 'train', id: 'm', iters, ...extra })).times;
    const r = await interleave(b, `training ${model.name}`, run(ours, { mode: 'block' }), run(theirs), loaded.steps);
    const single = await run(ours, { mode: 'step' })(Math.max(3, Math.round(r.iters[0] * loaded.steps / 2)));
    const cnnc = summarise(batch, r.ours), torch = summarise(batch, r.theirs);
    const torchMemory = await theirs.send<{ allocated: number | null; reserved: number | null }>({ cmd: 'memory', id: 'm' });
    b.results.training.push({
      file, model: model.name, batch, stepsPerCall: loaded.steps, autoStepsPerCall: loaded.auto, freeDeviceBytes: loaded.freeDeviceBytes, cnnc, cnncSingleSteps: summarise(batch, [single]), torch,
      ratio: stats(cnnc.perRound.map((x, i) => x / torch.perRound[i]).filter(Number.isFinite)),
      memory: { cnnc: memory.peak(ours.pid), torch: memory.peak(theirs.pid), listed: memory.seen, torchAllocated: torchMemory.allocated, torchReserved: torchMemory.reserved },
    });
  } finally {
    memory.stop();
    await ours.close();
    await theirs.close();
  }
}

/** The pack this run came from (bench/gpu/run.sh names its manifest): when and from which commit. */
function packInfo(): Record<string, unknown> | null {
  const file = process.env.BENCH_PACK_MANIFEST;
  if (!file) return null;
  const m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  return { created: m.created, commit: m.commit, provider: m.provider };
}

function machine(device: Device): Record<string, unknown> {
  const smi = (args: string[]) => {
    try {
      return execFileSync('nvidia-smi', args, { encoding: 'utf8', timeout: 20_000 }).trim();
    } catch {
      return null;
    }
  };
  return {
    device, node: process.version, onnxruntime: findOnnxruntime()?.version ?? null, gpu: device === 'cuda' ? smi(['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader']) : null,
    tf32: 'off: NVIDIA_TF32_OVERRIDE=0 for onnxruntime (onnxruntime-node cannot set the CUDA provider\'s use_tf32), allow_tf32 = False for PyTorch',
    env: { NVIDIA_TF32_OVERRIDE: process.env.NVIDIA_TF32_OVERRIDE ?? null, LD_LIBRARY_PATH: process.env.LD_LIBRARY_PATH ?? null },
    pack: packInfo(),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  mkdirSync(args.out, { recursive: true });
  const results: Results = { started: new Date().toISOString(), args, machine: machine(args.device), correctness: [], placement: [], inference: [], training: [], skipped: [], errors: [] };
  const b = new Bench(args, results);
  await b.phase('PyTorch info', async () => {
    const t = torchWorker();
    try {
      results.machine.torch = await t.send({ cmd: 'info' });
    } finally {
      await t.close();
    }
  });
  await b.phase('correctness', () => correctness(b));
  await b.phase('placement', () => placements(b));
  await b.phase('inference', () => inference(b));
  for (const [file, batch] of rows(args.tiny).training) {
    if (!b.inTime(`training ${file}`)) break;
    await b.phase(`training ${file}`, () => trainingRow(b, file, batch));
  }
  process.stderr.write(`bench-gpu: done in ${b.elapsed().toFixed(0)} s; ${path.join(args.out, 'gpu-bench.md')}\n`);
  if (results.errors.length) process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------
// The files

function writeResults(out: string, r: Results): void {
  writeFileSync(path.join(out, 'gpu-bench.json'), JSON.stringify(r, null, 1) + '\n');
  writeFileSync(path.join(out, 'gpu-bench.md'), markdown(r));
}

type Summary = ReturnType<typeof summarise>;
const imgs = (s: Summary) => `${fmt(s.imagesPerS.median)} (${range(s.imagesPerS)})`;
const lat = (s: Summary) => `${fmt(s.latencyMs.median, 2)} (${range(s.latencyMs, 2)})`;
const ratio = (s: { median: number; min: number; max: number }) => `**${fmtRatio(s.median)}** (${fmtRatio(s.min)} – ${fmtRatio(s.max)})`;
const gib = (bytes: unknown) => (typeof bytes === 'number' ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : '—');
const sci = (x: unknown) => (typeof x === 'number' ? x.toExponential(1) : '—');
const met = (ok: boolean) => (ok ? 'met' : '**not met**');

export function markdown(r: Results): string {
  const m = r.machine as Record<string, unknown> & { torch?: Record<string, unknown> };
  const t = m.torch ?? {};
  const lines = [
    `## GPU benchmark (${r.started.slice(0, 10)}, ${r.args.device}${r.args.tiny ? ', tiny models' : ''}${r.args.quick ? ', quick' : ''})`,
    '',
    `GPU: ${m.gpu ?? 'none'}. Node ${String(m.node)}, onnxruntime-node ${String(m.onnxruntime)}; PyTorch ${String(t.torch ?? '?')} (CUDA ${String(t.cuda ?? '—')}, cuDNN ${String(t.cudnn ?? '—')}), eager. ` +
      `float32 on both sides; TF32 ${String(m.tf32)}; PyTorch cudnn.benchmark on, onnxruntime's default cuDNN algorithm search. ${r.seconds?.toFixed(0) ?? '?'} s in all.` +
      (m.pack ? ` Packed ${String((m.pack as Record<string, unknown>).created)} from commit ${String((m.pack as Record<string, unknown>).commit)}.` : ''),
    '',
    `### ${r.args.device === 'cuda' ? 'CUDA' : 'CPU (a check of the harness)'} against CPU (cnnc, same weights and input)`,
    '',
    '| model | max abs diff of the logits | max abs logit |',
    '|---|---:|---:|',
    ...r.correctness.map((c) => `| ${String(c.model)} | ${sci(c.diff)} | ${sci(c.scale)} |`),
  ];
  const tc = r.trainCheck as undefined | { model: string; batch: number; step: Record<string, number | string>; block: Record<string, number | string> };
  if (tc) {
    lines.push('', `One training step of ${tc.model} (batch ${tc.batch}, SGD momentum) on ${r.args.device} against the CPU: loss ${String(tc.step.lossDevice)} vs ${String(tc.step.lossCpu)}, ` +
      `state max abs diff ${sci(tc.step.diff)} (${String(tc.step.worst)}; largest value ${sci(tc.step.scale)}). A block of 2 steps (the Loop graph) against 2 single steps on ${r.args.device}: max abs diff ${sci(tc.block.diff)} (${String(tc.block.worst)}).`);
  }
  if (r.placement.length) {
    lines.push('', '### Where onnxruntime placed the nodes', '', '| model | graph | nodes per provider | ops without a CUDA kernel |', '|---|---|---|---|');
    for (const p of r.placement) lines.push(`| ${p.model} | ${p.graph} | ${Object.entries(p.providers).map(([k, v]) => `${k} ${v}`).join(', ') || '—'} | ${p.missingKernels.join(', ') || 'none'} |`);
  }
  lines.push('', '### Inference (images/s: median over rounds (range); latency ms: median (range) over all iterations)', '',
    '| model | batch | cnnc images/s | cnnc latency | PyTorch images/s | PyTorch latency | cnnc/PyTorch per round | PyTorch, host input and output | target (batch 64: ≥ 1.0x) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const row of r.inference as (Record<string, unknown> & { cnnc: Summary; torch: Summary; torchHostInput: Summary; ratio: Summary['imagesPerS'] })[]) {
    const target = row.batch === 64 ? met(row.ratio.median >= 1) : '—';
    lines.push(`| ${String(row.model)} | ${String(row.batch)} | ${imgs(row.cnnc)} | ${lat(row.cnnc)} | ${imgs(row.torch)} | ${lat(row.torch)} | ${ratio(row.ratio)} | ${imgs(row.torchHostInput)} | ${target} |`);
  }
  lines.push('', '### Training (SGD momentum; images/s: median over rounds (range))', '',
    `Steps per call: what \`cnnc train\` chooses (auto), at most ${BENCH_MAX_STEPS} here (the JSON has auto's choice).`, '',
    '| model | batch | steps per call | cnnc images/s (blocks) | cnnc images/s (single steps) | PyTorch images/s | cnnc/PyTorch per round | peak GPU memory cnnc (nvidia-smi) | PyTorch (nvidia-smi; allocated / reserved) | target (ResNet50: ≥ 0.85x) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const row of r.training as (Record<string, unknown> & { cnnc: Summary; cnncSingleSteps: Summary; torch: Summary; ratio: Summary['imagesPerS']; memory: Record<string, unknown> })[]) {
    const target = row.model === 'ResNet50' ? met(row.ratio.median >= 0.85) : '—';
    lines.push(`| ${String(row.model)} | ${String(row.batch)} | ${String(row.stepsPerCall)} | ${imgs(row.cnnc)} | ${imgs(row.cnncSingleSteps)} | ${imgs(row.torch)} | ${ratio(row.ratio)} | ` +
      `${gib(row.memory.cnnc)} | ${gib(row.memory.torch)}; ${gib(row.memory.torchAllocated)} / ${gib(row.memory.torchReserved)} | ${target} |`);
  }
  if (r.skipped.length) lines.push('', `Skipped: ${r.skipped.join('; ')}.`);
  if (r.errors.length) lines.push('', 'Errors:', ...r.errors.map((e) => `- ${e}`));
  return lines.join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) await (process.argv[2] === '--worker' ? worker() : main());
