/**
 * `cnnc train FILE --data DIR`: trains a model of FILE on a data set with the settings of its
 * `train { ... }` section, each overridable from the command line. Writes checkpoints, a JSONL log
 * and loss/accuracy curves to --out (runs/<model> by default); --resume continues exactly.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { bindArgs } from '../compiler/args.ts';
import type { Arg } from '../compiler/ast.ts';
import type { ArgSpec } from '../compiler/layers/types.ts';
import { closestName, hasErrors, type Diagnostic } from '../compiler/diagnostics.ts';
import { parse } from '../compiler/parser.ts';
import { checkTrainSection, trainFields, type TrainConfig } from '../compiler/train-config.ts';
import { UserError } from '../errors.ts';
import { loadTrainingData } from '../runtime/dataset.ts';
import type { Device } from '../runtime/session.ts';
import type { CreateTrainRunner } from '../runtime/train-step.ts';
import { checkData, LAST_CHECKPOINT, train, type ProgressOutput, type TrainResult } from '../runtime/trainer.ts';
import { checkFileAt, pickModel } from './io.ts';
import { device as checkDevice, optionalPositiveInt } from './options.ts';
import { checkOutputDir } from './outputs.ts';
import { printDiagnostics } from './report.ts';

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
}

// ---------------------------------------------------------------------------------------------
// Overrides: each is one train-section line, checked exactly like the source

export interface Override {
  /** How the user wrote it, for messages: `--lr 0`. */
  flag: string;
  /** The train-section line it stands for: `optimizer: lr=0`. */
  entry: string;
}

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

/**
 * Applies overrides to a config: each is parsed and bound with the train section's own specs, so a
 * bad value gets the message the source would get. Only the values written change: `--lr 0.1` keeps
 * the source's optimizer kind and momentum.
 */
export function applyOverrides(config: TrainConfig, overrides: readonly Override[]): TrainConfig {
  const result = structuredClone(config) as unknown as Record<string, unknown>;
  for (const o of overrides) {
    const fail = (why: string): never => { throw new UserError(`${o.flag}: ${why}`); };
    const prefix = 'model M {\n  input 1\n  train {\n';
    const text = `${prefix}${o.entry}\n  }\n}\n`;
    const parsed = parse(text);
    const entries = parsed.ast.models[0]?.train?.entries ?? [];
    const entry = entries[0];
    const usage = 'write it as a train-section line, FIELD: VALUE [name=value ...], e.g. --set "schedule: cosine warmup=1"';
    if (parsed.diagnostics.some((d) => d.severity === 'error') || parsed.ast.models.length !== 1 || entries.length !== 1 ||
      entry.span.end !== prefix.length + o.entry.trimEnd().length) {
      fail(usage);
    }
    const specs = trainFields[entry.key as keyof TrainConfig];
    if (!specs) {
      const guess = closestName(entry.key, Object.keys(trainFields));
      fail(`there is no train field "${entry.key}"${guess ? `; did you mean "${guess}"?` : `; fields: ${Object.keys(trainFields).join(', ')}`}`);
    }
    if (entry.key === 'freeze') {
      // The section checker reads freeze patterns; a section of this one line gives exactly them.
      const diags: Diagnostic[] = [];
      const patterns = checkTrainSection({ entries: [entry], span: entry.span }, diags).freeze;
      const error = diags.find((d) => d.severity === 'error');
      if (error) fail(`${error.message}, e.g. --set 'freeze: "features.*"'`);
      result.freeze = patterns;
      continue;
    }
    const diags: Diagnostic[] = [];
    const bound = bindArgs(specs, entry.values, entry.key, entry.keySpan, new Map(), diags);
    const error = diags.find((d) => d.severity === 'error');
    if (error || !bound.ok) fail(error ? overrideMessage(error, entry.key, entry.values, specs) : usage);
    const given = Object.keys(bound.spans);
    if (given.length === 0) fail(`no value given for ${entry.key}`);
    if (specs.length === 1 && specs[0].positional) result[entry.key] = bound.values[specs[0].name];
    else result[entry.key] = { ...(result[entry.key] as object), ...Object.fromEntries(given.map((k) => [k, bound.values[k]])) };
  }
  return result as unknown as TrainConfig;
}

