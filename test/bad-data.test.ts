/**
 * Bad data given to the command line (issue 12 §4): truncated and corrupted IDX files, corrupt and
 * fake images, empty class folders, truncated checkpoints and ONNX files. Each must end the command
 * with a non-zero status and one clear line naming the file and the problem, no stack trace, and
 * nothing written.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeIdx } from '../src/runtime/idx.ts';
import { cnncFromSources } from './helpers/cli-sources.ts';

const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'cnnc-bad-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cnnc = cnncFromSources;

const MODEL = join(tmp, 'tiny.cnn');
const at = (...parts: string[]) => join(tmp, ...parts);

/** Images of class c light up row c: a learnable 3-class set of 4x4 images. */
function images(n: number): Uint8Array {
  return Uint8Array.from({ length: n * 16 }, (_, i) => (Math.floor((i % 16) / 4) === Math.floor(i / 16) % 3 ? 200 : 20));
}
const labels = (n: number, max = 2) => Uint8Array.from({ length: n }, (_, i) => i % (max + 1));

function idxDir(name: string, files: Record<string, Uint8Array | Buffer>): string {
  const dir = at(name);
  mkdirSync(dir, { recursive: true });
  for (const [f, bytes] of Object.entries(files)) writeFileSync(join(dir, f), bytes);
  return dir;
}

function idxBytes(dims: number[], data: Uint8Array): Buffer {
  const file = at('scratch.idx');
  writeIdx(file, dims, data);
  return readFileSync(file);
}

const goodTrain = () => ({ 'train-images-idx3-ubyte': idxBytes([12, 4, 4], images(12)), 'train-labels-idx1-ubyte': idxBytes([12], labels(12)) });

const png = (file: string, width = 4, height = 4, value = 100) =>
  sharp(Buffer.alloc(width * height, value), { raw: { width, height, channels: 1 } }).toColourspace('b-w').png().toFile(file);

async function imageFolder(name: string, classes: Record<string, number>): Promise<string> {
  const dir = at(name);
  for (const [cls, count] of Object.entries(classes)) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < count; i++) await png(join(dir, cls, `${i}.png`), 4, 4, 30 * i);
  }
  return dir;
}

/** The failure must be one `cnnc: error:` line naming the file, with each expected phrase. */
function expectCleanFailure(r: { code: number; stderr: string }, file: string, ...phrases: string[]): void {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).not.toMatch(/^ {4}at /m);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('cnnc: error:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(errors[0]).toContain(file);
  for (const p of phrases) expect(errors[0]).toContain(p);
}

let weights = '', onnx = '';
beforeAll(async () => {
  writeFileSync(MODEL, 'model Tiny {\n  input 1x4x4\n  flatten -> dense 3\n  train {\n    batch: 4\n    epochs: 1\n  }\n}\n');
  const pre = at('pre');
  expect((await cnnc('compile', MODEL, '--train', '-o', pre)).code).toBe(0);
  weights = join(pre, 'init.ckpt');
  onnx = at('tiny.onnx');
  expect((await cnnc('compile', MODEL, '-o', onnx)).code).toBe(0);
});

/** `cnnc train` on data that must be refused: nothing may appear in --out. */
async function refusedTraining(data: string, file: string, ...phrases: string[]): Promise<void> {
  const out = join(data, '..', `${data.split('/').at(-1)}-run`);
  const r = await cnnc('train', MODEL, '--data', data, '--out', out, '--threads', '1');
  expectCleanFailure(r, file, ...phrases);
  expect(existsSync(out) ? readdirSync(out) : [], `${out} after the failure`).toEqual([]);
}

describe.concurrent('bad IDX files', () => {
  it('a truncated image file', async () => {
    const dir = idxDir('trunc', { ...goodTrain(), 'train-images-idx3-ubyte': idxBytes([12, 4, 4], images(12)).subarray(0, 100) });
    await refusedTraining(dir, join(dir, 'train-images-idx3-ubyte'), 'truncated', 'need 208 bytes, file has 100');
  });
  it('a bad magic number', async () => {
    const bytes = idxBytes([12, 4, 4], images(12));
    bytes.set([0x1a, 0x2b], 0);
    const dir = idxDir('magic', { ...goodTrain(), 'train-images-idx3-ubyte': bytes });
    await refusedTraining(dir, join(dir, 'train-images-idx3-ubyte'), 'not an IDX file');
  });
  it('an element type other than unsigned bytes', async () => {
    const bytes = idxBytes([12, 4, 4], images(12));
    bytes[2] = 0x0d;
    const dir = idxDir('float', { ...goodTrain(), 'train-images-idx3-ubyte': bytes });
    await refusedTraining(dir, join(dir, 'train-images-idx3-ubyte'), 'float32', 'not supported');
  });
  it('counts in the header that disagree with the length', async () => {
    const bytes = idxBytes([12, 4, 4], images(12));
    bytes.writeUInt32BE(0xffffffff, 4);
    const dir = idxDir('counts', { ...goodTrain(), 'train-images-idx3-ubyte': bytes });
    await refusedTraining(dir, join(dir, 'train-images-idx3-ubyte'), 'dimensions [4294967295, 4, 4]', 'file has 208');
  });
  it('trailing bytes after the data', async () => {
    const bytes = Buffer.concat([idxBytes([12], labels(12)), Buffer.from([1, 2, 3])]);
    const dir = idxDir('trailing', { ...goodTrain(), 'train-labels-idx1-ubyte': bytes });
    await refusedTraining(dir, join(dir, 'train-labels-idx1-ubyte'), 'trailing bytes');
  });
  it('an empty file', async () => {
    const dir = idxDir('empty', { ...goodTrain(), 'train-labels-idx1-ubyte': Buffer.alloc(0) });
    await refusedTraining(dir, join(dir, 'train-labels-idx1-ubyte'), 'empty (0 bytes)');
  });
  it('a truncated gzip stream', async () => {
    const dir = idxDir('gz', { 'train-images-idx3-ubyte.gz': gzipSync(idxBytes([12, 4, 4], images(12))).subarray(0, 30), 'train-labels-idx1-ubyte': idxBytes([12], labels(12)) });
    await refusedTraining(dir, join(dir, 'train-images-idx3-ubyte.gz'), 'corrupt gzip data');
  });
  it('labels out of range for the model', async () => {
    const dir = idxDir('range', { ...goodTrain(), 'train-labels-idx1-ubyte': idxBytes([12], labels(12, 7)) });
    await refusedTraining(dir, join(dir, 'train-labels-idx1-ubyte'), 'label 7', 'the model has 3 classes');
  });
  it('image and label counts that disagree', async () => {
    const dir = idxDir('disagree', { ...goodTrain(), 'train-labels-idx1-ubyte': idxBytes([11], labels(11)) });
    await refusedTraining(dir, join(dir, 'train-labels-idx1-ubyte'), '11 labels', 'holds 12 images');
  });
  it('a test split with images but no labels', async () => {
    const dir = idxDir('halftest', { ...goodTrain(), 't10k-images-idx3-ubyte': idxBytes([3, 4, 4], images(3)) });
    await refusedTraining(dir, dir, 'no test split', 't10k-labels-idx1-ubyte');
  });
  it('predict on a truncated IDX file', async () => {
    const file = at('predict-trunc-idx3-ubyte');
    writeFileSync(file, idxBytes([2, 4, 4], images(2)).subarray(0, 20));
    expectCleanFailure(await cnnc('predict', MODEL, '--weights', weights, file), file, 'truncated');
  });
});

