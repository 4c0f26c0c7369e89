/**
 * The training loop around a TrainStepRunner: seeded batches with prefetch, per-step learning rate,
 * evaluation each epoch, a JSONL log, progress output, atomic checkpoints that resume exactly, a clean
 * stop on Ctrl-C, and loss/accuracy curves as SVG.
 *
 * Exact resume: the data order of an epoch depends only on (seed, epoch), augmentation only on
 * (seed, epoch, batch), the learning rate only on the step, and the runner's state (parameters,
 * buffers, optimizer state) is saved whole. So a checkpoint holding (epoch, next batch, step) and the
 * state continues the run as if it had never stopped.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { classesOf, denseOutput } from '../compiler/dense.ts';
import type { CheckedModel } from '../compiler/model.ts';
import type { TrainConfig } from '../compiler/train-config.ts';
import { UserError } from '../errors.ts';
import { batchBytes, chooseStepsPerCall, epochBlocks, outOfMemoryError, type BlockChoice, type EpochBlock, type StepsPerCall } from './blocks.ts';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { freeGpuBytes } from './cuda/probe.ts';
import { appendText, ensureWritableDir, removeStaleTemps, tempName, writeFileAtomic } from './files.ts';
import { batchCount, batches, checkAgainstModel, prefetch, sliceDataset, type Dataset } from './dataset.ts';
import { configLearningRate, warmupWarning, type StepCounts } from './schedule.ts';
import type { StepResult, TrainState, TrainStepRunner } from './train-step.ts';

/** Where progress goes: a TTY gets a redrawn one-line bar, anything else plain lines. */
export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface TrainOptions {
  model: CheckedModel;
  config: TrainConfig;
  runner: TrainStepRunner;
  trainSet: Dataset;
  testSet?: Dataset;
  /**
   * What testSet is: the data set's test split (default) or a validation part held out of the
   * training images. Headers, the log's fields (test_* or val_*) and the curves say which.
   */
  evalName?: 'test' | 'val';
  outDir: string;
  /** The device asked for (cpu, cuda, auto); the runner's `device` says what it resolved to. */
  device?: string;
  /** Continue from outDir/last.ckpt. Without it, an outDir that already holds a run is an error. */
  resume?: boolean;
  /** Progress and summaries; process.stderr when omitted. */
  log?: ProgressOutput;
  /** Drop each epoch's last partial batch; defaults to runner.fixedBatch. */
  dropLast?: boolean;
  /** A JSONL step line every this many steps (default 50); 0 for epoch lines only. */
  logEvery?: number;
  /** Hash of the source (sourceHash: the file and those it imports), stored in checkpoints; a resume from a different source gets a notice. */
  sourceHash?: string;
  /** Stop after the current step (or block of steps) when aborted (what Ctrl-C does through handleSigint). */
  stop?: AbortSignal;
  /** Install a SIGINT handler: the first Ctrl-C stops after the current step or block, the second exits at once. */
  handleSigint?: boolean;
  /** Batches (or blocks) prepared ahead of the running step (default 2). */
  prefetchDepth?: number;
  /**
   * Steps per runner call (blocks.ts): a number, or `auto` to choose from memory. Default: auto on
   * CUDA, single steps on the CPU. A run ends bit-identical either way.
   */
  stepsPerCall?: StepsPerCall;
  /** The GPU's free memory in bytes, for `auto` on CUDA; nvidia-smi's answer when omitted. */
  freeDeviceBytes?: () => number | undefined;
  /** Files a new run writes into outDir with its log, by name (the --init report). */
  runFiles?: Record<string, string>;
}

/** One line of train.jsonl. Epoch and step numbers count completed work (the first epoch is 1). */
export interface LogRecord {
  type: 'step' | 'epoch';
  epoch: number;
  step: number;
  loss: number;
  /** Accuracy: of the samples, or a dense model's pixels (pixel accuracy). */
  acc: number;
  /** Dense models: the mean IoU over the classes present (predicted or labelled) in the epoch's pixels. */
  miou?: number;
  test_loss?: number;
  test_acc?: number;
  test_miou?: number;
  /** Instead of test_*, when the held-out set is a validation part of the training images. */
  val_loss?: number;
  val_acc?: number;
  val_miou?: number;
  lr: number;
  images_per_s: number;
  /** Seconds of training so far, over all resumed sessions. */
  elapsed: number;
}

export interface TrainResult {
  /** Completed epochs. */
  epochs: number;
  /** Completed steps. */
  steps: number;
  interrupted: boolean;
  history: LogRecord[];
  best?: Best;
  lastCheckpoint?: string;
  bestCheckpoint?: string;
}

export const TRAIN_META_FORMAT = 'cnnc-train/1';

/** The best epoch: by held-out (else training) accuracy, or a dense model's mean IoU (`miou`). */
export interface Best {
  epoch: number;
  acc: number;
  miou?: number;
}

