/**
 * Classifying inputs with a compiled model: images (PNG/JPEG) and IDX files, preprocessed as the
 * model's `input` line says (resize to its H×W, its channel count, mean and std); a dense model
 * (dense.ts) gives a mask per input, the predicted class of each pixel, written as a PNG.
 */
import { extname } from 'node:path';
import sharp from 'sharp';
import { denseOutput } from '../compiler/dense.ts';
import { finalLayer } from '../compiler/model.ts';
import type { LayerKind } from '../compiler/layers/types.ts';
import type { CheckedModel } from '../compiler/model.ts';
import { UserError } from '../errors.ts';
import { readIdx } from './idx.ts';
import { loadImage, normalize } from './images.ts';
import { writeFileAtomic } from './files.ts';
import { createSession, floatTensor, runSession, type Device } from './session.ts';

export interface Sample {
  source: string; // file, or file[index] for IDX
  data: Float32Array; // C·H·W, normalised
}

export interface Prediction {
  source: string;
  top: { class: number; label: string; probability: number }[];
}

/** How loadSamples treats an image whose shape differs from the model's input. */
export interface SampleOptions {
  /** Convert it (resize, gray/colour) instead of refusing it; onConvert hears of each one converted. */
  resize?: boolean;
  onConvert?: (file: string, from: string, to: string) => void;
}

/**
 * Loads every input as normalised CHW samples; an IDX file gives one sample per image. An image of
 * another shape is refused unless opts.resize: a silent conversion classifies something else than
 * the user thinks they gave.
 */
export async function loadSamples(files: string[], model: CheckedModel, opts: SampleOptions = {}): Promise<Sample[]> {
  const input = model.input;
  if (!input || input.length !== 3) throw new UserError(`model ${model.name} takes a ${input?.join('×') ?? '?'} input, not an image`);
  const [c, h, w] = input;
  if (c !== 1 && c !== 3) throw new UserError(`model ${model.name} takes ${c} channels; images have 1 or 3`);
  const samples: Sample[] = [];
  for (const file of files) {
    if (/\.(idx\d?-ubyte|idx)(\.gz)?$|ubyte(\.gz)?$/.test(file)) samples.push(...idxSamples(file, input, model));
    else {
      const ext = extname(file).toLowerCase();
      if (!['.png', '.jpg', '.jpeg'].includes(ext)) throw new UserError(`is not a PNG, JPEG or IDX file (by its name)`, file);
      const chw = await loadImage(file, { channels: c as 1 | 3, height: h, width: w, resize: opts.resize ?? false, onConvert: opts.onConvert });
      samples.push({ source: file, data: normalize(chw, model.preprocess.mean, model.preprocess.std) });
    }
  }
  return samples;
}

function idxSamples(file: string, input: readonly number[], model: CheckedModel): Sample[] {
  const [c, h, w] = input;
  const idx = readIdx(file);
  const dims = idx.dims.length === 3 ? [idx.dims[0], 1, idx.dims[1], idx.dims[2]] : idx.dims;
  if (dims.length !== 4 || dims[1] !== c || dims[2] !== h || dims[3] !== w) {
    throw new UserError(`holds images of ${idx.dims.slice(1).join('×')} but model ${model.name} takes ${c}×${h}×${w}`, file);
  }
  const size = c * h * w;
  return Array.from({ length: dims[0] }, (_, i) => {
    const chw = new Float32Array(size);
    for (let j = 0; j < size; j++) chw[j] = idx.data[i * size + j] / 255;
    return { source: `${file}[${i}]`, data: normalize(chw, model.preprocess.mean, model.preprocess.std) };
  });
}

