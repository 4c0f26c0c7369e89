/** `cnnc predict` end to end: images and IDX files in, top-k classes out; clear errors for bad input. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/runtime/checkpoint.ts';
import { writeIdx } from '../src/runtime/idx.ts';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'cnnc-predict-'));
const model = join(dir, 'tiny.cnn');
const weights = join(dir, 'tiny.onnx');

function cnnc(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'cnnc.js'), ...args], { cwd: root, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  writeFileSync(model, 'model tiny {\n  input 1x8x8 mean=[0.5] std=[0.5] classes=["zero", "one", "two"]\n  conv 4 3x3 -> relu -> flatten -> dense 3\n}\n');
  expect(cnnc('compile', model, '-o', weights).code).toBe(0);
  const gray = Buffer.alloc(8 * 8, 128);
  await sharp(gray, { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(join(dir, 'gray.png'));
  const rgb = Buffer.alloc(16 * 16 * 3, 200);
  await sharp(rgb, { raw: { width: 16, height: 16, channels: 3 } }).jpeg().toFile(join(dir, 'big.jpg'));
  const colour = Buffer.from(Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256)); // not all gray: stays 3 channels
  await sharp(colour, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(join(dir, 'colour8.png'));
  await sharp(Buffer.alloc(16 * 16, 90), { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(join(dir, 'gray16.png'));
  writeIdx(join(dir, 'images-idx3-ubyte'), [3, 8, 8], new Uint8Array(3 * 64).fill(7));
  writeIdx(join(dir, 'wrong-idx3-ubyte'), [2, 5, 5], new Uint8Array(50));
  writeFileSync(join(dir, 'broken.png'), 'not really a png');
});

describe('cnnc predict', () => {
  it('classifies PNG and JPEG with --resize (resized, converted to the model\'s channels) with class names', () => {
    const r = cnnc('predict', model, '--weights', weights, join(dir, 'gray.png'), join(dir, 'big.jpg'), join(dir, 'colour8.png'), '--top', '2', '--resize');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/gray\.png: (zero|one|two) \d+\.\d%, (zero|one|two) \d+\.\d%$/);
    expect(lines[1]).toMatch(/big\.jpg: (zero|one|two) \d+\.\d%, (zero|one|two) \d+\.\d%$/);
    // A note per converted image, none for the one that already fits; big.jpg's pixels are all gray
    // (R = G = B), so it counts as one channel.
    expect(r.err).toBe(`cnnc: note: ${join(dir, 'big.jpg')}: converted 1x16x16 to 1x8x8\n` +
      `cnnc: note: ${join(dir, 'colour8.png')}: converted 3x8x8 to 1x8x8\n`);
  });
  it('refuses an image of another size or channel count without --resize, naming the file and both shapes', () => {
    for (const [file, shape] of [['big.jpg', '1x16x16'], ['colour8.png', '3x8x8'], ['gray16.png', '1x16x16']]) {
      const r = cnnc('predict', model, '--weights', weights, join(dir, 'gray.png'), join(dir, file));
      expect(r.code, file).toBe(1);
      expect(r.out).toBe(''); // nothing classified: the check runs before the model does
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(join(dir, file));
      expect(lines[0]).toContain(`image is ${shape} (channels x height x width) but the model takes 1x8x8; pass --resize`);
    }
  });
  it('an image that fits is classified without --resize and without a note', () => {
    const r = cnnc('predict', model, '--weights', weights, join(dir, 'gray.png'));
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/gray\.png: /);
  });
  it('JSON probabilities sum to 1 over all classes', () => {
    const r = cnnc('predict', model, '--weights', weights, join(dir, 'images-idx3-ubyte'), '--json', '--top', '3');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.predictions).toHaveLength(3);
    const sum = json.predictions[0].top.reduce((s: number, t: { probability: number }) => s + t.probability, 0);
    expect(sum).toBeCloseTo(1, 5);
    expect(json.predictions[0].source).toMatch(/images-idx3-ubyte\[0\]$/);
  });
  it('bad inputs get a clear error naming the file, no stack trace', () => {
    for (const [file, message] of [
      [join(dir, 'broken.png'), 'not a readable PNG or JPEG image'],
      [join(dir, 'wrong-idx3-ubyte'), 'holds images of 5×5 but model tiny takes 1×8×8'],
      [join(dir, 'missing.png'), 'missing.png'],
      [model, 'is not a PNG, JPEG or IDX file'],
    ]) {
      const r = cnnc('predict', model, '--weights', weights, file);
      expect(r.code).toBe(1);
      expect(r.err).toContain(message);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });
  it('needs weights', () => {
    const r = cnnc('predict', model, join(dir, 'gray.png'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('--weights');
  });
});

const softmax = (z: number[]) => { const e = z.map(Math.exp); const sum = e.reduce((a, b) => a + b, 0); return e.map((v) => v / sum); };
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * Models whose outputs are known exactly: zero weights, so the outputs are the dense layer's bias
 * whatever the image. What predict shows depends on how the model ends.
 */
