/**
 * Where onnxruntime spends the time in cnnc's training step: the emitted training-step graph
 * (src/compiler/emit/train.ts) run as the training runner runs it, with ORT's profiler on: kernel
 * time by op type (totals), then by layer (per-node medians, less swayed by other processes than totals).
 *   node --import tsx bench/ort-inspect-train.ts FILE.cnn [BATCH] [STEPS]
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { emitTrainStep, NEW_PREFIX, TRAIN_INPUTS } from '../src/compiler/emit/train.ts';
import { initialState, trainPlan } from '../src/compiler/emit/train-plan.ts';
import { loadModel } from './models.ts';
import { ortOptions } from './bench-options.ts';
import { profileByLayer, summariseProfile } from './util.ts';

const [file, batchArg, stepsArg] = process.argv.slice(2);
const batch = Number(batchArg ?? 64);
const steps = Number(stepsArg ?? 20);
const model = loadModel(file);
const plan = trainPlan(model, { ...model.train, batch });
const bytes = emitTrainStep(plan);
const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-ort-train-'));
try {
  const session = await ort.InferenceSession.create(bytes, { ...ortOptions(), enableProfiling: true, profileFilePrefix: path.join(dir, 'profile') });
  const values = new Map<string, ort.Tensor>();
  for (const [name, t] of initialState(plan)) values.set(name, new ort.Tensor('float32', t.data, t.dims));
  const dims = [batch, ...model.input!];
  const x = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 12.9898) * 0.8;
  const y = BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % model.output![0]));
  const updated = plan.state.filter((e) => e.updated).map((e) => e.name);
  const step = async (k: number) => {
    const feeds: Record<string, ort.Tensor> = Object.fromEntries(values);
    feeds[TRAIN_INPUTS.input] = new ort.Tensor('float32', x, dims);
    feeds[TRAIN_INPUTS.labels] = new ort.Tensor('int64', y, [batch]);
    feeds[TRAIN_INPUTS.lr] = new ort.Tensor('float32', Float32Array.of(plan.config.optimizer.lr), []);
    feeds[TRAIN_INPUTS.step] = new ort.Tensor('int64', BigInt64Array.of(BigInt(k)), []);
    const out = await session.run(feeds);
    for (const name of updated) values.set(name, out[NEW_PREFIX + name]);
  };
  for (let i = 0; i < 3; i++) await step(i);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step(3 + i);
  console.log(`${steps} steps at batch ${batch}: ${((performance.now() - t0) / steps).toFixed(2)} ms per step (profiling on)`);
  session.endProfiling();
  await session.release();
  const profile = readdirSync(dir).find((f) => f.startsWith('profile'));
  if (profile) {
    console.log(`kernel time by op type (all ${steps + 3} profiled steps, per step):`);
    for (const line of summariseProfile(path.join(dir, profile), steps + 3)) console.log(line);
    for (const line of profileByLayer(path.join(dir, profile))) console.log(line);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
