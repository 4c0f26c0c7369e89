/**
 * End to end: `cnnc train` (the trainer with the onnxruntime runner) on real Fashion-MNIST
 * (/usr/share/datasets/fashion-mnist): the tutorial model learns on a 3,000-image slice in one
 * epoch, and 2 epochs equal 1 epoch + resume + 1 epoch, tensor for tensor.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainCommand, type TrainCliOptions } from '../src/cli/train.ts';
import { loadCheckpoint } from '../src/runtime/checkpoint.ts';
import { formatWeightReport, loadModelWeights } from '../src/runtime/weights/index.ts';
import { checkModel } from './helpers/grad-check.ts';

const DATA = '/usr/share/datasets/fashion-mnist';
const haveData = existsSync(join(DATA, 'train-images-idx3-ubyte.gz')) || existsSync(join(DATA, 'train-images-idx3-ubyte'));
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cnnc-train-e2e-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const quiet = () => {
  const lines: string[] = [];
  return { lines, log: { isTTY: false, columns: 100, write: (s: string) => { lines.push(s); return true; } }, print: (l: string) => { lines.push(l); } };
};

async function trainCli(file: string, opts: Partial<TrainCliOptions>) {
  const q = quiet();
  const res = await trainCommand(file, { data: DATA, threads: '2', ...opts }, { log: q.log, print: q.print, handleSigint: false });
  return { res, text: q.lines.join('') };
}

describe.runIf(haveData)('cnnc train on Fashion-MNIST', () => {
  it('the tutorial model reaches well above chance on a 3,000-image slice in one epoch', async () => {
    const out = tempDir();
    const { res } = await trainCli('examples/tutorials/004_fashion_mnist.cnn', { epochs: '1', limitTrain: '3000', limitTest: '1000', out });
    const last = res.history.at(-1)!;
    expect(last.test_acc).toBeGreaterThan(0.6);
    expect(existsSync(join(out, 'last.ckpt'))).toBe(true);
  });

  it('2 epochs equal 1 epoch + resume + 1 epoch, tensor for tensor (bn, seeded dropout, momentum)', async () => {
    const dir = tempDir();
    const file = join(dir, 'tiny.cnn');
    writeFileSync(file, `model Tiny {
  input 1x28x28
  conv 4 5x5 stride=2 -> bn -> relu -> maxpool 2 -> flatten -> dropout 0.2 -> dense 10
  train {
    optimizer: sgd lr=0.05 momentum=0.9 nesterov=on weight_decay=1e-4
    schedule: step step_size=1 gamma=0.5
    batch: 32
    epochs: 2
    seed: 3
  }
}
`);
    const common = { limitTrain: '400', limitTest: '100', threads: '1' };
    const straight = join(dir, 'straight'), resumed = join(dir, 'resumed');
    await trainCli(file, { ...common, out: straight });
    await trainCli(file, { ...common, out: resumed, epochs: '1' });
    const { text } = await trainCli(file, { ...common, out: resumed, resume: true });
    expect(text).toMatch(/resuming Tiny at epoch 2/);
    const a = await loadCheckpoint(join(straight, 'last.ckpt')), b = await loadCheckpoint(join(resumed, 'last.ckpt'));
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    expect([...a.tensors.keys()]).toContain('optim.conv1.weight.momentum');
    for (const [name, t] of a.tensors) expect([...b.tensors.get(name)!.data], name).toEqual([...t.data]);
  });

  it('loadModelWeights matches a checkpoint by name and reports what did not match and why', async () => {
    const dir = tempDir();
    const source = (units: number) => `model P {\n  input 1x28x28\n  conv 4 5x5 stride=2 -> bn -> relu -> flatten -> dense ${units}\n}\n`;
    const file = join(dir, 'p.cnn');
    writeFileSync(file, source(10));
    await trainCli(file, { epochs: '1', limitTrain: '64', limitTest: '32', out: join(dir, 'run') });
    const { match } = loadModelWeights(checkModel(source(7)), join(dir, 'run', 'last.ckpt'), { transfer: true });
    expect(match.by).toBe('name');
    expect(match.pairs.map((p) => p.to)).toEqual(['conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var']);
    expect(match.initialised).toEqual([
      { name: 'dense1.weight', dims: [7, 576], why: '10×576 in the file' },
      { name: 'dense1.bias', dims: [7], why: '10 in the file' },
    ]);
    expect(match.tensors.has('dense1.weight')).toBe(false);
    expect(formatWeightReport(match, { purpose: 'init' })).toMatch(/dense1\.weight 7×576 \(10×576 in the file\)/);
  });
});
