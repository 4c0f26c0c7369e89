/**
 * `cnnc compile FILE -o model.onnx`: the ONNX inference graph of a model (opset 17), with
 * parameters initialised as PyTorch does (seeded) or filled from --weights.
 */
import type { Command } from 'commander';
import { hasErrors } from '../compiler/diagnostics.ts';
import { LineMap } from '../compiler/source.ts';
import { compileInference, sourceHash } from '../compiler/emit/inference.ts';
import { UserError } from '../errors.ts';
import { loadWeights, writeAtomic } from '../runtime/checkpoint.ts';
import { checkFileAt, pickModel } from './io.ts';
import { formatDiagnostic, styleFor } from './report.ts';
import { formatBytes } from './summary.ts';

export interface CompileOptions {
  model?: string;
  output?: string;
  weights?: string;
  seed?: number;
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
    .action(async (file: string, opts: CompileOptions) => {
      process.exitCode = await compileCommand(file, opts);
    });
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
  const init = opts.weights ? loadWeights(opts.weights) : undefined;
  const compiled = compileInference(model, {
    file, source: result.text, init, initFrom: opts.weights, seed: opts.seed ?? model.train.seed ?? 0,
  });
  await writeAtomic(opts.output, [compiled.bytes]);
  const hash = sourceHash(result.text).slice(0, 12);
  console.log(`${opts.output}: ${model.name}, ${compiled.ops} ops, ${compiled.params.toLocaleString('en-US')} params, ${formatBytes(compiled.bytes.byteLength)} (opset 17, source ${hash}${opts.weights ? `, weights from ${opts.weights}` : ''})`);
  return 0;
}