/**
 * The diagnostic's message, except that a bare word where a number belongs reads as such (in the
 * source it would be a misspelt block parameter; on the command line it is just a bad value).
 */
function overrideMessage(d: Diagnostic, key: string, args: readonly Arg[], specs: readonly ArgSpec[]): string {
  const arg = args.find((a) => a.value.span.start === d.span.start && a.value.span.end === d.span.end);
  if (arg && arg.value.kind === 'name') {
    const positional = specs.filter((s) => s.positional);
    const spec = arg.name !== undefined ? specs.find((s) => s.name === arg.name) : positional[args.filter((a) => a.name === undefined).indexOf(arg)];
    if (spec && (spec.type === 'number' || spec.type === 'int')) {
      return `${key} ${spec.name} = ${arg.value.name} is not ${spec.type === 'int' ? 'an integer' : 'a number'}`;
    }
  }
  return d.message + (d.hint ? ` (${d.hint})` : '');
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
    printDiagnostics(log, file, result.text, result.diagnostics.filter((x) => x.severity === 'error'));
    throw new UserError('has errors; fix them before training (cnnc check shows them all)', file);
  }
  const model = pickModel(result, opts.model);
  const config = applyOverrides(model.train, overridesFrom(opts));
  const threads = optionalPositiveInt('--threads', opts.threads);
  const limitTrain = optionalPositiveInt('--limit-train', opts.limitTrain);
  const limitTest = optionalPositiveInt('--limit-test', opts.limitTest);
  const device = checkDevice('--device', opts.device ?? 'cpu');
  const outDir = opts.out ?? join('runs', model.name);
  checkRunDir(outDir, opts.resume);

  // Data first, checked against the model, so bad data fails before graphs are built.
  const data = await loadTrainingData(opts.data, {
    model: model.name, input: model.input!, classes: model.preprocess.classes, seed: config.seed, limitTrain, limitTest,
    valSplit: opts.valSplit === undefined ? undefined : Number(opts.valSplit), resize: opts.resize,
  });
  for (const line of data.notices) log.write(line + '\n');
  const { train: trainSet, eval: testSet, evalName } = data;
  checkData(model, config, trainSet);
  if (testSet) checkData(model, config, testSet);

  const create = deps.createTrainRunner ?? (await loadRunnerFactory());
  const runner = await create(model, config, { device, threads, batch: config.batch });
  if (opts.init && !opts.resume) {
    // Pretrained values replace the initial ones by name; what did not match is reported.
    const { loadPretrained, formatPretrainedReport } = await import('../runtime/train-runner.ts');
    const { tensors, report } = loadPretrained(model, opts.init);
    if (report.matched.length === 0) throw new UserError(`no tensor matches a parameter of model ${model.name}`, opts.init);
    log.write(formatPretrainedReport(report) + '\n');
    const state = runner.state();
    for (const [name, t] of tensors) state.set(name, t);
    runner.load(state);
  }
  try {
    const res = await train({
      model, config, runner, trainSet, testSet, evalName, outDir, device, resume: opts.resume, log,
      sourceHash: createHash('sha256').update(result.text).digest('hex'),
      handleSigint: deps.handleSigint ?? true,
    });
    const last = res.history.at(-1);
    if (last) {
      const held = last.test_acc ?? last.val_acc;
      const acc = held ?? last.acc;
      print(`${model.name}: ${res.epochs} epoch${res.epochs === 1 ? '' : 's'}, ${res.steps} steps; ` +
        `${held !== undefined ? evalName : 'train'} accuracy ${(100 * acc).toFixed(2)}%` +
        (res.best ? `, best ${(100 * res.best.acc).toFixed(2)}% at epoch ${res.best.epoch}` : ''));
    }
    if (res.lastCheckpoint) print(`checkpoints: ${res.lastCheckpoint}${res.bestCheckpoint ? `, ${res.bestCheckpoint}` : ''}`);
    if (existsSync(join(outDir, 'curves.svg'))) print(`log: ${join(outDir, 'train.jsonl')}, curves: ${join(outDir, 'curves.svg')}`);
    return res;
  } finally {
    await runner.dispose?.();
  }
}
