/**
 * `cnnc train FILE --data DIR`: trains a model of FILE on a data set with the settings of its
 * `train { ... }` section, each overridable from the command line. Writes checkpoints, a JSONL log
 * and loss/accuracy curves to --out (runs/<model> by default); --resume continues exactly.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { classesOf, denseOutput } from '../compiler/dense.ts';
import { hasErrors } from '../compiler/diagnostics.ts';
import { sourceHash } from '../compiler/emit/inference.ts';
import { applyOverrides, type Override } from '../compiler/train-config.ts';
import { UserError } from '../errors.ts';
import { loadTrainingData } from '../runtime/dataset.ts';
import type { Device } from '../runtime/session.ts';
import type { CreateTrainRunner } from '../runtime/train-step.ts';
import { checkData, LAST_CHECKPOINT, plural, train, type ProgressOutput, type TrainResult } from '../runtime/trainer.ts';
import { checkFileAt, pickModel } from './io.ts';
import { device as checkDevice, optionalPositiveInt, stepsPerCall as checkStepsPerCall } from './options.ts';
import { checkOutputDir } from './outputs.ts';
import { printDiagnostics } from './report.ts';
import { weightsForModel } from './weights.ts';

/** The full report of --init's match, written into the run folder. */
export const INIT_REPORT = 'init-report.txt';

export interface TrainCliOptions {
  data: string;
  model?: string;
  out?: string;
  epochs?: string;
  batch?: string;
  lr?: string;
  optimizer?: string;
  seed?: string;
  set?: string[];
  device?: Device;
  threads?: string;
  resume?: boolean;
  limitTrain?: string;
  limitTest?: string;
  init?: string;
  /** Fraction of each class held out for validation when class folders have no test split. */
  valSplit?: string;
  /** Resize and convert images whose shape differs from the model's input. */
  resize?: boolean;
  /** Training steps per runner call: a number or `auto` (the trainer's default: auto on CUDA). */
  stepsPerCall?: string;
}

// ---------------------------------------------------------------------------------------------
// Overrides: each is one train-section line, checked by the train section's checker

