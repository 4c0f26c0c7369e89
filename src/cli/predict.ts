/** `cnnc predict FILE --weights CKPT INPUT...`: top-k classes for images and IDX files. */
import { statSync } from 'node:fs';
import { hasErrors } from '../compiler/diagnostics.ts';
import { compileInference } from '../compiler/emit/inference.ts';
import { UserError } from '../errors.ts';
import type { Device } from '../runtime/session.ts';
import { checkFileAt, pickModel } from './io.ts';
import { printDiagnostics } from './report.ts';
import { weightsForModel } from './weights.ts';

export interface PredictOptions {
  model?: string;
  weights?: string;
  top: number;
  json?: boolean;
  device: Device;
  threads?: number;
  limit?: number;
  resize?: boolean;
}

export async function predictCommand(file: string, inputs: string[], opts: PredictOptions): Promise<void> {
  if (!opts.weights) throw new UserError('predict needs trained parameters: --weights CKPT (from cnnc train)');
  for (const input of inputs) checkInput(input);
  const result = checkFileAt(file);
  if (hasErrors(result.diagnostics)) {
    printDiagnostics(process.stderr, result.sources, result.diagnostics);
    throw new UserError('has errors; fix them before predicting', file);
  }
  const picked = pickModel(result, opts.model);
  const weights = weightsForModel(picked, opts.weights, { transfer: false, purpose: 'weights', brief: true, log: (s) => console.error(`cnnc: note: ${s}`) });
  // Without classes= in the model, the class names the training run stored in the checkpoint.
  const model = picked.preprocess.classes || !weights.classes ? picked : { ...picked, preprocess: { ...picked.preprocess, classes: weights.classes } };
  const onnx = compileInference(model, { file, source: result.text, init: weights.match.tensors, initFrom: opts.weights }).bytes;
  // ONNX Runtime and sharp load only here, once the cheap checks have passed.
  const { loadSamples, predict } = await import('../runtime/predict.ts');
  const onConvert = (input: string, from: string, to: string) => console.error(`cnnc: note: ${input}: converted ${from} to ${to}`);
  const samples = (await loadSamples(inputs, model, { resize: opts.resize, onConvert })).slice(0, opts.limit);
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
}

/** Each input is a file that exists: a folder or a missing name fails before anything loads. */
function checkInput(input: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(input).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : `cannot read it (${code ?? String(e)})`, input);
  }
  if (isDirectory) throw new UserError('is a directory; give image files (PNG, JPEG) or IDX files', input);
}
