/**
 * Segmentation end to end: a seeded set of discs and squares on noise (image/mask PNG pairs under
 * train/ and test/), a dense model trained with `cnnc train`, its mean IoU on the test pairs, and
 * the same training in PyTorch (the exported train.py, `cnnc export --torch`) from the same initial
 * weights (cnnc compile --train's init.ckpt): the two mean IoUs within 0.02. The runs differ in
 * data order and augmentation draws (each its own generator), so the tolerance is statistical.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCommand } from '../src/cli/compile.ts';
import { exportCommand } from '../src/cli/export.ts';
import { trainCommand } from '../src/cli/train.ts';
import { pythonWith } from './helpers/python.ts';
import { writeSegmentationSet } from './helpers/segmentation.ts';

const python = pythonWith('torch');
const pillow = python !== null && spawnSync(python, ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0;
if (!python || !pillow) console.warn('segmentation-train: skipping the PyTorch run: no python3 with torch and Pillow (python3-torch, python3-pil)');

const work = mkdtempSync(join(tmpdir(), 'cnnc-seg-train-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The model the test trains: SEG_MODEL in examples/segmentation (see its comment). */
export const SEG_FILE = join(import.meta.dirname, '..', 'examples', 'segmentation', 'shapes.cnn');

const lastEpoch = (file: string) => JSON.parse(readFileSync(file, 'utf8').trim().split('\n').at(-1)!);

describe('a segmentation model trained by cnnc and by the exported train.py', () => {
  // About 10 s for cnnc and 2 minutes for PyTorch 1.13 on two busy CPU cores.
  it('reaches a test mean IoU that the PyTorch run matches within 0.02', { timeout: 400_000 }, async () => {
    const data = join(work, 'shapes');
    await writeSegmentationSet(join(data, 'train'), 192, 32, 11);
    await writeSegmentationSet(join(data, 'test'), 64, 32, 12);
    const init = join(work, 'init');
    const quiet = { log: { write: () => true }, print: () => {}, handleSigint: false };
    await silenced(() => compileCommand(SEG_FILE, { output: init, train: true }));
    const started = performance.now();
    await trainCommand(SEG_FILE, { data, out: join(work, 'cnnc'), init: join(init, 'init.ckpt') }, quiet);
    const cnncSeconds = (performance.now() - started) / 1000;
    const cnnc = lastEpoch(join(work, 'cnnc', 'train.jsonl'));
    console.log(`segmentation: cnnc train ${cnncSeconds.toFixed(1)} s: test pixel accuracy ${cnnc.test_acc.toFixed(4)}, test mIoU ${cnnc.test_miou.toFixed(4)}`);
    expect(cnnc.test_miou).toBeGreaterThan(0.6);
    if (!python || !pillow) return;

    const pkg = join(work, 'torch');
    expect(await silenced(async () => exportCommand(SEG_FILE, { torch: true, output: pkg }))).toBe(0);
    const t0 = performance.now();
    const r = spawnSync(python, ['train.py', '--data', data, '--out', join(work, 'torch-run'), '--device', 'cpu', '--init', join(init, 'init.ckpt')],
      { cwd: pkg, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const torch = lastEpoch(join(work, 'torch-run', 'train.jsonl'));
    console.log(`segmentation: train.py ${((performance.now() - t0) / 1000).toFixed(1)} s: test pixel accuracy ${torch.test_acc.toFixed(4)}, test mIoU ${torch.test_miou.toFixed(4)}`);
    expect(Math.abs(torch.test_miou - cnnc.test_miou)).toBeLessThan(0.02);
  });
});

/** Runs fn with console output dropped (the commands print their summaries). */
async function silenced<T>(fn: () => Promise<T> | T): Promise<T> {
  const log = console.log, error = console.error;
  console.log = console.error = () => {};
  try { return await fn(); } finally { console.log = log; console.error = error; }
}
