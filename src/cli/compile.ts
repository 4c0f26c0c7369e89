/**
 * `cnnc compile FILE -o model.onnx`: the ONNX inference graph of a model (opset 17), with
 * parameters initialised as PyTorch does (seeded) or filled from --weights.
 */
import path from 'node:path';
import type { SourceSet } from '../compiler/source.ts';
import type { CheckedModel } from '../compiler/model.ts';
import { compileInference, sourceHash } from '../compiler/emit/inference.ts';
import { UserError } from '../errors.ts';
import { saveCheckpoint } from '../runtime/checkpoint.ts';
import { ensureWritableDir, writeFileAtomic } from '../runtime/files.ts';
import { checkFileForWriting, pickModel } from './io.ts';
import { checkOutputDir, checkOutputFile } from './outputs.ts';
import { formatBytes } from './summary.ts';
import { weightsForModel } from './weights.ts';
import { checkTritonOptions, writeTritonCommand, type TritonCliOptions } from './triton.ts';

export interface CompileOptions extends TritonCliOptions {
  model?: string;
  output?: string;
  weights?: string;
  /** The full list of which tensor of --weights went where. */
  weightsReport?: string;
  seed?: number;
  train?: boolean;
  loopSteps?: number;
}

/** Returns the exit status. Diagnostics go to stderr, the summary line to stdout. */
export async function compileCommand(file: string, opts: CompileOptions): Promise<number> {
  const output = checkOutput(opts);
  const result = checkFileForWriting(file);
  if (!result) return 1;
  const model = pickModel(result, opts.model);
  if (opts.train) return compileTrainingCommand(file, result.sources, model, output, opts);
  const weights = opts.weights ? weightsForModel(model, opts.weights, { transfer: false, purpose: 'weights', more: reportAt(opts), log: (s) => console.error(s) }) : undefined;
  const compiled = compileInference(model, {
    file, source: result.sources, init: weights?.match.tensors, initFrom: opts.weights, seed: opts.seed ?? model.train.seed ?? 0,
  });
  if (weights && opts.weightsReport) writeFileAtomic(opts.weightsReport, weights.fullReport);
  if (opts.triton) return writeTritonCommand({ dir: opts.triton, model, compiled, file, source: result.sources, opts });
  writeFileAtomic(output, compiled.bytes);
  const hash = sourceHash(result.sources).slice(0, 12);
  console.log(`${output}: ${model.name}, ${compiled.ops} ops, ${model.totals.trainable.toLocaleString('en-US')} trainable + ${model.totals.nonTrainable.toLocaleString('en-US')} non-trainable params, ${formatBytes(compiled.bytes.byteLength)} (opset 17, source ${hash}${opts.weights ? `, weights from ${opts.weights}` : ''})`);
  return 0;
}

const reportAt = (opts: CompileOptions) => (opts.weightsReport ? `all in ${opts.weightsReport}` : 'all with --weights-report FILE');

/** Returns -o, once the output options make sense together and it can be written; before any work. */
function checkOutput(opts: CompileOptions): string {
  if (opts.loopSteps !== undefined && !opts.train) throw new UserError('--loop-steps only applies with --train (it fixes the steps of train_loop.onnx)');
  if (opts.weightsReport) {
    if (!opts.weights) throw new UserError('--weights-report lists where the tensors of --weights went; give --weights FILE too');
    checkOutputFile(opts.weightsReport, '--weights-report', 'weights-report.txt');
  }
  checkTritonOptions(opts);
  if (opts.triton) return opts.triton;
  if (opts.train) {
    if (!opts.output) throw new UserError('compile --train: give the folder for the training graphs with -o DIR');
    checkOutputDir(opts.output, '-o', 'the training graphs (--train)');
  } else {
    if (!opts.output) throw new UserError('compile: give the output file with -o FILE.onnx');
    checkOutputFile(opts.output, '-o', 'model.onnx');
  }
  return opts.output;
}

/**
 * `--train -o DIR`: the training-step, evaluation and K-step Loop graphs, the initial state as a
 * cnnc checkpoint, and train.json describing the graphs' inputs and outputs.
 */
async function compileTrainingCommand(file: string, sources: SourceSet, model: CheckedModel, dir: string, opts: CompileOptions): Promise<number> {
  const { compileTraining, initialState, NEW_PREFIX } = await import('../compiler/emit/train.ts');
  const seed = opts.seed ?? model.train.seed ?? 0;
  const config = { ...model.train, seed };
  const graphs = compileTraining(model, config, { file: path.basename(file), source: sources, loop: true, loopSteps: opts.loopSteps });
  const state = initialState(graphs.plan, seed);
  if (opts.weights) {
    // The initial state of a training run: a differing head is initialised as usual, as with train --init.
    const weights = weightsForModel(model, opts.weights, { transfer: true, purpose: 'init', more: reportAt(opts), log: (s) => console.error(s) });
    for (const [name, t] of weights.match.tensors) state.set(name, t);
    if (opts.weightsReport) writeFileAtomic(opts.weightsReport, weights.fullReport);
  }
  ensureWritableDir(dir);
  writeFileAtomic(path.join(dir, 'train_step.onnx'), graphs.trainStep);
  writeFileAtomic(path.join(dir, 'eval.onnx'), graphs.eval);
  writeFileAtomic(path.join(dir, 'train_loop.onnx'), graphs.trainLoop!);
  await saveCheckpoint(path.join(dir, 'init.ckpt'), { model: model.name, sourceHash: sourceHash(sources), meta: { format: 'cnnc-train-init', seed, config }, tensors: state });
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
  writeFileAtomic(path.join(dir, 'train.json'), JSON.stringify(signature, null, 2) + '\n');
  const trained = graphs.plan.state.filter((e) => e.kind === 'param' && e.updated).reduce((s, e) => s + e.dims.reduce((a, b) => a * b, 1), 0);
  console.log(`${dir}: ${model.name} training graphs (train_step.onnx ${formatBytes(graphs.trainStep.byteLength)}, eval.onnx, train_loop.onnx), ` +
    `init.ckpt, train.json; ${trained.toLocaleString('en-US')} trained params, ${config.loss.kind}, ${config.optimizer.kind}`);
  return 0;
}
