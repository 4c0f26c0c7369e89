/**
 * Where onnxruntime spends the time on a compiled model: the emitted and the optimised graph's op
 * counts, and a profile (ORT's own, per op type) of a few runs.
 *   node --import tsx bench/ort-inspect.ts FILE.cnn [BATCH] [RUNS]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { loadModel } from './models.ts';
import { ortOptions } from './bench-options.ts';
import { summariseProfile } from './util.ts';

const count = (bytes: Uint8Array) => {
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  const c: Record<string, number> = {};
  for (const n of model.graph?.node ?? []) {
    const k = `${n.domain ? n.domain + ':' : ''}${n.opType}`;
    c[k] = (c[k] ?? 0) + 1;
  }
  return Object.entries(c).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
};

const [file, batchArg, runsArg] = process.argv.slice(2);
const batch = Number(batchArg ?? 8);
const runs = Number(runsArg ?? 5);
const model = loadModel(file);
const bytes = compileInference(model, {}).bytes;
const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-ort-'));
try {
  const optimized = path.join(dir, 'optimized.onnx');
  await ort.InferenceSession.create(bytes, { ...ortOptions(), optimizedModelFilePath: optimized });
  console.log(`emitted:   ${count(bytes)}`);
  console.log(`optimised: ${count(readFileSync(optimized))}`);

  const session = await ort.InferenceSession.create(bytes, { ...ortOptions(), enableProfiling: true, profileFilePrefix: path.join(dir, 'profile') });
  const dims = [batch, ...model.input!];
  const feeds = { input: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.1), dims) };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  console.log(`${runs} runs at batch ${batch}: ${((performance.now() - t0) / runs).toFixed(1)} ms per run`);
  session.endProfiling();
  await session.release();
  const profile = readdirSync(dir).find((f) => f.startsWith('profile'));
  if (profile) {
    console.log(`kernel time by op type (all ${runs + 2} profiled runs, per run):`);
    for (const line of summariseProfile(path.join(dir, profile), runs + 2)) console.log(line);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
