/**
 * Adam and AdamW in the emitted training step against PyTorch's torch.optim (run by
 * test/helpers/adam_torch.py): one dense layer with cross-entropy, 50 steps, at beta2 0.999, 0.9999
 * and 0.99999, where a bias correction on float32-rounded betas is off by up to 0.068% per step.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultTrainConfig, type TrainConfig } from '../src/compiler/train-config.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import type { StepBatch } from '../src/runtime/train-step.ts';
import { checkModel } from './helpers/grad-check.ts';
import { uniform } from './helpers/random.ts';
import { pythonWith } from './helpers/python.ts';

const SCRIPT = fileURLToPath(new URL('./helpers/adam_torch.py', import.meta.url));
const [D, K, N, STEPS] = [6, 4, 8, 50];
// The graph takes lr as a float32 input; PyTorch gets the same rounded value.
const LR = Math.fround(0.01);
/**
 * Agreement to float32 rounding: the two implementations (different summation orders in the
 * gradients) end 50 steps a few float32 ulps apart, |a - b| / (1 + |b|) about 6e-8. The old bias
 * correction was off by 1.9e-6 at beta2 0.999, 2.2e-5 at 0.9999 and 1.9e-4 at 0.99999.
 */
const TOL = 5e-7;

const python = pythonWith('torch');
if (!python) console.warn('adam-torch: skipping the comparison with PyTorch: no python3 with torch (install python3-torch, or set CNNC_PYTHON)');

const batches: StepBatch[] = [1, 2, 3, 4].map((seed) => ({
  x: uniform(seed, N * D, -2, 2),
  y: BigInt64Array.from({ length: N }, (_, i) => BigInt((i * 3 + seed) % K)),
  count: N,
}));

interface Reference { weight: number[]; bias: number[]; losses: number[] }
interface Params { weight: ArrayLike<number>; bias: ArrayLike<number> }

const job = (opt: TrainConfig['optimizer'], start: Params, legacy: boolean) => ({
  optimizer: opt.kind, lr: LR, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weight_decay: opt.weight_decay,
  inputs: D, classes: K, weight: [...start.weight as Float32Array], bias: [...start.bias as Float32Array], steps: STEPS, legacy,
  batches: batches.map((b) => ({ x: [...b.x], y: Array.from(b.y as BigInt64Array, Number) })),
});

/** Runs every job in one Python process (importing torch takes seconds). */
function torchReferences(jobs: ReturnType<typeof job>[]): Reference[] {
  const r = spawnSync(python!, [SCRIPT], { input: JSON.stringify(jobs), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`adam_torch.py failed (status ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Reference[];
}

/** The largest |a - b| / (1 + |b|) over both tensors. */
function maxError(got: Params, want: Params): number {
  let worst = 0;
  for (const key of ['weight', 'bias'] as const) {
    for (let i = 0; i < want[key].length; i++) worst = Math.max(worst, Math.abs(got[key][i] - want[key][i]) / (1 + Math.abs(want[key][i])));
  }
  return worst;
}

/** STEPS training steps of the emitted graph from cnnc's initial parameters. */
async function runGraph(opt: TrainConfig['optimizer']): Promise<{ start: Params; end: Params; losses: number[] }> {
  const config: TrainConfig = { ...defaultTrainConfig(), optimizer: opt, loss: { kind: 'cross_entropy', smoothing: 0 } };
  const runner = await OrtTrainRunner.create(checkModel(`model A {\n  input ${D}\n  fc: dense ${K}\n}\n`), config, { device: 'cpu', threads: 1, batch: N });
  const params = () => { const s = runner.state(); return { weight: s.get('fc.weight')!.data, bias: s.get('fc.bias')!.data }; };
  const start = params();
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) losses.push((await runner.run(batches[s % batches.length], LR, s)).loss);
  const end = params();
  await runner.dispose();
  return { start, end, losses };
}

const cases = (['adam', 'adamw'] as const).flatMap((kind) => [0.999, 0.9999, 0.99999].map((beta2): TrainConfig['optimizer'] => ({
  ...defaultTrainConfig().optimizer, kind, lr: LR, beta1: 0.9, beta2, eps: 1e-8, weight_decay: kind === 'adam' ? 1e-3 : 0.01,
})));

describe.skipIf(!python)('Adam and AdamW vs torch.optim over 50 steps', () => {
  const results: { graph: Awaited<ReturnType<typeof runGraph>>; torch: Reference; legacy: Reference }[] = [];
  beforeAll(async () => {
    const graphs: Awaited<ReturnType<typeof runGraph>>[] = [];
    for (const opt of cases) graphs.push(await runGraph(opt));
    const refs = torchReferences(cases.flatMap((opt, i) => [job(opt, graphs[i].start, false), job(opt, graphs[i].start, true)]));
    graphs.forEach((graph, i) => results.push({ graph, torch: refs[2 * i], legacy: refs[2 * i + 1] }));
  });
  cases.forEach((opt, i) => {
    it(`${opt.kind}, beta2 ${opt.beta2}`, () => {
      const { graph, torch, legacy } = results[i];
      graph.losses.forEach((l, s) => expect(l, `loss at step ${s}`).toBeCloseTo(torch.losses[s], 5));
      expect(maxError(graph.end, torch)).toBeLessThan(TOL);
      // The parameters moved far more than the tolerance, so agreement says something.
      expect(maxError(graph.start, torch)).toBeGreaterThan(1e5 * TOL);
      // The bias correction on float32 betas (the graphs before the fix) fails this tolerance.
      expect(maxError(legacy, torch)).toBeGreaterThan(TOL);
    });
  });
});