/** The metadata stored in training checkpoints. */
export interface TrainMeta {
  format: string;
  /** Completed epochs; the next epoch to run (0-based) when batch is 0. */
  epoch: number;
  /** Next batch of `epoch` to run: 0 after a finished epoch, more after a stop mid-epoch. */
  batch: number;
  /** Completed steps over the whole run; the next step's number. */
  step: number;
  /** Running sums of the unfinished epoch, so its epoch line comes out as if never stopped. */
  epochProgress: EpochSums;
  elapsed: number;
  device?: string;
  config: TrainConfig;
  data: DataOrder;
  history: LogRecord[];
  best: Best | null;
  /** The class names, label by label (folder names, classes= or IDX names), for predict. Absent in older checkpoints. */
  classes?: string[];
  /** The smoothed per-step training loss for curves.svg (LossTrace.points). Absent in older checkpoints. */
  lossTrace?: [number, number][];
  /** The moving average behind lossTrace ([average, weight]), so a resumed run continues it exactly. */
  lossTraceState?: [number, number];
}

/**
 * The per-step training loss, smoothed (an exponential moving average, bias-corrected like Adam's
 * moments so the first points are not pulled toward 0), sampled about 100 times an epoch: a
 * one-epoch run gets a curve, and a long run's file stays small. x is in epochs (step / steps per epoch).
 */
export class LossTrace {
  private avg = 0;
  private weight = 0;
  private readonly every: number;

  constructor(private readonly stepsPerEpoch: number, readonly points: [number, number][] = [], state?: [number, number], private readonly beta = 0.9) {
    this.every = Math.max(1, Math.floor(stepsPerEpoch / 100));
    // A resumed run continues the average where the checkpoint left it: the same curve as a run
    // never interrupted (an older checkpoint without the state restarts from its last point).
    const last = points.at(-1);
    if (state) [this.avg, this.weight] = state;
    else if (last) [this.avg, this.weight] = [last[1], 1];
  }

  /** The moving average and its weight, for the checkpoint. */
  get state(): [number, number] {
    return [this.avg, this.weight];
  }

  /** Adds the loss of the step numbered `step` (1-based, over the run). */
  add(step: number, loss: number): void {
    this.avg = this.beta * this.avg + (1 - this.beta) * loss;
    this.weight = this.beta * this.weight + (1 - this.beta);
    if (step % this.every === 0) this.points.push([step / this.stepsPerEpoch, this.avg / this.weight]);
  }
}

/** What determines the order of samples; a resume must match it to be exact. */
export interface DataOrder {
  order: string;
  seed: number;
  batchSize: number;
  dropLast: boolean;
  trainSize: number;
  trainSource: string;
  testSize: number;
  testSource?: string;
  augment: TrainConfig['augment'];
}

interface EpochSums extends MetricSums {
  /** Steps run in this epoch so far and the seconds they took (data preparation included). */
  steps: number;
  seconds: number;
}

/** What an epoch's or an evaluation's results add up to. */
interface MetricSums {
  lossSum: number;
  correct: number;
  /** Samples. */
  seen: number;
  /** Labels that count (samples, or a dense model's pixels, less those with the ignore label); absent in older checkpoints: seen. */
  counted?: number;
  /** Dense models: per class, pixels predicted and labelled it, and pixels predicted or labelled it. */
  intersection?: number[];
  union?: number[];
}

/** Adds one step's (or evaluation batch's) result over `samples` samples with `counted` counted labels. */
function addResult(sums: MetricSums, r: StepResult, samples: number, counted: number): void {
  sums.lossSum += r.loss * samples;
  sums.correct += r.correct;
  sums.seen += samples;
  sums.counted = (sums.counted ?? sums.seen - samples) + counted;
  const add = (into: number[] | undefined, v: number[]) => (into ? into.map((x, i) => x + v[i]) : [...v]);
  if (r.intersection && r.union) {
    sums.intersection = add(sums.intersection, r.intersection);
    sums.union = add(sums.union, r.union);
  }
}

const accuracy = (s: MetricSums) => s.correct / (s.counted ?? s.seen);

/** The mean over classes with a non-empty union (predicted or labelled somewhere) of intersection / union. */
export function meanIou(s: Pick<MetricSums, 'intersection' | 'union'>): number | undefined {
  if (!s.intersection || !s.union) return undefined;
  const present = s.union.flatMap((u, c) => (u > 0 ? [s.intersection![c] / u] : []));
  return present.length ? present.reduce((a, b) => a + b, 0) / present.length : undefined;
}

/** The labels of y[from, to) that count: all, or those other than the ignore label. */
function countLabels(y: ArrayLike<number | bigint>, ignore: number | undefined, from: number, to: number): number {
  if (ignore === undefined) return to - from;
  let n = 0;
  for (let i = from; i < to; i++) if (Number(y[i]) !== ignore) n++;
  return n;
}


// ---------------------------------------------------------------------------------------------
// Data checks

/**
 * Number of classes the model predicts: its output size (a dense model's channels), or 2 for a
 * single logit under bce.
 */
export function modelClasses(model: CheckedModel, config: TrainConfig): number {
  if (!model.output) throw new UserError(`model ${model.name} has errors; its output shape is unknown`);
  const size = denseOutput(model.output)?.channels ?? model.output.reduce((a, b) => a * b, 1);
  return classesOf(size, config.loss.kind);
}

/**
 * Checks that a data set fits the model (image shape vs input, labels vs classes) before any step
 * runs; the error names the data set's source. A vector input takes images of the same size, flattened.
 */
