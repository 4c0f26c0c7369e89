/**
 * Checks that the exported model.py (`cnnc export --torch`) is the same network as cnnc's graph:
 * PyTorch draws random weights and batch-norm statistics, computes its eval output on a random
 * batch and saves all with model.py's save_checkpoint; cnnc compiles the model with those weights
 * (matched by name) and runs it on onnxruntime. The outputs must agree to float32 rounding. Run alone: `node --import tsx bench/equivalence.ts [FILE.cnn ...]`
 * (default: bench/models/*.cnn, the tutorials and the zoo).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { CheckedModel } from '../src/compiler/model.ts';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { loadCheckpointSync } from '../src/runtime/checkpoint.ts';
import { loadModel, torchModel } from './models.ts';
import { TorchProcess, torchAvailable, TORCH_INSTALL_HINT } from './torch-client.ts';

export interface Equivalence {
  model: string;
  params: number;
  maxAbsDiff: number;
  /** maxAbsDiff / max |output|. */
  relative: number;
}

/** Compares cnnc and PyTorch on one model (of `file`) with shared random weights; throws when they differ. */
export async function checkEquivalence(torch: TorchProcess, file: string, model: CheckedModel, batch = 2, tolerance = 1e-4): Promise<Equivalence> {
  const id = `eq:${model.name}`;
  const { params } = await torch.send<{ params: number }>({ cmd: 'load', id, ...torchModel(file, model), batch });
  const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-eq-'));
  try {
    const ckpt = path.join(dir, 'weights.ckpt');
    await torch.send({ cmd: 'export', id, path: ckpt, seed: 1 });
    const tensors = loadCheckpointSync(ckpt).tensors;
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
      const r = await checkEquivalence(torch, file, model, 2);
      console.log(`| ${r.model} | ${file} | ${r.params.toLocaleString('en-US')} | ${r.maxAbsDiff.toExponential(2)} | ${r.relative.toExponential(2)} |`);
    } catch (e) {
      failed++;
      console.log(`| ${model.name} | ${file} | FAILED: ${(e as Error).message.replace(/\n/g, ' ')} | | |`);
    }
  }
  await torch.close();
  process.exit(failed ? 1 : 0);
}
