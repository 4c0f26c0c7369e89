/**
 * `cnnc compile FILE -o model.onnx`: the ONNX inference graph of a model (opset 17), with
 * parameters initialised as PyTorch does (seeded) or filled from --weights.
 */
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CheckedModel } from '../compiler/model.ts';
import { compileTraining, initialState, NEW_PREFIX } from '../compiler/emit/train.ts';
import { formatPretrainedReport, loadPretrained } from '../runtime/train-runner.ts';
import { hasErrors } from '../compiler/diagnostics.ts';
import { LineMap } from '../compiler/source.ts';
import { compileInference, sourceHash } from '../compiler/emit/inference.ts';
import { UserError } from '../errors.ts';
import { loadWeights, saveCheckpoint, writeAtomic } from '../runtime/checkpoint.ts';
import { checkFileAt, pickModel } from './io.ts';
import { formatDiagnostic, styleFor } from './report.ts';
import { formatBytes } from './summary.ts';

export interface CompileOptions {
  model?: string;
  output?: string;
  weights?: string;
  seed?: number;
  train?: boolean;
  loopSteps?: number;
}

export function registerCompile(program: Command): Command {
  return program
    .command('compile')
    .description('compile a model to an ONNX inference graph (opset 17)')
    .argument('<file>', '.cnn file')
    .option('-m, --model <name>', 'which model of the file (default: the first)')
    .option('-o, --output <path>', 'where to write the .onnx model')
    .option('--weights <file>', 'parameter values from a cnnc checkpoint or another .onnx model (matched by name)')
    .option('--seed <n>', 'seed for initial parameter values (default: the train section\'s seed, else 0)', parseSeed)
    .option('--train', 'write the training graphs to the -o directory instead: train_step.onnx, eval.onnx, train_loop.onnx, init.ckpt and train.json')
    .option('--loop-steps <k>', 'with --train: fix the number of steps per train_loop.onnx run (default: any, from the input\'s first dimension)', parseSteps)
    .action(async (file: string, opts: CompileOptions) => {
      process.exitCode = await compileCommand(file, opts);
    });
}

function parseSteps(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--loop-steps: ${JSON.stringify(value)} is not a positive whole number`);
  return n;
}

function parseSeed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new UserError(`--seed: ${JSON.stringify(value)} is not an integer in [0, 4294967295]`);
  return n;
}

/** Returns the exit status. Diagnostics go to stderr, the summary line to stdout. */
export async function compileCommand(file: string, opts: CompileOptions): Promise<number> {
  if (!opts.output) throw new UserError('compile: give the output file with -o FILE.onnx');
  const result = checkFileAt(file);
  const lines = new LineMap(result.text);
  const style = styleFor(process.stderr);
  for (const d of result.diagnostics) console.error(formatDiagnostic(file, lines, d, style) + '\n');
  if (hasErrors(result.diagnostics)) {
    console.error(`cnnc: ${file} has errors; nothing written`);
    return 1;
  }
  const model = pickModel(result, opts.model);
  if (opts.train) return compileTrainingCommand(file, result.text, model, opts);
  const init = opts.weights ? loadWeights(opts.weights) : undefined;
  const compiled = compileInference(model, {
    file, source: result.text, init, initFrom: opts.weights, seed: opts.seed ?? model.train.seed ?? 0,
  });
  await writeAtomic(opts.output, [compiled.bytes]);
  const hash = sourceHash(result.text).slice(0, 12);
  console.log(`${opts.output}: ${model.name}, ${compiled.ops} ops, ${model.totals.trainable.toLocaleString('en-US')} trainable + ${model.totals.nonTrainable.toLocaleString('en-US')} non-trainable params, ${formatBytes(compiled.bytes.byteLength)} (opset 17, source ${hash}${opts.weights ? `, weights from ${opts.weights}` : ''})`);
  return 0;
}

/**
 * `--train -o DIR`: the training-step, evaluation and K-step Loop graphs, the initial state as a
 * cnnc checkpoint, and train.json describing the graphs' inputs and outputs.
 */
async function compileTrainingCommand(file: string, source: string, model: CheckedModel, opts: CompileOptions): Promise<number> {
  const dir = opts.output!;
  const seed = opts.seed ?? model.train.seed ?? 0;
  const config = { ...model.train, seed };
  const graphs = compileTraining(model, config, { file: path.basename(file), source, loop: true, loopSteps: opts.loopSteps });
  const state = initialState(graphs.plan, seed);
  if (opts.weights) {
    const { tensors, report } = loadPretrained(model, opts.weights);
    console.error(formatPretrainedReport(report));
    for (const [name, t] of tensors) state.set(name, t);
  }
  mkdirSync(dir, { recursive: true });
  await writeAtomic(path.join(dir, 'train_step.onnx'), [graphs.trainStep]);
  await writeAtomic(path.join(dir, 'eval.onnx'), [graphs.eval]);
  await writeAtomic(path.join(dir, 'train_loop.onnx'), [graphs.trainLoop!]);
  await saveCheckpoint(path.join(dir, 'init.ckpt'), { model: model.name, sourceHash: sourceHash(source), meta: { format: 'cnnc-train-init', seed, config }, tensors: state });
  const signature = {
    model: model.name,
    config,
    inputs: {
      state: graphs.plan.state.map((e) => ({ name: e.name, dims: e.dims, kind: e.kind, updated: e.updated })),
      input: ['N', ...model.input!], labels: ['N'], lr: 'float scalar', step: 'int64 scalar, 0-based (Adam t = step + 1; seeds dropout)',
    },
    outputs: { loss: 'float scalar (mean over the batch)', correct: 'int64 scalar', updated: `${NEW_PREFIX}NAME for each state entry with updated: true` },
    train_loop: `input [${opts.loopSteps ?? 'K'}, N, ...], labels [K, N], lr [K], step (the first); outputs ${NEW_PREFIX}NAME, loss [K], correct [K]`,
    eval: 'parameters and buffers, input, labels -> loss, correct, logits',
  };
  writeFileSync(path.join(dir, 'train.json'), JSON.stringify(signature, null, 2) + '\n');
  const trained = graphs.plan.state.filter((e) => e.kind === 'param' && e.updated).reduce((s, e) => s + e.dims.reduce((a, b) => a * b, 1), 0);
  console.log(`${dir}: ${model.name} training graphs (train_step.onnx ${formatBytes(graphs.trainStep.byteLength)}, eval.onnx, train_loop.onnx), ` +
    `init.ckpt, train.json; ${trained.toLocaleString('en-US')} trained params, ${config.loss.kind}, ${config.optimizer.kind}`);
  return 0;
}
