/**
 * `cnnc predict FILE --weights CKPT INPUT...`: top-k classes for images and IDX files; a dense
 * model's masks as PNGs (-o FILE.png or -o FOLDER), or their class shares.
 */
import { statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { denseOutput } from '../compiler/dense.ts';
import { hasErrors } from '../compiler/diagnostics.ts';
import type { CheckedModel } from '../compiler/model.ts';
import { compileInference } from '../compiler/emit/inference.ts';
import { UserError } from '../errors.ts';
import type { Device } from '../runtime/session.ts';
import type { MaskPrediction, Sample } from '../runtime/predict.ts';
import { checkFileAt, pickModel } from './io.ts';
import { checkOutputDir, checkOutputFile } from './outputs.ts';
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
  /** A dense model's masks: FILE.png for one input, else a folder. */
  output?: string;
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
  const dense = denseOutput(picked.output);
  if (opts.output !== undefined && !dense) {
    throw new UserError(`-o writes the masks of a dense model; model ${picked.name} gives one prediction per image (${picked.output!.join('x')})`, opts.output);
  }
  if (opts.output !== undefined) checkMaskOutput(opts.output);
  const weights = weightsForModel(picked, opts.weights, { transfer: false, purpose: 'weights', brief: true, log: (s) => console.error(`cnnc: note: ${s}`) });
  // Without classes= in the model, the class names the training run stored in the checkpoint.
  const model = picked.preprocess.classes || !weights.classes ? picked : { ...picked, preprocess: { ...picked.preprocess, classes: weights.classes } };
  const onnx = compileInference(model, { file, source: result.sources, init: weights.match.tensors, initFrom: opts.weights }).bytes;
  // ONNX Runtime and sharp load only here, once the cheap checks have passed.
  const { loadSamples, predict } = await import('../runtime/predict.ts');
  const onConvert = (input: string, from: string, to: string) => console.error(`cnnc: note: ${input}: converted ${from} to ${to}`);
  const samples = (await loadSamples(inputs, model, { resize: opts.resize, onConvert })).slice(0, opts.limit);
  if (dense) {
    await predictMasksCommand(onnx, model, samples, opts);
    return;
  }
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

const isPng = (path: string) => extname(path).toLowerCase() === '.png';

/** -o: FILE.png (a file that can be written) or a folder. */
function checkMaskOutput(output: string): void {
  if (isPng(output)) checkOutputFile(output, '-o', 'mask.png');
  else checkOutputDir(output, '-o', 'the masks (NAME.png per input)');
}

/**
 * Where each sample's mask goes: -o FILE.png for a single one, else FOLDER/NAME.png after the
 * input's name (an IDX file's images NAME-INDEX.png). Two inputs of one name are an error.
 */
function maskFiles(output: string, samples: readonly Sample[]): string[] {
  if (isPng(output)) {
    if (samples.length !== 1) throw new UserError(`-o ${output} names one mask file, but there are ${samples.length} inputs; give a folder`, output);
    return [output];
  }
  const files = samples.map((s) => {
    const idx = /^(.*)\[(\d+)\]$/.exec(s.source);
    const name = basename(idx ? idx[1] : s.source).replace(/\.[^.]*$/, '');
    return join(output, `${idx ? `${name}-${idx[2]}` : name}.png`);
  });
  const seen = new Map<string, string>();
  samples.forEach((s, i) => {
    const other = seen.get(files[i]);
    if (other) throw new UserError(`${other} and ${s.source} would both write ${files[i]}; predict them separately`, output);
    seen.set(files[i], s.source);
  });
  return files;
}

/** A dense model's predictions: each mask to its PNG with -o, else each input's class shares. */
async function predictMasksCommand(onnx: Uint8Array, model: CheckedModel, samples: Sample[], opts: PredictOptions): Promise<void> {
  const files = opts.output !== undefined ? maskFiles(opts.output, samples) : undefined;
  const { predictMasks, writeMaskPng } = await import('../runtime/predict.ts');
  const { masks, device, notice } = await predictMasks(onnx, model, samples, { topK: opts.top, device: opts.device, threads: opts.threads });
  if (notice) console.error(`cnnc: ${notice}`);
  const dense = denseOutput(model.output)!;
  if (files) for (const [i, m] of masks.entries()) await writeMaskPng(files[i], m.mask, [dense.height, dense.width]);
  const labels = model.preprocess.classes;
  const top = (m: MaskPrediction) => [...m.shares.keys()].sort((a, b) => m.shares[b] - m.shares[a]).slice(0, opts.top)
    .map((k) => ({ class: k, label: labels?.[k] ?? String(k), share: m.shares[k] }));
  if (opts.json) {
    console.log(JSON.stringify({ model: model.name, device, masks: masks.map((m, i) => ({ source: m.source, file: files?.[i], top: top(m) })) }, null, 2));
    return;
  }
  masks.forEach((m, i) => {
    const shares = top(m).map((t) => `${t.label} ${(100 * t.share).toFixed(1)}%`).join(', ');
    console.log(`${m.source}: ${files ? `${files[i]} (${shares} of the pixels)` : `${shares} of the pixels`}`);
  });
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
