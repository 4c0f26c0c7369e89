/**
 * Checks that bench/torch_model.py builds the same network as cnnc: PyTorch draws random weights
 * and batch-norm statistics, computes its eval output on a random batch and hands both over; cnnc
 * compiles the model with those weights (matched by name) and runs it on onnxruntime. The outputs
 * must agree to float32 rounding. Run alone: `node --import tsx bench/equivalence.ts [FILE.cnn ...]`
 * (default: bench/models/*.cnn, the tutorials and the zoo).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { CheckedModel } from '../src/compiler/model.ts';
import { compileInference, type WeightTensor } from '../src/compiler/emit/inference.ts';
import { loadModel, modelToJson } from './model-json.ts';
import { TorchProcess, torchAvailable, TORCH_INSTALL_HINT } from './torch-client.ts';

function readExport(file: string): Map<string, WeightTensor> {
  const index = JSON.parse(readFileSync(file + '.json', 'utf8')) as { name: string; dims: number[]; offset: number; length: number }[];
  const buf = readFileSync(file);
  const out = new Map<string, WeightTensor>();
  for (const t of index) {
    const data = new Float32Array(t.length);
    data.set(new Float32Array(buf.buffer, buf.byteOffset + t.offset, t.length));
    out.set(t.name, { dims: t.dims, data });
  }
  return out;
}

export interface Equivalence {
  model: string;
  params: number;
  maxAbsDiff: number;
  /** maxAbsDiff / max |output|. */
  relative: number;
}

/** Compares cnnc and PyTorch on one model with shared random weights; throws when they differ. */
export async function checkEquivalence(torch: TorchProcess, model: CheckedModel, batch = 2, tolerance = 1e-4): Promise<Equivalence> {
  const id = `eq:${model.name}`;
  const { params } = await torch.send<{ params: number }>({ cmd: 'load', id, model: modelToJson(model), batch });
  const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-eq-'));
  try {
    const file = path.join(dir, 'weights.bin');
    await torch.send({ cmd: 'export', id, path: file, seed: 1 });
    const tensors = readExport(file);
    const bytes = compileInference(model, { init: tensors }).bytes;
    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
    const x = tensors.get('__input__')!;
    const want = tensors.get('__output__')!;
    const got = (await session.run({ input: new ort.Tensor('float32', x.data, [...x.dims]) })).logits;
    await session.release();
    if (got.dims.join() !== want.dims.join()) throw new Error(`${model.name}: cnnc output ${got.dims.join('x')}, PyTorch ${want.dims.join('x')}`);
    const g = got.data as Float32Array;
    let maxAbsDiff = 0;
    let scale = 0;
    for (let i = 0; i < g.length; i++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(g[i] - want.data[i]));
      scale = Math.max(scale, Math.abs(want.data[i]));
    }
    const relative = maxAbsDiff / Math.max(scale, 1e-12);
    if (!(relative <= tolerance)) throw new Error(`${model.name}: cnnc and PyTorch outputs differ: max |diff| ${maxAbsDiff.toExponential(2)} (relative ${relative.toExponential(2)})`);
    return { model: model.name, params, maxAbsDiff, relative };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await torch.send({ cmd: 'drop', id });
  }
}

export const exampleFiles = (): string[] => [
  ...readdirSync('bench/models').filter((f) => f.endsWith('.cnn')).map((f) => `bench/models/${f}`),
  ...readdirSync('examples/tutorials').filter((f) => f.endsWith('.cnn')).sort().map((f) => `examples/tutorials/${f}`),
  ...readdirSync('examples/zoo').filter((f) => f.endsWith('.cnn')).sort().map((f) => `examples/zoo/${f}`),
];

if (import.meta.url === `file://${process.argv[1]}`) {
  const avail = torchAvailable();
  if (!avail.ok) {
    console.error(`PyTorch is not available: ${avail.reason}; ${TORCH_INSTALL_HINT}`);
    process.exit(1);
  }
  const files = process.argv.length > 2 ? process.argv.slice(2) : exampleFiles();
  const torch = new TorchProcess(2);
  let failed = 0;
  console.log('| model | file | parameters | max abs diff | relative |\n|---|---|---:|---:|---:|');
  for (const file of files) {
    const model = loadModel(file);
    try {
      const r = await checkEquivalence(torch, model, 2);
      console.log(`| ${r.model} | ${file} | ${r.params.toLocaleString('en-US')} | ${r.maxAbsDiff.toExponential(2)} | ${r.relative.toExponential(2)} |`);
    } catch (e) {
      failed++;
      console.log(`| ${model.name} | ${file} | FAILED: ${(e as Error).message.replace(/\n/g, ' ')} | | |`);
    }
  }
  await torch.close();
  process.exit(failed ? 1 : 0);
}
