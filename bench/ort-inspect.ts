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
import { loadModel } from './model-json.ts';
import { ortOptions } from './bench-options.ts';

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
    const events = JSON.parse(readFileSync(path.join(dir, profile), 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
    const byOp = new Map<string, number>();
    let total = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      total += e.dur;
    }
    console.log(`kernel time by op type (all ${runs + 2} profiled runs, ms per run):`);
    for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1])) {
      console.log(`  ${op.padEnd(24)} ${(us / 1000 / (runs + 2)).toFixed(2).padStart(9)}  ${((100 * us) / total).toFixed(1)}%`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