describe.concurrent('bad image folders', () => {
  it('a truncated PNG', async () => {
    const dir = await imageFolder('corrupt-png', { a: 3, b: 3 });
    const file = join(dir, 'b', '1.png');
    writeFileSync(file, readFileSync(file).subarray(0, 40));
    await refusedTraining(dir, file, 'not a readable PNG or JPEG image');
  });
  it('a text file named like an image', async () => {
    const dir = await imageFolder('fake-png', { a: 3, b: 3 });
    const file = join(dir, 'a', 'notes.png');
    writeFileSync(file, 'these are notes, not pixels');
    await refusedTraining(dir, file, 'not a readable PNG or JPEG image');
  });
  it('an empty class folder', async () => {
    const dir = await imageFolder('empty-class', { a: 3, b: 3 });
    mkdirSync(join(dir, 'c'));
    await refusedTraining(dir, join(dir, 'c'), 'class folder contains no PNG or JPEG images');
  });
  it('an image of another size, without --resize', async () => {
    const dir = await imageFolder('big-image', { a: 3, b: 3 });
    const file = join(dir, 'a', 'big.png');
    await png(file, 64, 64);
    await refusedTraining(dir, file, 'image is 1x64x64 (channels x height x width) but the model takes 1x4x4', '--resize');
  });
  it('a colour image for a gray model, without --resize', async () => {
    const dir = await imageFolder('colour-image', { a: 3, b: 3 });
    const file = join(dir, 'b', 'red.png');
    await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toFile(file);
    await refusedTraining(dir, file, 'image is 3x4x4', 'takes 1x4x4');
  });
  it('a test class that the training split lacks', async () => {
    const dir = at('split-extra');
    await imageFolder('split-extra/train', { a: 3, b: 3, c: 3 });
    await imageFolder('split-extra/test', { a: 1, d: 1 });
    await refusedTraining(dir, join(dir, 'test', 'd'), "class folder 'd' is not a class of the training split [a, b, c]");
  });
  it('predict on a fake PNG', async () => {
    const file = at('fake.png');
    writeFileSync(file, 'GIF89a, not a png');
    expectCleanFailure(await cnnc('predict', MODEL, '--weights', weights, file), file, 'not a readable PNG or JPEG image');
  });
});

describe.concurrent('truncated weights', () => {
  const truncated = (from: () => string, name: string, keep: number) => () => {
    const file = at(name);
    if (!existsSync(file)) writeFileSync(file, readFileSync(from()).subarray(0, keep)); // keep < 0: all but the last -keep bytes
    return file;
  };
  const ckptHeader = truncated(() => weights, 'head.ckpt', 40);
  const ckptData = truncated(() => weights, 'data.ckpt', -10);
  const onnxCut = truncated(() => onnx, 'cut.onnx', 100);

  for (const [what, file, phrase] of [
    ['a checkpoint cut in its header', ckptHeader, 'truncated'],
    ['a checkpoint cut in its data', ckptData, 'truncated: the data needs'],
    ['an ONNX file cut short', onnxCut, ''],
  ] as const) {
    it(`compile --weights: ${what}`, async () => {
      const out = at(`w-${file().split('/').at(-1)}.onnx`);
      expectCleanFailure(await cnnc('compile', MODEL, '-o', out, '--weights', file()), file(), phrase);
      expect(existsSync(out)).toBe(false);
    });
    it(`train --init: ${what}`, async () => {
      const data = idxDir(`init-${file().split('/').at(-1)}`, goodTrain());
      const out = at(`init-run-${file().split('/').at(-1)}`);
      expectCleanFailure(await cnnc('train', MODEL, '--data', data, '--out', out, '--init', file(), '--threads', '1'), file(), phrase);
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    });
  }
  it('predict --weights: a truncated checkpoint', async () => {
    const img = at('ok.png');
    await png(img);
    expectCleanFailure(await cnnc('predict', MODEL, '--weights', ckptData(), img), ckptData(), 'truncated');
  });
});
