/**
 * onnxruntime intra-op spinning on vs off for inference, interleaved on one model:
 *   node --import tsx bench/spin-ab.ts FILE.cnn BATCH [ROUNDS]
 * Prints images/s per round for each setting and the others' load (cores) during the round.
 */
import * as ort from 'onnxruntime-node';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { loadModel } from './models.ts';
import { ortOptions } from './bench-options.ts';
import { fmt, median, sleep, withLoad } from './util.ts';

const [file, batchArg, roundsArg] = process.argv.slice(2);
const batch = Number(batchArg ?? 8);
const rounds = Number(roundsArg ?? 6);
const model = loadModel(file);
const bytes = compileInference(model, {}).bytes;
const base = ortOptions();
const sessions = {
  spin: await ort.InferenceSession.create(bytes, { ...base, extra: { session: { intra_op: { allow_spinning: '1' } } } }),
  nospin: await ort.InferenceSession.create(bytes, { ...base, extra: { session: { intra_op: { allow_spinning: '0' } } } }),
};
const dims = [batch, ...model.input!];
const feeds = { input: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.1), dims) };
const time = async (s: ort.InferenceSession, n: number) => {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    t.push((performance.now() - t0) / 1000);
  }
  return t;
};
const warm = await time(sessions.spin, 3);
await time(sessions.nospin, 3);
const iters = Math.max(5, Math.round(0.8 / Math.min(...warm)));
for (let r = 0; r < rounds; r++) {
  const cells: string[] = [];
  for (const key of (r % 2 ? ['nospin', 'spin'] : ['spin', 'nospin']) as (keyof typeof sessions)[]) {
    await sleep(100);
    const m = await withLoad([], () => time(sessions[key], iters));
    cells.push(`${key} ${fmt(batch / median(m.value))} img/s (load ${m.others.toFixed(2)})`);
  }
  console.log(`round ${r + 1}: ${cells.join(', ')}`);
}