export function checkData(model: CheckedModel, config: TrainConfig, ds: Dataset): void {
  if (!model.input) throw new UserError(`model ${model.name} has errors; its input shape is unknown`);
  const classes = modelClasses(model, config);
  const per = ds.shape.reduce((a, b) => a * b, 1);
  const flat = model.input.length === 1 && model.input[0] === per;
  const dense = denseOutput(model.output);
  checkAgainstModel(ds, flat ? ds.shape : model.input, classes, dense && { ...dense, ignore: config.loss.ignore });
}

/** Kept here for the callers that import it from the trainer. */
export { sliceDataset };

// ---------------------------------------------------------------------------------------------
// Files

export const LAST_CHECKPOINT = 'last.ckpt';
export const BEST_CHECKPOINT = 'best.ckpt';
export const LOG_FILE = 'train.jsonl';
export const CURVES_FILE = 'curves.svg';

/** The files of a run folder; a killed write leaves NAME.tmp-PID beside them (removed on start). */
export const RUN_FILES = [LAST_CHECKPOINT, BEST_CHECKPOINT, LOG_FILE, CURVES_FILE];

/** Keeps the log lines a checkpoint covers, dropping any written after it (by a run that then crashed). */
function trimLog(path: string, meta: TrainMeta): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8').split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      const r = JSON.parse(line) as LogRecord;
      return r.type === 'epoch' ? r.epoch <= meta.epoch : r.step <= meta.step;
    } catch {
      return false;
    }
  });
  writeFileAtomic(path, kept.map((l) => l + '\n').join(''));
}

/** Removes what killed writes left behind; says so, since it means the last run did not end cleanly. */
function removeTemps(outDir: string, out: ProgressOutput): void {
  const removed = removeStaleTemps(outDir, RUN_FILES);
  if (removed.length) out.write(`notice: removed ${removed.join(', ')} in ${outDir}, left by a write that was interrupted\n`);
}

/** The epoch a checkpoint file records, or undefined when it is missing or unreadable. */
async function checkpointEpoch(file: string): Promise<number | undefined> {
  if (!existsSync(file)) return undefined;
  try {
    const epoch = ((await loadCheckpoint(file)).meta as Partial<TrainMeta>).epoch;
    return typeof epoch === 'number' ? epoch : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An epoch that sets a new best writes last.ckpt, then best.ckpt (the same state and record). A kill
 * between the two leaves best.ckpt a best behind while last.ckpt's record names the new best, and
 * last.ckpt then holds exactly that state: best.ckpt is restored from it, byte for byte.
 */
async function repairBest(lastPath: string, bestPath: string, meta: TrainMeta, out: ProgressOutput): Promise<void> {
  if (!meta.best) return;
  const held = await checkpointEpoch(bestPath);
  if (held === meta.best.epoch) return;
  const holds = held === undefined ? 'no valid checkpoint' : `epoch ${held}`;
  if (meta.best.epoch === meta.epoch && meta.batch === 0) {
    writeFileAtomic(bestPath, readFileSync(lastPath));
    out.write(`notice: ${bestPath} held ${holds}, not the best epoch ${meta.best.epoch}; restored it from ${lastPath}\n`);
  } else {
    out.write(`warning: ${bestPath} holds ${holds}, but the run's best is epoch ${meta.best.epoch}, which no checkpoint holds any more\n`);
  }
}

// ---------------------------------------------------------------------------------------------
// Progress

const fmtTime = (s: number): string => {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
};
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** "1 epoch", "2 epochs". */
export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Fits a line of parts to width: parts are dropped lowest priority first (a lower number goes
 * first), so a narrow terminal loses the bar and the accuracy before the ETA.
 */
export function fitParts(parts: { text: string; priority: number }[], width: number, sep = '  '): string {
  let kept = [...parts];
  const join = () => kept.map((p) => p.text).join(sep);
  while (join().length > width && kept.length > 1) {
    const lowest = kept.reduce((a, b) => (b.priority < a.priority ? b : a));
    kept = kept.filter((p) => p !== lowest);
  }
  return join().slice(0, width);
}

class Progress {
  private lastDraw = 0;
  private nextLine = 0;
  private drawn = false;
  /** Seconds the last evaluation took, for the run's ETA; undefined before the first one. */
  evalSeconds?: number;

  constructor(private readonly out: ProgressOutput, private readonly epochs: number, private readonly stepsPerEpoch: number,
    private readonly evalShare: number) {}

  line(text: string): void {
    this.clear();
    this.out.write(text + '\n');
  }

  /**
   * The run's remaining seconds: this epoch's, then each later epoch at this epoch's speed, each
   * with an evaluation: as long as the last one took, or before any, a guess of a third of the
   * training time per image (forward only) times evalShare (held-out images per training image).
   */
  private runEta(epoch: number, epochEta: number, secondsPerStep: number): number {
    const epochTrain = secondsPerStep * this.stepsPerEpoch;
    const evaluation = this.evalSeconds ?? (epochTrain / 3) * this.evalShare;
    return epochEta + evaluation + (this.epochs - epoch - 1) * (epochTrain + evaluation);
  }

  /**
   * Called after each step; batch is the 1-based batch just finished within the epoch. `redraw`
   * draws even within 100 ms of the last drawing (the last step of a block of steps).
   */
  step(epoch: number, batch: number, sums: EpochSums, redraw = false): void {
    const frac = batch / this.stepsPerEpoch;
    const rate = sums.seconds > 0 ? sums.seen / sums.seconds : 0;
    const perStep = sums.steps > 0 ? sums.seconds / sums.steps : NaN;
    const eta = (this.stepsPerEpoch - batch) * perStep;
    const miou = meanIou(sums);
    const parts = [
      { text: `epoch ${epoch + 1}/${this.epochs} ${(100 * frac).toFixed(0).padStart(3)}%`, priority: 5 },
      { text: `loss ${(sums.lossSum / sums.seen).toFixed(4)}`, priority: 3 },
      { text: `acc ${pct(accuracy(sums))}`, priority: 1 },
      ...(miou === undefined ? [] : [{ text: `mIoU ${miou.toFixed(4)}`, priority: 1 }]),
      { text: `${rate.toFixed(0)} img/s`, priority: 2 },
      { text: `ETA ${fmtTime(eta)}, run ${fmtTime(this.runEta(epoch, eta, perStep))}`, priority: 4 },
    ];
    if (this.out.isTTY) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && batch < this.stepsPerEpoch && !redraw) return;
      this.lastDraw = now;
      const width = Math.max(20, (this.out.columns ?? process.stdout.columns ?? 100) - 1);
      // The bar goes first when the line is too wide for the terminal, then parts by priority.
      const full = `${this.bar(frac, 20)} ${parts.map((p) => p.text).join('  ')}`;
      this.out.write(`\r${full.length <= width ? full : fitParts(parts, width)}\x1b[K`);
      this.drawn = true;
    } else {
      const every = Math.max(1, Math.ceil(this.stepsPerEpoch / 10));
      if (batch >= this.nextLine || batch === this.stepsPerEpoch) {
        this.out.write(parts.map((p) => p.text).join('  ') + '\n');
        this.nextLine = (Math.floor(batch / every) + 1) * every;
      }
    }
  }

  /** Resets the plain-line cadence for a new epoch starting at `batch`. */
  startEpoch(batch: number): void {
    const every = Math.max(1, Math.ceil(this.stepsPerEpoch / 10));
    this.nextLine = (Math.floor(batch / every) + 1) * every;
  }

  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  private bar(frac: number, width: number): string {
    const full = Math.round(Math.min(1, Math.max(0, frac)) * width);
    return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
  }
}

