/** `cnnc predict FILE --weights CKPT INPUT...`: top-k classes for images and IDX files. */
import type { Command } from 'commander';
import { hasErrors } from '../compiler/diagnostics.ts';
import { compileInference } from '../compiler/emit/inference.ts';
import { LineMap } from '../compiler/source.ts';
import { UserError } from '../errors.ts';
import { loadWeights } from '../runtime/checkpoint.ts';
import { loadSamples, predict } from '../runtime/predict.ts';
import type { Device } from '../runtime/session.ts';
import { checkFileAt, pickModel } from './io.ts';
import { formatDiagnostic, styleFor } from './report.ts';

interface PredictOptions {
  model?: string;
  weights?: string;
  top: number;
  json?: boolean;
  device: Device;
  threads?: number;
  limit?: number;
}

const positive = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer, not "${value}"`);
  return n;
};

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('classify PNG/JPEG images or IDX files with a trained model')
    .argument('<file>', '.cnn file')
    .argument('<inputs...>', 'PNG or JPEG images, or IDX image files')
    .option('-m, --model <name>', 'which model of the file (default: the first)')
    .option('-w, --weights <ckpt>', 'trained parameters: a cnnc checkpoint or an .onnx file (required)')
    .option('-k, --top <k>', 'how many classes to show per input', positive('--top'), 3)
    .option('--json', 'print predictions as JSON')
    .option('--device <device>', 'cpu, cuda or auto', 'cpu')
    .option('--threads <n>', 'intra-op threads', positive('--threads'))
    .option('--limit <n>', 'classify at most n inputs (useful with IDX files)', positive('--limit'))
    .action(async (file: string, inputs: string[], opts: PredictOptions) => {
      if (!opts.weights) throw new UserError('predict needs trained parameters: --weights CKPT (from cnnc train)');
      if (!['cpu', 'cuda', 'auto'].includes(opts.device)) throw new UserError(`--device must be cpu, cuda or auto, not "${opts.device}"`);
      const result = checkFileAt(file);
      if (hasErrors(result.diagnostics)) {
        const lines = new LineMap(result.text);
        for (const d of result.diagnostics) console.error(formatDiagnostic(file, lines, d, styleFor(process.stderr)) + '\n');
        throw new UserError('has errors; fix them before predicting', file);
      }
      const model = pickModel(result, opts.model);
      const onnx = compileInference(model, { file, source: result.text, init: loadWeights(opts.weights), initFrom: opts.weights }).bytes;
      const samples = (await loadSamples(inputs, model)).slice(0, opts.limit);
      const { predictions, device, notice } = await predict(onnx, model, samples, { topK: opts.top, device: opts.device, threads: opts.threads });
      if (notice) console.error(`cnnc: ${notice}`);
      if (opts.json) {
        console.log(JSON.stringify({ model: model.name, device, predictions }, null, 2));
        return;
      }
      for (const p of predictions) {
        const top = p.top.map((t) => `${t.label} ${(100 * t.probability).toFixed(1)}%`).join(', ');
        console.log(`${p.source}: ${top}`);
      }
    });
}