function softmax(logits: Float32Array): Float64Array {
  const max = Math.max(...logits);
  const exp = Float64Array.from(logits, (v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / sum);
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * Class probabilities from one sample's outputs, by what the model's last layer is (`ends`): a
 * softmax's or sigmoid's outputs already are probabilities (a sigmoid's, per class: they need not
 * sum to 1); logits get a softmax. A single output is a binary classifier: the probability of
 * class 1, through a sigmoid unless the model ends in one; class 0 gets the rest.
 */
export function classProbabilities(row: Float32Array, ends: LayerKind['probabilities']): Float64Array {
  if (row.length === 1 && ends === 'sigmoid') return Float64Array.of(1 - row[0], row[0]);
  // sigmoid(-z) rather than 1 - sigmoid(z): no cancellation for large z.
  if (row.length === 1 && ends === undefined) return Float64Array.of(sigmoid(-row[0]), sigmoid(row[0]));
  return ends ? Float64Array.from(row) : softmax(row);
}

export interface PredictOptions {
  topK: number;
  device?: Device;
  batch?: number;
  threads?: number;
}

/**
 * Runs the model on the samples in batches; `each` gets every sample with its outputs (the model's
 * output values for it). Returns the device used.
 */
async function runBatches(onnx: Uint8Array, model: CheckedModel, samples: Sample[], opts: PredictOptions, each: (s: Sample, out: Float32Array) => void): Promise<{ device: string; notice?: string }> {
  const { session, device, notice } = await createSession(onnx, { device: opts.device ?? 'cpu', threads: opts.threads });
  const per = model.output!.reduce((a, b) => a * b, 1);
  const size = samples[0]?.data.length ?? 0;
  const batch = opts.batch ?? 64;
  try {
    for (let start = 0; start < samples.length; start += batch) {
      const chunk = samples.slice(start, start + batch);
      const x = new Float32Array(chunk.length * size);
      chunk.forEach((s, i) => x.set(s.data, i * size));
      const out = await runSession(session, { input: floatTensor(x, [chunk.length, ...model.input!]) });
      const values = Object.values(out)[0].data as Float32Array;
      chunk.forEach((s, i) => each(s, values.subarray(i * per, (i + 1) * per)));
    }
  } finally {
    await session.release();
  }
  return { device, notice };
}

/** Runs the model in batches and returns the top-k classes of each sample. */
export async function predict(onnx: Uint8Array, model: CheckedModel, samples: Sample[], opts: PredictOptions): Promise<{ predictions: Prediction[]; device: string; notice?: string }> {
  const labels = model.preprocess.classes;
  const predictions: Prediction[] = [];
  const ends = finalLayer(model.root)?.layer.probabilities;
  const run = await runBatches(onnx, model, samples, opts, (s, row) => {
    const probs = classProbabilities(row, ends);
    const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, opts.topK);
    predictions.push({ source: s.source, top: order.map((k) => ({ class: k, label: labels?.[k] ?? String(k), probability: probs[k] })) });
  });
  return { predictions, ...run };
}

export interface MaskPrediction {
  source: string;
  /** H·W class indices, row by row. */
  mask: Uint8Array;
  /** The share of the pixels predicted each class, by class. */
  shares: number[];
}

/**
 * A dense model's masks: at each pixel the class with the largest output (a single channel: class 1
 * where its logit, or its sigmoid's probability, says more likely than not).
 */
export async function predictMasks(onnx: Uint8Array, model: CheckedModel, samples: Sample[], opts: PredictOptions): Promise<{ masks: MaskPrediction[]; device: string; notice?: string }> {
  const { channels: K, height, width } = denseOutput(model.output)!;
  const classes = K === 1 ? 2 : K;
  if (classes > 256) throw new UserError(`model ${model.name} predicts ${classes} classes; a PNG mask holds at most 256 (8-bit values)`);
  const threshold = finalLayer(model.root)?.layer.probabilities === 'sigmoid' ? 0.5 : 0;
  const P = height * width;
  const masks: MaskPrediction[] = [];
  const run = await runBatches(onnx, model, samples, opts, (s, out) => {
    const mask = new Uint8Array(P);
    const counts = new Array<number>(classes).fill(0);
    for (let p = 0; p < P; p++) {
      let best = 0;
      if (K === 1) best = out[p] > threshold ? 1 : 0;
      else for (let k = 1; k < K; k++) if (out[k * P + p] > out[best * P + p]) best = k;
      mask[p] = best;
      counts[best]++;
    }
    masks.push({ source: s.source, mask, shares: counts.map((c) => c / P) });
  });
  return { masks, ...run };
}

/** Writes a mask as an 8-bit grayscale PNG (pixel value = class index), atomically. */
export async function writeMaskPng(file: string, mask: Uint8Array, [height, width]: readonly [number, number]): Promise<void> {
  const png = await sharp(Buffer.from(mask), { raw: { width, height, channels: 1 } }).toColourspace('b-w').png().toBuffer();
  writeFileAtomic(file, png);
}