// ---------------------------------------------------------------------------------------------
// The loop

function emptySums(): EpochSums {
  return { lossSum: 0, correct: 0, seen: 0, counted: 0, steps: 0, seconds: 0 };
}

function dataOrder(config: TrainConfig, dropLast: boolean, trainSet: Dataset, testSet?: Dataset): DataOrder {
  return {
    order: 'epochOrder(trainSize, seed, epoch) from src/runtime/dataset.ts; batches of batchSize in that order',
    seed: config.seed, batchSize: config.batch, dropLast, trainSize: trainSet.size, trainSource: trainSet.source,
    testSize: testSet?.size ?? 0, testSource: testSet?.source, augment: config.augment,
  };
}

/** Differences between the checkpoint's data order and this run's that would change which samples come next. */
function orderMismatch(saved: DataOrder, now: DataOrder): string[] {
  const keys: (keyof DataOrder)[] = ['seed', 'batchSize', 'dropLast', 'trainSize'];
  return keys.filter((k) => saved[k] !== now[k]).map((k) => `${k} ${String(saved[k])} in the checkpoint, ${String(now[k])} now`);
}

/** Settings that differ between the checkpoint's config and this run's, as `optimizer.lr 0.001 -> 0.01`. */
function configChanges(saved: TrainConfig, now: TrainConfig): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${path} ${JSON.stringify(a)} -> ${JSON.stringify(b)}`);
  };
  walk(saved, now, '');
  return out;
}

async function evaluateSet(runner: TrainStepRunner, ds: Dataset, batchSize: number, opts: { mean: number[]; std: number[]; labelType: 'int32' | 'int64'; depth: number; ignore?: number }): Promise<{ loss: number; acc: number; miou?: number }> {
  const sums: MetricSums = { lossSum: 0, correct: 0, seen: 0, counted: 0 };
  const source = batches(ds, { batchSize, shuffle: false, mean: opts.mean, std: opts.std, labelType: opts.labelType });
  for await (const b of prefetch(source, opts.depth)) {
    const r = await runner.evaluate({ x: b.x, y: b.y, count: b.count });
    checkFinite(r, 'evaluation');
    addResult(sums, r, b.count, countLabels(b.y, opts.ignore, 0, b.y.length));
  }
  return { loss: sums.lossSum / sums.seen, acc: accuracy(sums), miou: meanIou(sums) };
}

function checkFinite(r: StepResult, where: string, step?: number): void {
  if (!Number.isFinite(r.loss)) {
    throw new UserError(`the loss became ${r.loss} in ${where}${step === undefined ? '' : ` at step ${step + 1}`}; ` +
      'training diverged: try a lower learning rate (--lr), a warm-up (schedule: ... warmup=1) or check the data');
  }
}

/** `{ [name]: v }`, or nothing for a model without IoU counts. */
const miouField = (name: string, v: number | undefined): Record<string, number> => (v === undefined ? {} : { [name]: v });

/** What the best epoch is chosen by: a dense model's mean IoU, else accuracy. */
const bestScore = (b: Best) => b.miou ?? b.acc;

/** Steps per runner call for this run (blocks.ts), from the option, the device and the batch's size. */
function stepsPerCall(opts: TrainOptions, trainSet: Dataset, labelType: 'int32' | 'int64'): BlockChoice {
  const device = opts.runner.device ?? 'cpu';
  const perSample = trainSet.shape.reduce((a, b) => a * b, 1);
  const labels = trainSet.masks ? trainSet.masks.shape[0] * trainSet.masks.shape[1] : 1;
  return chooseStepsPerCall({
    requested: opts.stepsPerCall, device, canBlock: typeof opts.runner.runBlock === 'function',
    batchBytes: batchBytes(opts.config.batch, perSample, labels * (labelType === 'int32' ? 4 : 8)),
    freeDeviceBytes: device === 'cuda' ? (opts.freeDeviceBytes ?? freeGpuBytes)() : undefined,
  });
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { model, config, runner, trainSet, testSet, outDir } = opts;
  const evalName = opts.evalName ?? 'test';
  const out = opts.log ?? process.stderr;
  const dropLast = opts.dropLast ?? runner.fixedBatch ?? false;
  const labelType = runner.labelType ?? 'int64';
  const logEvery = opts.logEvery ?? 50;
  const depth = opts.prefetchDepth ?? 2;
  const batchSize = config.batch;

  // Bad data stops here, before any step.
  checkData(model, config, trainSet);
  if (testSet) checkData(model, config, testSet);
  const stepsPerEpoch = batchCount(trainSet.size, batchSize, dropLast);
  if (stepsPerEpoch === 0) {
    throw new UserError(`the training set has ${trainSet.size} samples, fewer than one batch of ${batchSize} ` +
      '(the last partial batch is dropped because the training graph has a fixed batch size); use a smaller --batch', trainSet.source);
  }
  const counts: StepCounts = { stepsPerEpoch, totalSteps: stepsPerEpoch * config.epochs };
  const order = dataOrder(config, dropLast, trainSet, testSet);

  ensureWritableDir(outDir);
  const lastPath = join(outDir, LAST_CHECKPOINT);
  const bestPath = join(outDir, BEST_CHECKPOINT);
  const logPath = join(outDir, LOG_FILE);
  const curvesPath = join(outDir, CURVES_FILE);

  let epoch = 0, batch = 0, step = 0, elapsedBase = 0;
  let sums = emptySums();
  let history: LogRecord[] = [];
  let best: Best | null = null;
  let trace = new LossTrace(stepsPerEpoch);

  removeTemps(outDir, out);
  if (opts.resume) {
    if (!existsSync(lastPath)) throw new UserError(`--resume: no ${LAST_CHECKPOINT} to resume from`, outDir);
    const ckpt = await loadCheckpoint(lastPath);
    const meta = ckpt.meta as unknown as TrainMeta | undefined;
    if (!meta || meta.format !== TRAIN_META_FORMAT) {
      throw new UserError(`is not a training checkpoint written by cnnc train (format ${JSON.stringify(meta?.format)})`, lastPath);
    }
    if (ckpt.model !== model.name) {
      throw new UserError(`holds model ${JSON.stringify(ckpt.model)}, not ${JSON.stringify(model.name)}`, lastPath);
    }
    const mismatch = orderMismatch(meta.data, order);
    if (mismatch.length) {
      throw new UserError(`cannot resume exactly, the data order would differ: ${mismatch.join('; ')}`, lastPath);
    }
    if (opts.sourceHash && ckpt.sourceHash && opts.sourceHash !== ckpt.sourceHash) {
      out.write(`notice: the source (the .cnn file or a file it imports) changed since ${lastPath} was written\n`);
    }
    const changes = configChanges(meta.config, config);
    if (changes.length) out.write(`notice: resuming with changed settings: ${changes.join(', ')}\n`);
    runner.load(ckpt.tensors as TrainState);
    ({ epoch, batch, step, elapsed: elapsedBase, history, best } = meta);
    trace = new LossTrace(stepsPerEpoch, (meta.lossTrace ?? []).filter(([x]) => x <= step / stepsPerEpoch), meta.lossTraceState);
    sums = { ...meta.epochProgress };
    trimLog(logPath, meta);
    await repairBest(lastPath, bestPath, meta, out);
    out.write(`resuming ${model.name} at epoch ${epoch + 1}, step ${step + 1} from ${lastPath}\n`);
  } else {
    if (existsSync(lastPath)) {
      throw new UserError(`already holds a training run (${LAST_CHECKPOINT}); pass --resume to continue it, or choose another --out`, outDir);
    }
    writeFileAtomic(logPath, '');
    for (const [name, text] of Object.entries(opts.runFiles ?? {})) writeFileAtomic(join(outDir, name), text);
  }
  if (runner.notice) out.write(`notice: ${runner.notice}\n`);
  const blocks = stepsPerCall(opts, trainSet, labelType);
  const blocked = blocks.steps > 1;
  const checkpointWritten = () => (existsSync(lastPath) ? lastPath : undefined);

  const sessionStart = performance.now();
  const elapsed = () => elapsedBase + (performance.now() - sessionStart) / 1000;
  const progress = new Progress(out, config.epochs, stepsPerEpoch, (testSet?.size ?? 0) / Math.max(1, trainSet.size));
  const writeCurves = () => writeFileAtomic(curvesPath, curvesSvg(history, model.name, evalName, trace.points));
  const logLine = (r: LogRecord) => appendText(logPath, JSON.stringify(r) + '\n');
  const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

  const meta = (): TrainMeta => ({
    format: TRAIN_META_FORMAT, epoch, batch, step, epochProgress: { ...sums }, elapsed: elapsed(),
    device: runner.device ?? opts.device, config, data: order, history, best, classes: trainSet.classes,
    lossTrace: trace.points, lossTraceState: trace.state,
  });
  const save = async (paths: string[]) => {
    const tensors = runner.state();
    const m = meta() as unknown as Record<string, unknown>;
    for (const path of paths) await saveCheckpoint(path, { model: model.name, sourceHash: opts.sourceHash, meta: m, tensors });
  };

  // A device out of memory becomes one line (blocks.ts); the last checkpoint is left as it was.
  const memoryError = (e: unknown, where: string, steps: number) =>
    outOfMemoryError(e, { device: runner.device ?? 'cpu', where, batch: batchSize, stepsPerCall: steps, checkpoint: checkpointWritten() }) ?? e;
  const trainCall = async (g: EpochBlock, lrs: number[]): Promise<StepResult[]> => {
    try {
      return blocked ? await runner.runBlock!({ x: g.x, y: g.y, count: g.count, steps: g.steps }, lrs, step)
        : [await runner.run({ x: g.x, y: g.y, count: g.count }, lrs[0], step)];
    } catch (e) {
      throw memoryError(e, g.steps > 1 ? `training steps ${step + 1}-${step + g.steps}` : `training step ${step + 1}`, g.steps);
    }
  };
  const evaluateChecked = (ds: Dataset) =>
    evaluateSet(runner, ds, batchSize, { mean: model.preprocess.mean, std: model.preprocess.std, labelType, depth, ignore: config.loss.ignore })
      .catch((e: unknown) => { throw memoryError(e, 'evaluation', 1); });

  // Ctrl-C: finish the step (or block), save, return; a second Ctrl-C exits at once.
  let stopRequested = false;
  const onStop = () => { stopRequested = true; };
  opts.stop?.addEventListener('abort', onStop);
  if (opts.stop?.aborted) stopRequested = true;
  let sigints = 0;
  const onSigint = () => {
    sigints++;
    if (sigints > 1) {
      progress.clear();
      // A write in progress is abandoned: its temporary file goes, the previous checkpoint stays.
      for (const f of [lastPath, bestPath, curvesPath, logPath]) rmSync(tempName(f), { force: true });
      out.write('aborted; the last checkpoint written is kept\n');
      process.exit(130);
    }
    stopRequested = true;
    progress.line(`stopping after this ${blocked ? 'block of steps' : 'step'} and saving a checkpoint (Ctrl-C again to abort)`);
  };
  if (opts.handleSigint) process.on('SIGINT', onSigint);

  let interrupted = false;
  try {
    if (epoch >= config.epochs) {
      out.write(`nothing to do: the run in ${outDir} has finished its ${plural(epoch, 'epoch')} (raise --epochs to train further)\n`);
    } else out.write(`training ${model.name}: ${plural(config.epochs, 'epoch')} of ${plural(stepsPerEpoch, 'step')} (batch ${batchSize}), ` +
      `${trainSet.size} training and ${testSet?.size ?? 0} ${evalName} samples, device ${runner.device ?? opts.device ?? 'cpu'}` +
      `${blocks.reason ? `; ${blocks.reason}` : ''}\n`);
    const warmup = epoch < config.epochs ? warmupWarning(config.schedule, config.epochs) : undefined;
    if (warmup) out.write(`warning: ${warmup}\n`);
    while (epoch < config.epochs) {
      const source = batches(trainSet, {
        batchSize, shuffle: true, seed: config.seed, epoch, dropLast, startBatch: batch, labelType,
        augment: { flip: config.augment.flip, cropPad: config.augment.crop },
        mean: model.preprocess.mean, std: model.preprocess.std, maskFill: config.loss.ignore,
      });
      progress.startEpoch(batch);
      let lr = configLearningRate(config, step, counts);
      let t0 = performance.now();
      for await (const g of prefetch(epochBlocks(source, blocks.steps), blocked ? Math.min(depth, 2) : depth)) {
        const lrs = Array.from({ length: g.steps }, (_, i) => configLearningRate(config, step + i, counts));
        const results = await trainCall(g, lrs);
        const now = performance.now();
        // A block's time is shared out evenly over its steps.
        const seconds = (now - t0) / 1000 / g.steps;
        t0 = now;
        results.forEach((r, i) => {
          checkFinite(r, 'training', step);
          lr = lrs[i];
          step++;
          batch = g.first + i + 1;
          sums.seconds += seconds;
          const labels = g.y.length / g.steps;
          addResult(sums, r, g.perStep, countLabels(g.y, config.loss.ignore, i * labels, (i + 1) * labels));
          sums.steps++;
          trace.add(step, r.loss);
          progress.step(epoch, batch, sums, blocked && i === g.steps - 1);
          if (logEvery > 0 && step % logEvery === 0 && batch < stepsPerEpoch) { // the epoch line covers an epoch's last step
            logLine({
              type: 'step', epoch: epoch + 1, step, loss: sums.lossSum / sums.seen, acc: accuracy(sums), ...miouField('miou', meanIou(sums)), lr,
              images_per_s: round(sums.seen / Math.max(sums.seconds, 1e-9), 1), elapsed: round(elapsed(), 3),
            });
          }
        });
        if (stopRequested) break;
      }
      if (stopRequested && batch < stepsPerEpoch) {
        interrupted = true;
        break;
      }

      // Epoch end: evaluate, log, checkpoint.
      const evalStart = performance.now();
      const test = testSet ? await evaluateChecked(testSet) : undefined;
      progress.evalSeconds = (performance.now() - evalStart) / 1000;
      const record: LogRecord = {
        type: 'epoch', epoch: epoch + 1, step, loss: sums.lossSum / sums.seen, acc: accuracy(sums), ...miouField('miou', meanIou(sums)),
        ...(test && { [`${evalName}_loss`]: test.loss, [`${evalName}_acc`]: test.acc, ...miouField(`${evalName}_miou`, test.miou) }),
        lr, images_per_s: round(sums.seen / Math.max(sums.seconds, 1e-9), 1), elapsed: round(elapsed(), 3),
      };
      history = [...history, record];
      logLine(record);
      const miouText = (name: string, v?: number) => (v === undefined ? '' : `  ${name} ${v.toFixed(4)}`);
      progress.line(`epoch ${record.epoch}/${config.epochs}  loss ${record.loss.toFixed(4)}  acc ${pct(record.acc)}${miouText('mIoU', record.miou)}` +
        (test ? `  ${evalName} loss ${test.loss.toFixed(4)}  ${evalName} acc ${pct(test.acc)}${miouText(`${evalName} mIoU`, test.miou)}` : '') +
        `  lr ${lr.toPrecision(3)}  ${record.images_per_s.toFixed(0)} img/s  ${fmtTime(sums.seconds)}`);
      const scored: Best = test ? { epoch: epoch + 1, acc: test.acc, ...miouField('miou', test.miou) } : { epoch: epoch + 1, acc: record.acc, ...miouField('miou', record.miou) };
      const isBest = !best || bestScore(scored) > bestScore(best);
      if (isBest) best = scored;
      epoch++;
      batch = 0;
      sums = emptySums();
      // last before best: a kill between them is repaired from last.ckpt on --resume (repairBest).
      await save(isBest ? [lastPath, bestPath] : [lastPath]);
      writeCurves();
      if (stopRequested && epoch < config.epochs) {
        interrupted = true;
        break;
      }
    }
    if (interrupted) {
      if (batch > 0) await save([lastPath]);
      writeCurves(); // the curves so far, the unfinished epoch's steps included
      progress.line(`stopped at epoch ${epoch + 1}, step ${step}; checkpoint ${lastPath} (continue with --resume)`);
    } else if (history.length) writeCurves();
  } finally {
    progress.clear();
    if (opts.handleSigint) process.off('SIGINT', onSigint);
    opts.stop?.removeEventListener('abort', onStop);
  }
  return {
    epochs: epoch, steps: step, interrupted, history, best: best ?? undefined,
    lastCheckpoint: existsSync(lastPath) ? lastPath : undefined,
    bestCheckpoint: existsSync(bestPath) ? bestPath : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Curves: loss and accuracy per epoch, train and test, as a self-contained SVG

const xmlEscape = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** About `count` round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.round(v / step) * step);
  return ticks;
}

const fmtTick = (v: number) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(0) : String(+v.toPrecision(6)));

interface Series { label: string; color: string; dash?: string; points: [number, number][]; dots?: false; thin?: true }

function panel(x0: number, y0: number, w: number, h: number, title: string, series: Series[], yRange: [number, number], yFormat: (v: number) => string, epochs: number, legendAt: 'top' | 'bottom'): string {
  const m = { left: 56, right: 16, top: 30, bottom: 40 };
  const pw = w - m.left - m.right, ph = h - m.top - m.bottom;
  // x runs from 0 (the run's start) to the last epoch: per-step points lie between the epoch ends.
  const xHi = Math.max(epochs, 1);
  const sx = (e: number) => x0 + m.left + (e / xHi) * pw;
  const sy = (v: number) => y0 + m.top + ph - ((v - yRange[0]) / (yRange[1] - yRange[0])) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${x0 + m.left + pw / 2}" y="${y0 + 18}" text-anchor="middle" font-size="14" font-weight="bold">${xmlEscape(title)}</text>`);
  for (const v of niceTicks(yRange[0], yRange[1])) {
    const y = sy(v).toFixed(1);
    parts.push(`<line x1="${x0 + m.left}" y1="${y}" x2="${x0 + m.left + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x0 + m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${yFormat(v)}</text>`);
  }
  // Fractions of an epoch only label a one-epoch axis.
  const xTicks = niceTicks(0, xHi, Math.min(10, Math.max(xHi, 5))).filter((v) => v >= 0 && (xHi < 2 || Number.isInteger(v)));
  for (const v of xTicks) {
    const x = sx(v).toFixed(1);
    parts.push(`<line x1="${x}" y1="${y0 + m.top + ph}" x2="${x}" y2="${y0 + m.top + ph + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x}" y="${y0 + m.top + ph + 16}" text-anchor="middle" font-size="11">${v}</text>`);
  }
  parts.push(`<path d="M${x0 + m.left},${y0 + m.top}V${y0 + m.top + ph}H${x0 + m.left + pw}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${x0 + m.left + pw / 2}" y="${y0 + h - 6}" text-anchor="middle" font-size="12">epoch</text>`);
  for (const s of series) {
    if (!s.points.length) continue;
    const pts = s.points.map(([e, v]) => `${sx(e).toFixed(1)},${sy(v).toFixed(1)}`);
    parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="${s.thin ? 1.2 : 2}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}${s.thin ? ' stroke-opacity="0.6"' : ''}/>`);
    if (s.dots === false) continue;
    for (const p of pts) {
      const [cx, cy] = p.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${s.color}"/>`);
    }
  }
  // Legend, right inside the plot: at the top for falling curves (loss), the bottom for rising ones.
  const shown = series.filter((s) => s.points.length);
  shown.forEach((s, i) => {
    const lx = x0 + m.left + pw - 132;
    const ly = legendAt === 'top' ? y0 + m.top + 12 + i * 16 : y0 + m.top + ph - 12 - (shown.length - 1 - i) * 16;
    parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    parts.push(`<text x="${lx + 28}" y="${ly}" dominant-baseline="middle" font-size="11">${xmlEscape(s.label)}</text>`);
  });
  return parts.join('\n');
}