const heads: { name: string; body: string; dense: string; bias: number[]; want: number[]; text?: boolean }[] = [
  { name: 'logits get a softmax', body: 'fc: dense 3', dense: 'fc', bias: [5, 0, 0], want: softmax([5, 0, 0]) },
  { name: 'a final softmax is not applied twice', body: 'fc: dense 3 -> softmax', dense: 'fc', bias: [5, 0, 0], want: softmax([5, 0, 0]), text: true },
  { name: 'a softmax ending a block is not applied twice', body: 'head(3)', dense: 'head1.dense1', bias: [5, 0, 0], want: softmax([5, 0, 0]) },
  { name: 'a final sigmoid gives per-class probabilities, shown as they are', body: 'fc: dense 3 -> sigmoid', dense: 'fc', bias: [2, 0, -1], want: [2, 0, -1].map(sigmoid) },
  { name: 'one logit is a binary classifier', body: 'fc: dense 1', dense: 'fc', bias: [1], want: [sigmoid(-1), sigmoid(1)] },
  { name: 'one sigmoid output is the probability of class 1', body: 'fc: dense 1 -> sigmoid', dense: 'fc', bias: [1], want: [1 - sigmoid(1), sigmoid(1)] },
];

describe('cnnc predict: probabilities by how the model ends', () => {
  heads.forEach(({ name, body, dense, bias, want, text }, i) => {
    it(name, async () => {
      const file = join(dir, `head${i}.cnn`), ckpt = join(dir, `head${i}.ckpt`);
      writeFileSync(file, `block head(n) { dense n -> softmax }\nmodel H {\n  input 1x8x8\n  flatten -> ${body}\n}\n`);
      const k = bias.length;
      await saveCheckpoint(ckpt, { model: 'H', tensors: new Map([
        [`${dense}.weight`, { dims: [k, 64], data: new Float32Array(k * 64) }],
        [`${dense}.bias`, { dims: [k], data: Float32Array.from(bias) }],
      ]) });
      const json = cnnc('predict', file, '--weights', ckpt, join(dir, 'gray.png'), '--json', '--top', String(want.length));
      expect(json.err).toBe('');
      const top: { class: number; probability: number }[] = JSON.parse(json.out).predictions[0].top;
      const order = [...want.keys()].sort((a, b) => want[b] - want[a]);
      expect(top.map((t) => t.class)).toEqual(order);
      top.forEach((t) => expect(t.probability, `class ${t.class}`).toBeCloseTo(want[t.class], 6));
      if (!text) return;
      // The printed line (98.7% for logits [5, 0, 0]; 57.1% when softmax was applied a second time).
      const line = cnnc('predict', file, '--weights', ckpt, join(dir, 'gray.png'), '--top', '1').out.trim();
      expect(line).toBe(`${join(dir, 'gray.png')}: ${order[0]} ${(100 * want[order[0]]).toFixed(1)}%`);
    });
  });
});

describe('cnnc predict: a dense model writes masks', () => {
  // A 1x1 convolution to 3 classes: bright pixels are class 1, dark ones class 2, mid-gray class 0.
  const file = join(dir, 'seg.cnn'), ckpt = join(dir, 'seg.ckpt');
  const pixels = Uint8Array.from({ length: 16 }, (_, i) => [255, 0, 128, 255][i % 4]);
  const expected = Array.from(pixels, (v) => (v === 255 ? 1 : v === 0 ? 2 : 0));
  beforeAll(async () => {
    writeFileSync(file, 'model Seg {\n  input 1x4x4 mean=[0.5] std=[0.5]\n  head: conv 3 1x1\n}\n');
    await saveCheckpoint(ckpt, { model: 'Seg', tensors: new Map([
      ['head.weight', { dims: [3, 1, 1, 1], data: Float32Array.of(0, 1, -1) }],
      ['head.bias', { dims: [3], data: Float32Array.of(0.1, 0, 0) }],
    ]) });
    await sharp(Buffer.from(pixels), { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(join(dir, 'a.png'));
    await sharp(Buffer.from(pixels.map((v) => 255 - v)), { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(join(dir, 'b.png'));
  });
  const read = async (png: string) => {
    expect((await sharp(png).metadata()).channels).toBe(1);
    return [...(await sharp(png).toColourspace('b-w').raw().toBuffer())];
  };

  it('-o FILE.png: the class of each pixel as an 8-bit gray PNG', async () => {
    const out = join(dir, 'masks', 'a-mask.png');
    const r = cnnc('predict', file, '--weights', ckpt, join(dir, 'a.png'), '-o', out);
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe(`${join(dir, 'a.png')}: ${out} (1 50.0%, 0 25.0%, 2 25.0% of the pixels)`);
    expect(await read(out)).toEqual(expected);
  });

  it('-o FOLDER: one NAME.png per input; without -o the class shares', async () => {
    const out = join(dir, 'mask-folder');
    expect(cnnc('predict', file, '--weights', ckpt, join(dir, 'a.png'), join(dir, 'b.png'), '-o', out).code).toBe(0);
    expect(await read(join(out, 'a.png'))).toEqual(expected);
    expect(await read(join(out, 'b.png'))).toEqual(expected.map((c) => [0, 2, 1][c]));
    const json = JSON.parse(cnnc('predict', file, '--weights', ckpt, join(dir, 'a.png'), '--json', '--top', '1').out);
    expect(json.masks[0].top).toEqual([{ class: 1, label: '1', share: 0.5 }]);
  });

  it('refuses -o FILE.png for several inputs and -o for a classifier', () => {
    const two = cnnc('predict', file, '--weights', ckpt, join(dir, 'a.png'), join(dir, 'b.png'), '-o', join(dir, 'one.png'));
    expect(two.code).toBe(1);
    expect(two.err).toContain('names one mask file, but there are 2 inputs; give a folder');
    const classifier = cnnc('predict', model, '--weights', weights, join(dir, 'gray.png'), '-o', join(dir, 'x.png'));
    expect(classifier.code).toBe(1);
    expect(classifier.err).toContain('model tiny gives one prediction per image');
  });
});