/** The overrides given by the options: --set lines first, then the specific flags (which win). */
export function overridesFrom(opts: Pick<TrainCliOptions, 'epochs' | 'batch' | 'lr' | 'optimizer' | 'seed' | 'set'>): Override[] {
  const out: Override[] = (opts.set ?? []).map((s) => ({ flag: `--set ${JSON.stringify(s)}`, entry: s }));
  const flag = (name: string, value: string | undefined, entry: (v: string) => string) => {
    if (value !== undefined) out.push({ flag: `--${name} ${value}`, entry: entry(value) });
  };
  flag('optimizer', opts.optimizer, (v) => `optimizer: ${v}`);
  flag('lr', opts.lr, (v) => `optimizer: lr=${v}`);
  flag('batch', opts.batch, (v) => `batch: ${v}`);
  flag('epochs', opts.epochs, (v) => `epochs: ${v}`);
  flag('seed', opts.seed, (v) => `seed: ${v}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The runner factory, provided by the training-graph code

/** The ONNX Runtime trainer, loaded only when a run starts (it loads onnxruntime-node). */
export async function loadRunnerFactory(): Promise<CreateTrainRunner> {
  return (await import('../runtime/train-runner.ts')).createTrainRunner;
}

// ---------------------------------------------------------------------------------------------
// The command

export interface TrainCommandDeps {
  /** The runner factory; src/runtime/train-runner.ts's createTrainRunner when omitted. */
  createTrainRunner?: CreateTrainRunner;
  /** Progress and messages; process.stderr when omitted. */
  log?: ProgressOutput;
  /** The final summary; console.log when omitted. */
  print?: (line: string) => void;
  /** Whether Ctrl-C is handled (true for the CLI). */
  handleSigint?: boolean;
}

/**
 * --out can hold the run, and --resume finds one there (or its absence, one to replace): checked
 * before the data loads, so a wrong folder fails at once and nothing is written.
 */
function checkRunDir(outDir: string, resume: boolean | undefined): void {
  checkOutputDir(outDir, '--out', 'checkpoints, train.jsonl and curves.svg');
  const last = join(outDir, LAST_CHECKPOINT);
  if (resume && !existsSync(last)) throw new UserError(`--resume: no ${LAST_CHECKPOINT} to resume from`, outDir);
  if (!resume && existsSync(last)) {
    throw new UserError(`already holds a training run (${LAST_CHECKPOINT}); pass --resume to continue it, or choose another --out`, outDir);
  }
}

export async function trainCommand(file: string, opts: TrainCliOptions, deps: TrainCommandDeps = {}): Promise<TrainResult> {
  const log = deps.log ?? process.stderr;
  const print = deps.print ?? ((line: string) => console.log(line));
  const result = checkFileAt(file);
  if (hasErrors(result.diagnostics)) {
    printDiagnostics(log, result.sources, result.diagnostics.filter((x) => x.severity === 'error'));
    throw new UserError('has errors; fix them before training (cnnc check shows them all)', file);
  }
  const model = pickModel(result, opts.model);
  const config = applyOverrides(model.train, overridesFrom(opts));
  const threads = optionalPositiveInt('--threads', opts.threads);
  const limitTrain = optionalPositiveInt('--limit-train', opts.limitTrain);
  const limitTest = optionalPositiveInt('--limit-test', opts.limitTest);
  const device = checkDevice('--device', opts.device ?? 'cpu');
  const stepsPerCall = opts.stepsPerCall === undefined ? undefined : checkStepsPerCall('--steps-per-call', opts.stepsPerCall);
  const outDir = opts.out ?? join('runs', model.name);
  checkRunDir(outDir, opts.resume);
  // Pretrained weights are matched before the data loads, so a file that does not fit fails at once.
  const init = opts.init && !opts.resume
    ? weightsForModel(model, opts.init, { transfer: true, purpose: 'init', more: `all in ${join(outDir, INIT_REPORT)}`, log: (s) => log.write(s + '\n') })
    : undefined;

  // Data first, checked against the model, so bad data fails before graphs are built.
  const dense = denseOutput(model.output);
  const data = await loadTrainingData(opts.data, {
    model: model.name, input: model.input!, classes: model.preprocess.classes, seed: config.seed, limitTrain, limitTest,
    dense: dense && { classes: classesOf(dense.channels, config.loss.kind), height: dense.height, width: dense.width },
    valSplit: opts.valSplit === undefined ? undefined : Number(opts.valSplit), resize: opts.resize,
  });
  for (const line of data.notices) log.write(line + '\n');
  const { train: trainSet, eval: testSet, evalName } = data;
  checkData(model, config, trainSet);
  if (testSet) checkData(model, config, testSet);

  const create = deps.createTrainRunner ?? (await loadRunnerFactory());
  const runner = await create(model, config, { device, threads, batch: config.batch, file: basename(file), source: result.sources });
  if (init) {
    const state = runner.state();
    for (const [name, t] of init.match.tensors) state.set(name, t);
    runner.load(state);
  }
  try {
    const res = await train({
      model, config, runner, trainSet, testSet, evalName, outDir, device, resume: opts.resume, log, stepsPerCall,
      sourceHash: sourceHash(result.sources),
      handleSigint: deps.handleSigint ?? true, runFiles: init ? { [INIT_REPORT]: init.fullReport } : undefined,
    });
    const last = res.history.at(-1);
    if (last) {
      const held = last.test_acc ?? last.val_acc;
      const acc = held ?? last.acc;
      const miou = held !== undefined ? last.test_miou ?? last.val_miou : last.miou;
      const best = res.best && (res.best.miou !== undefined ? `best mean IoU ${res.best.miou.toFixed(4)}` : `best ${(100 * res.best.acc).toFixed(2)}%`);
      print(`${model.name}: ${plural(res.epochs, 'epoch')}, ${plural(res.steps, 'step')}; ` +
        `${held !== undefined ? evalName : 'train'} ${miou !== undefined ? 'pixel ' : ''}accuracy ${(100 * acc).toFixed(2)}%` +
        (miou !== undefined ? `, mean IoU ${miou.toFixed(4)}` : '') + (best ? `, ${best} at epoch ${res.best!.epoch}` : ''));
    }
    if (res.lastCheckpoint) print(`checkpoints: ${res.lastCheckpoint}${res.bestCheckpoint ? `, ${res.bestCheckpoint}` : ''}`);
    if (existsSync(join(outDir, 'curves.svg'))) print(`log: ${join(outDir, 'train.jsonl')}, curves: ${join(outDir, 'curves.svg')}`);
    return res;
  } finally {
    await runner.dispose?.();
  }
}