/**
 * Train and held-out (test or val) loss (left) and accuracy (right) per epoch, and the smoothed
 * per-step training loss (trace, x in epochs) under the per-epoch loss.
 */
export function curvesSvg(history: readonly LogRecord[], title: string, evalName: 'test' | 'val' = 'test', trace: readonly [number, number][] = []): string {
  const epochs = history.filter((r) => r.type === 'epoch');
  const n = epochs.length ? Math.max(...epochs.map((r) => r.epoch)) : 1;
  const xHi = Math.max(n, Math.ceil(Math.max(0, ...trace.map((p) => p[0])) - 1e-9));
  const steps = trace.filter((p) => p.every(Number.isFinite));
  const pick = (f: (r: LogRecord) => number | undefined): [number, number][] =>
    epochs.flatMap((r) => { const v = f(r); return v === undefined || !Number.isFinite(v) ? [] : [[r.epoch, v] as [number, number]]; });
  const train = { color: '#1f77b4' }, test = { color: '#ff7f0e', dash: '6 4' };
  const loss: Series[] = [
    { label: 'train loss (steps)', color: '#7fb3d5', points: steps, dots: false, thin: true },
    { label: 'train loss', ...train, points: pick((r) => r.loss) }, { label: `${evalName} loss`, ...test, points: pick((r) => r.test_loss ?? r.val_loss) },
  ];
  const acc: Series[] = [{ label: 'train acc', ...train, points: pick((r) => r.acc) }, { label: `${evalName} acc`, ...test, points: pick((r) => r.test_acc ?? r.val_acc) }];
  // Dense models: mean IoU beside pixel accuracy, on the same 0..1 axis.
  const miou: Series[] = [
    { label: 'train mIoU', color: '#2ca02c', points: pick((r) => r.miou) },
    { label: `${evalName} mIoU`, color: '#2ca02c', dash: '6 4', points: pick((r) => r.test_miou ?? r.val_miou) },
  ];
  const dense = miou.some((m) => m.points.length);
  const maxLoss = Math.max(1e-6, ...loss.flatMap((s) => s.points.map((p) => p[1])));
  const lossTicks = niceTicks(0, maxLoss * 1.05);
  const lossStep = lossTicks.length > 1 ? lossTicks[1] - lossTicks[0] : maxLoss;
  const lossTop = Math.ceil((maxLoss * 1.05) / lossStep) * lossStep;
  const W = 960, H = 360, pw = W / 2;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 24}" viewBox="0 0 ${W} ${H + 24}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="15">${xmlEscape(title)}: ${plural(n, 'epoch')}</text>`,
    panel(0, 24, pw, H, 'loss', loss, [0, lossTop], fmtTick, xHi, 'top'),
    panel(pw, 24, pw, H, dense ? 'pixel accuracy and mean IoU' : 'accuracy', dense ? [...acc, ...miou] : acc, [0, 1], (v) => `${Math.round(v * 100)}%`, xHi, 'bottom'),
    '</svg>',
    '',
  ].join('\n');
}
