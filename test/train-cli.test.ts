/**
 * `cnnc compile --train -o DIR`: the graphs, initial checkpoint and signature, usable with plain
 * onnxruntime outside cnnc; and `cnnc train --init FILE` starting from pretrained weights.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { compileCommand } from '../src/cli/compile.ts';
import { trainCommand } from '../src/cli/train.ts';
import { loadCheckpoint } from '../src/runtime/checkpoint.ts';
import { readWeightFile } from '../src/runtime/weights/index.ts';
import { predictCommand } from '../src/cli/predict.ts';
import { onnxCheck, onnxPython } from './helpers/onnx-check.ts';
import { uniform } from './helpers/random.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cnnc-train-cli-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const log = console.log, error = console.error;
  console.log = () => {};
  console.error = () => {};
  try { return await fn(); } finally { console.log = log; console.error = error; }
}

describe('cnnc compile --train', () => {
  it('writes train_step, eval and train_loop graphs, init.ckpt and train.json that run on plain onnxruntime', async () => {
    const dir = tempDir();
    const status = await quietly(() => compileCommand('examples/tutorials/004_fashion_mnist.cnn', { output: dir, train: true, loopSteps: 2 }));
    expect(status).toBe(0);
    for (const f of ['train_step.onnx', 'eval.onnx', 'train_loop.onnx', 'init.ckpt', 'train.json']) expect(existsSync(join(dir, f)), f).toBe(true);
    if (onnxPython()) expect(onnxCheck(join(dir, 'train_step.onnx')).error).toBeUndefined();
    const sig = JSON.parse(readFileSync(join(dir, 'train.json'), 'utf8')) as { inputs: { state: { name: string; updated: boolean }[] } };
    const init = await loadCheckpoint(join(dir, 'init.ckpt'));
    expect(sig.inputs.state.map((e) => e.name)).toEqual([...init.tensors.keys()]);
    // One step with nothing but onnxruntime: feed the checkpoint, the batch, lr and step.
    const session = await ort.InferenceSession.create(join(dir, 'train_step.onnx'), { intraOpNumThreads: 2 });
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of init.tensors) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
    feeds.input = new ort.Tensor('float32', uniform(1, 8 * 784, 0, 1), [8, 1, 28, 28]);
    feeds.labels = new ort.Tensor('int64', BigInt64Array.from({ length: 8 }, (_, i) => BigInt(i)), [8]);
    feeds.lr = new ort.Tensor('float32', Float32Array.of(1e-3), []);
    feeds.step = new ort.Tensor('int64', BigInt64Array.of(0n), []);
    const out = await session.run(feeds);
    expect((out.loss.data as Float32Array)[0]).toBeGreaterThan(1.5); // about ln 10 at the start
    expect(out['new:conv1.weight'].dims).toEqual([32, 1, 3, 3]);
    expect(Object.keys(out).filter((k) => k.startsWith('new:'))).toHaveLength(sig.inputs.state.filter((e) => e.updated).length);
    await session.release();
  });
});

describe('cnnc train --init', () => {
  it('starts from pretrained weights matched by name and reports the rest', async () => {
    const dir = tempDir();
    const file = join(dir, 'm.cnn');
    writeFileSync(file, 'model M {\n  input 1x28x28\n  conv 2 5x5 stride=3 -> relu -> flatten -> head: dense 10\n  train {\n    batch: 16\n  }\n}\n');
    const pre = join(dir, 'pre');
    await quietly(() => compileCommand(file, { output: pre, train: true, seed: 9 }));
    const lines: string[] = [];
    const log = { isTTY: false, columns: 100, write: (s: string) => { lines.push(s); return true; } };
    if (!existsSync('/usr/share/datasets/fashion-mnist')) return;
    await trainCommand(file, { data: '/usr/share/datasets/fashion-mnist', epochs: '1', limitTrain: '16', limitTest: '16', threads: '1', out: join(dir, 'run'), init: join(pre, 'init.ckpt') },
      { log, print: () => {}, handleSigint: false });
    expect(lines.join('')).toMatch(/init from .*init\.ckpt: 4 tensors matched/);
  });
});

describe('class names from the data set', () => {
  it('folder names are stored in the checkpoint, and predict prints them for a model without classes=', async () => {
    const dir = tempDir();
    const file = join(dir, 'm.cnn');
    writeFileSync(file, 'model M {\n  input 1x4x4\n  flatten -> dense 2\n  train {\n    batch: 4\n    epochs: 1\n  }\n}\n');
    const sharp = (await import('sharp')).default;
    for (const [cls, value] of [['dark', 20], ['light', 230]] as const) {
      mkdirSync(join(dir, 'data', cls), { recursive: true });
      for (let i = 0; i < 5; i++) {
        await sharp(Buffer.alloc(16, value + i), { raw: { width: 4, height: 4, channels: 1 } }).toColourspace('b-w').png().toFile(join(dir, 'data', cls, `${i}.png`));
      }
    }
    const lines: string[] = [];
    const log = { isTTY: false, write: (s: string) => { lines.push(s); return true; } };
    await trainCommand(file, { data: join(dir, 'data'), out: join(dir, 'run'), threads: '1', valSplit: '0.2' }, { log, print: () => {}, handleSigint: false });
    expect(lines.join('')).toMatch(/training M: 1 epoch of 2 steps \(batch 4\), 8 training and 2 val samples/);
    const weights = readWeightFile(join(dir, 'run', 'last.ckpt'));
    expect(weights.classes).toEqual(['dark', 'light']);
    const printed: string[] = [];
    const log0 = console.log;
    console.log = (s: string) => { printed.push(s); };
    try {
      await predictCommand(file, [join(dir, 'data', 'light', '0.png')], { weights: join(dir, 'run', 'last.ckpt'), top: 2, device: 'cpu' });
    } finally { console.log = log0; }
    expect(printed[0]).toMatch(/0\.png: (dark|light) \d+\.\d%, (dark|light) \d+\.\d%$/);
  });
});
