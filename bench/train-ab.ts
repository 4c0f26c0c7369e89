/**
 * The training runner with onnxruntime's intra-op spinning off (its default: the trainer prepares
 * batches on the same cores) against on, interleaved on one model, batch 64, 2 threads:
 *   node --import tsx bench/train-ab.ts FILE.cnn [ROUNDS]
 * Per round and setting: images/s (64 / median step time), the process's CPU time per step
 * (user + system, which other processes' load disturbs much less than wall time) and the others'
 * load (cores); then the median of the per-round ratios (on / off), over all rounds and quiet ones.
 */
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import type { StepBatch, TrainStepRunner } from '../src/runtime/train-step.ts';
import { loadModel } from './models.ts';
import { fmt, fmtRatio, median, sleep, withLoad } from './util.ts';

const [file, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 6);
const BATCH = 64, THREADS = 2, QUIET = 0.25;
const model = loadModel(file);
const config = { ...model.train, batch: BATCH };
const x = Float32Array.from({ length: BATCH * model.input!.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 12.9898) * 0.8);
const batch: StepBatch = { x, y: BigInt64Array.from({ length: BATCH }, (_, i) => BigInt((i * 7) % model.output![0])), count: BATCH };
const runners: Record<'off' | 'on', TrainStepRunner> = {
  off: await OrtTrainRunner.create(model, config, { device: 'cpu', threads: THREADS, batch: BATCH, spinning: false }),
  on: await OrtTrainRunner.create(model, config, { device: 'cpu', threads: THREADS, batch: BATCH, spinning: true }),
};
let step = 0;
/** Wall seconds per step, and CPU milliseconds per step. */
async function steps(runner: TrainStepRunner, n: number): Promise<{ wall: number[]; cpu: number }> {
  const wall: number[] = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await runner.run(batch, config.optimizer.lr, step++);
    wall.push((performance.now() - t0) / 1000);
  }
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 / n };
}
const warm = await steps(runners.off, 5);
await steps(runners.on, 5);
const iters = Math.max(5, Math.round(1 / median(warm.wall)));
const ratios: number[] = [], quiet: number[] = [];
for (let r = 0; r < rounds; r++) {
  const rate: Record<string, number> = {}, cells: string[] = [];
  let load = 0;
  for (const key of (r % 2 ? ['on', 'off'] : ['off', 'on']) as ('off' | 'on')[]) {
    await sleep(100);
    const m = await withLoad([], () => steps(runners[key], iters));
    rate[key] = BATCH / median(m.value.wall);
    load = Math.max(load, m.others);
    cells.push(`spinning ${key} ${fmt(rate[key])} images/s, ${m.value.cpu.toFixed(1)} ms CPU per step`);
  }
  ratios.push(rate.on / rate.off);
  if (load < QUIET) quiet.push(rate.on / rate.off);
  console.log(`round ${r + 1}: ${cells.join('; ')}; on/off ${fmtRatio(rate.on / rate.off)} (others' load ${load.toFixed(2)})`);
}
console.log(`${model.name}: spinning on/off, median of per-round ratios ${fmtRatio(median(ratios))}; quiet rounds ${quiet.length ? fmtRatio(median(quiet)) : '—'} (${quiet.length})`);
for (const runner of Object.values(runners)) await runner.dispose?.();
