import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  batches, checkAgainstModel, epochOrder, FASHION_MNIST_CLASSES, loadDataset, loadIdxDataset, loadImageFolder,
  loadTrainingData, prefetch, type Dataset,
} from '../src/runtime/dataset.ts';
import { readIdx, writeIdx } from '../src/runtime/idx.ts';
import { loadImage, normalize } from '../src/runtime/images.ts';
import { expectUserError } from './helpers/errors.ts';

const tmp = mkdtempSync(join(tmpdir(), 'cnnc-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FASHION = '/usr/share/datasets/fashion-mnist';

/** A synthetic data set whose pixel values encode (sample, position), so moves can be traced. */
function synthetic(size: number, shape: [number, number, number] = [1, 4, 5], classes = 3): Dataset {
  const per = shape[0] * shape[1] * shape[2];
  const images = Uint8Array.from({ length: size * per }, (_, i) => (i * 7 + 1) % 256);
  const labels = Uint8Array.from({ length: size }, (_, i) => i % classes);
  return { source: '/data/synthetic', size, shape, classes: ['a', 'b', 'c'].slice(0, classes), images, labels };
}


describe('IDX files', () => {
  const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 10);

  it.each([false, true])('round-trips (gzip %s)', (gzip) => {
    const path = join(tmp, `rt-${gzip}.idx`);
    writeIdx(path, [2, 3, 4], data, { gzip });
    expect(readFileSync(path)[0] === 0x1f).toBe(gzip);
    const back = readIdx(path);
    expect(back.dims).toEqual([2, 3, 4]);
    expect([...back.data]).toEqual([...data]);
  });

  it('reports a truncated file with expected and actual sizes', async () => {
    const path = join(tmp, 'short-idx3-ubyte');
    writeIdx(path, [2, 3, 4], data);
    writeFileSync(path, readFileSync(path).subarray(0, 30));
    await expectUserError(() => readIdx(path), path, 'truncated', '40 bytes', '30');
  });

  it('reports a truncated gzip stream and unsupported element types', async () => {
    const gz = join(tmp, 'short.gz');
    writeIdx(gz, [2, 3, 4], data, { gzip: true });
    writeFileSync(gz, readFileSync(gz).subarray(0, 20));
    await expectUserError(() => readIdx(gz), gz, 'gzip');
    const f32 = join(tmp, 'float.idx');
    writeFileSync(f32, Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]));
    await expectUserError(() => readIdx(f32), f32, 'float32', 'not supported');
    const junk = join(tmp, 'junk.idx');
    writeFileSync(junk, 'hello');
    await expectUserError(() => readIdx(junk), junk, 'not an IDX file');
  });
});

describe('IDX data sets', () => {
  it.skipIf(!existsSync(FASHION))(`loads the Fashion-MNIST test split from ${FASHION}`, () => {
    const ds = loadIdxDataset(FASHION, 'test', { classNames: FASHION_MNIST_CLASSES });
    expect(ds.size).toBe(10000);
    expect(ds.shape).toEqual([1, 28, 28]);
    expect(ds.images.length).toBe(10000 * 784);
    expect(Math.min(...ds.labels)).toBe(0);
    expect(Math.max(...ds.labels)).toBe(9);
    expect(ds.classes[9]).toBe('Ankle boot');
    checkAgainstModel(ds, [1, 28, 28], 10);
  });
  if (!existsSync(FASHION)) console.warn(`skipping Fashion-MNIST test: ${FASHION} is missing (apt install dataset-fashion-mnist)`);

  it('checks that image and label counts agree', async () => {
    const dir = join(tmp, 'idx-mismatch');
    mkdirSync(dir);
    writeIdx(join(dir, 'train-images-idx3-ubyte.gz'), [3, 2, 2], new Uint8Array(12), { gzip: true });
    writeIdx(join(dir, 'train-labels-idx1-ubyte'), [2], Uint8Array.of(0, 1));
    await expectUserError(() => loadIdxDataset(dir, 'train'), 'train-labels-idx1-ubyte', '2 labels', '3 images');
    await expectUserError(() => loadIdxDataset(dir, 'test'), dir, 't10k-images-idx3-ubyte');
  });

  it('numbers classes from the labels unless names are given', async () => {
    const dir = join(tmp, 'idx-ok');
    mkdirSync(dir);
    writeIdx(join(dir, 'train-images-idx3-ubyte'), [3, 2, 2], new Uint8Array(12));
    writeIdx(join(dir, 'train-labels-idx1-ubyte'), [3], Uint8Array.of(0, 4, 1));
    const ds = await loadDataset(dir);
    expect(ds.classes).toEqual(['0', '1', '2', '3', '4']);
    await expectUserError(() => loadIdxDataset(dir, 'train', { classNames: ['x', 'y'] }), 'label 4', '2 class names');
  });
});

describe('images', () => {
  const dir = join(tmp, 'folder');
  const red = { r: 255, g: 0, b: 0 };

  async function writeImages(): Promise<void> {
    mkdirSync(join(dir, 'cat'), { recursive: true });
    mkdirSync(join(dir, 'dog'), { recursive: true });
    const solid = (background: object, channels: 3 | 4 = 3) =>
      sharp({ create: { width: 10, height: 6, channels, background } });
    await solid(red).png().toFile(join(dir, 'cat', 'a.png'));
    await solid({ r: 0, g: 0, b: 255 }).jpeg({ quality: 100 }).toFile(join(dir, 'cat', 'b.jpg'));
    await solid({ r: 0, g: 255, b: 0, alpha: 0.5 }, 4).png().toFile(join(dir, 'dog', 'c.png'));
    await sharp(Buffer.alloc(60, 100), { raw: { width: 10, height: 6, channels: 1 } })
      .toColourspace('b-w').png().toFile(join(dir, 'dog', 'gray.png'));
    writeFileSync(join(dir, 'dog', 'notes.txt'), 'ignored');
  }

  it('loads an image folder of PNG and JPEG files with sorted classes', async () => {
    await writeImages();
    const ds = await loadImageFolder(dir, { channels: 3, height: 3, width: 5, resize: true });
    expect(ds.classes).toEqual(['cat', 'dog']);
    expect(ds.size).toBe(4);
    expect([...ds.labels]).toEqual([0, 0, 1, 1]);
    const px = (i: number) => [0, 1, 2].map((c) => ds.images[i * 45 + c * 15]);
    expect(px(0)).toEqual([255, 0, 0]);
    expect(px(1)[2]).toBeGreaterThan(250);
    expect(px(2)).toEqual([0, 255, 0]); // alpha dropped, not composited
    expect(px(3)).toEqual([100, 100, 100]); // grayscale replicated
    const same = await loadDataset(dir, { channels: 3, height: 3, width: 5, resize: true });
    expect(same.images).toEqual(ds.images);
  });

  it('converts colour to luminance for one-channel models when asked to', async () => {
    const gray = await loadImage(join(dir, 'cat', 'a.png'), { channels: 1, height: 6, width: 10, resize: true });
    expect(gray.length).toBe(60);
    expect(gray[0]).toBeCloseTo(Math.round(0.299 * 255) / 255, 5);
    const g = await loadImage(join(dir, 'dog', 'gray.png'), { channels: 1, height: 6, width: 10 });
    expect(g[59]).toBeCloseTo(100 / 255, 5);
  });

  it('refuses another size or channel count unless asked to resize, naming both shapes', async () => {
    const file = join(dir, 'cat', 'a.png');
    await expectUserError(loadImage(file, { channels: 3, height: 28, width: 28, resize: false }), file, 'image is 3x6x10 (channels x height x width) but the model takes 3x28x28; pass --resize');
    const gray = join(dir, 'dog', 'gray.png');
    await expectUserError(loadImage(gray, { channels: 3, height: 6, width: 10, resize: false }), gray, 'image is 1x6x10', 'takes 3x6x10');
    await expectUserError(loadImageFolder(dir, { channels: 1, height: 6, width: 10 }), join(dir, 'cat', 'a.png'), 'image is 3x6x10', 'takes 1x6x10');
    const seen: string[] = [];
    await loadImageFolder(dir, { channels: 1, height: 6, width: 10, resize: true, onConvert: (f, from, to) => seen.push(`${f} ${from} ${to}`) });
    expect(seen.sort()).toEqual([`${join(dir, 'cat', 'a.png')} 3x6x10 1x6x10`, `${join(dir, 'cat', 'b.jpg')} 3x6x10 1x6x10`, `${join(dir, 'dog', 'c.png')} 3x6x10 1x6x10`]);
  });

  it('names a corrupt or unsupported file', async () => {
    const bad = join(dir, 'dog', 'broken.jpg');
    writeFileSync(bad, readFileSync(join(dir, 'cat', 'b.jpg')).subarray(0, 200));
    await expectUserError(loadImageFolder(dir, { channels: 3, height: 6, width: 10, resize: true }), bad);
    writeFileSync(bad, 'not an image at all');
    await expectUserError(loadImage(bad, { channels: 3, height: 6, width: 10 }), bad, 'PNG or JPEG');
    rmSync(bad);
    const webp = join(tmp, 'x.webp');
    await sharp({ create: { width: 2, height: 2, channels: 3, background: red } }).webp().toFile(webp);
    await expectUserError(loadImage(webp, { channels: 3, height: 2, width: 2 }), webp, "unsupported image format 'webp'");
  });

  it('normalises per channel', () => {
    const out = normalize(Float32Array.of(0.5, 1, 0.2, 0.4), [0.5, 0.2], [0.5, 0.1]);
    expect([...out].map((v) => +v.toFixed(5))).toEqual([0, 1, 0, 2]);
  });
});

describe('loadDataset and checks', () => {
  it('reports a missing directory or one without data', async () => {
    await expectUserError(loadDataset(join(tmp, 'nope')), 'nope', 'does not exist');
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    await expectUserError(loadDataset(empty), empty, 'neither IDX files');
  });

  it('compares shapes and labels with the model', async () => {
    const ds = synthetic(6);
    await expectUserError(() => checkAgainstModel(ds, [3, 4, 5], 3), '/data/synthetic', '[1, 4, 5]', '[3, 4, 5]');
    await expectUserError(() => checkAgainstModel(ds, [1, 4, 5], 2), 'label 2', '2 classes');
    checkAgainstModel(ds, [1, 4, 5], 3);
  });
});

describe('batches', () => {
  const ds = synthetic(23);
  const orderOf = (seed: number, epoch: number) =>
    [...batches(ds, { batchSize: 5, seed, epoch })].flatMap((b) => [...b.indices]);

  it('shuffles deterministically by seed and epoch', () => {
    expect(orderOf(1, 0)).toEqual(orderOf(1, 0));
    expect(orderOf(1, 0)).not.toEqual(orderOf(1, 1));
    expect(orderOf(1, 0)).not.toEqual(orderOf(2, 0));
    expect([...epochOrder(5, 9, 9, false)]).toEqual([0, 1, 2, 3, 4]);
  });

  it('covers every sample once per epoch, with matching labels and pixels', () => {
    const all = [...batches(ds, { batchSize: 5, seed: 3, epoch: 2, labelType: 'int32' })];
    expect(all.map((b) => b.count)).toEqual([5, 5, 5, 5, 3]);
    expect(orderOf(3, 2).sort((a, b) => a - b)).toEqual([...Array(23).keys()]);
    const b = all[4];
    expect(b.x.length).toBe(3 * 20);
    expect([...b.y]).toEqual([...b.indices].map((i) => ds.labels[i]));
    expect(b.x[0]).toBeCloseTo(ds.images[b.indices[0] * 20] / 255, 6);
    expect([...batches(ds, { batchSize: 5, dropLast: true })].length).toBe(4);
    const resumed = [...batches(ds, { batchSize: 5, seed: 3, epoch: 2, startBatch: 3, labelType: 'int32' })];
    expect(resumed.map((r) => [...r.indices])).toEqual(all.slice(3).map((r) => [...r.indices]));
    expect(all[0].y).toBeInstanceOf(Int32Array);
    expect([...batches(ds, { batchSize: 5 })][0].y).toBeInstanceOf(BigInt64Array);
  });

  it('normalises with mean and std', () => {
    const [b] = batches(ds, { batchSize: 1, shuffle: false, mean: [0.5], std: [0.25] });
    expect(b.x[3]).toBeCloseTo((ds.images[3] / 255 - 0.5) / 0.25, 5);
  });

  it('flips and crops reproducibly, keeping the shape', () => {
    const opts = { batchSize: 23, seed: 5, epoch: 1, shuffle: false, augment: { flip: true, cropPad: 2 } };
    const [a] = batches(ds, opts);
    const [again] = batches(ds, opts);
    expect(a.x.length).toBe(23 * 20);
    expect(a.x).toEqual(again.x);
    const [plain] = batches(ds, { ...opts, augment: {} });
    expect(a.x).not.toEqual(plain.x);
    const [other] = batches(ds, { ...opts, epoch: 2 });
    expect(a.x).not.toEqual(other.x);
    // Each augmented sample is the original mirrored and/or shifted: its non-zero values are a subset.
    for (let k = 0; k < 23; k++) {
      const orig = new Set(plain.x.subarray(k * 20, (k + 1) * 20));
      for (const v of a.x.subarray(k * 20, (k + 1) * 20)) if (v !== 0) expect(orig.has(v)).toBe(true);
    }
  });

  it('flip alone mirrors each row', () => {
    const one = synthetic(1, [1, 2, 3]);
    const flipped = [0, 1, 2, 3, 4, 5, 6, 7].map((seed) => [...batches(one, { batchSize: 1, seed, augment: { flip: true } })][0].x);
    const mirrored = Float32Array.from([2, 1, 0, 5, 4, 3], (i) => one.images[i] / 255);
    expect(flipped.some((x) => x.every((v, i) => v === mirrored[i]))).toBe(true);
    const original = Float32Array.from(one.images, (v) => v / 255);
    expect(flipped.some((x) => x.every((v, i) => v === original[i]))).toBe(true);
  });

  it('prefetches ahead while keeping order and stopping early', async () => {
    const seen: number[] = [];
    const source = function* () {
      for (let i = 0; i < 5; i++) {
        seen.push(i);
        yield i;
      }
    };
    const out: number[] = [];
    for await (const v of prefetch(source(), 2)) {
      await new Promise((r) => setTimeout(r, 5)); // simulated async compute
      expect(seen.length).toBeGreaterThanOrEqual(Math.min(v + 2, 5)); // the next items were prepared meanwhile
      out.push(v);
      if (v === 3) break;
    }
    expect(out).toEqual([0, 1, 2, 3]);
    const failing = function* () {
      yield 1;
      throw new Error('boom');
    };
    await expect((async () => { for await (const _ of prefetch(failing())); })()).rejects.toThrow('boom');
  });
});

describe('loadTrainingData: splits and class names that cannot mislead', () => {
  const root = join(tmp, 'splits');
  const png = (file: string, value: number) =>
    sharp(Buffer.alloc(16, value), { raw: { width: 4, height: 4, channels: 1 } }).toColourspace('b-w').png().toFile(file);
  async function folder(dir: string, classes: Record<string, number>): Promise<string> {
    for (const [cls, n] of Object.entries(classes)) {
      mkdirSync(join(dir, cls), { recursive: true });
      for (let i = 0; i < n; i++) await png(join(dir, cls, `${String(i).padStart(2, '0')}.png`), 10 * i);
    }
    return dir;
  }
  const spec = { model: 'M', input: [1, 4, 4], seed: 7 };

  it('class folders without train/ and test/ hold out a seeded, stratified validation part', async () => {
    const dir = await folder(join(root, 'flat'), { cat: 20, dog: 10, owl: 3 });
    const d = await loadTrainingData(dir, spec);
    expect(d.evalName).toBe('val');
    const count = (ds: Dataset, label: number) => [...ds.labels].filter((l) => l === label).length;
    expect([0, 1, 2].map((c) => count(d.eval!, c))).toEqual([2, 1, 1]); // 10% of each class, at least one
    expect([0, 1, 2].map((c) => count(d.train, c))).toEqual([18, 9, 2]);
    expect(d.notices[0]).toBe(`notice: ${dir} has no train/ and test/ split; holding out 4 of its 33 images (10% of each class, seeded) for validation (--val-split)`);
    // No image is in both parts, and the same seed gives the same split.
    const key = (ds: Dataset, i: number) => `${ds.labels[i]}:${ds.images[i * 16]}`;
    const trainKeys = new Set(Array.from({ length: d.train.size }, (_, i) => key(d.train, i)));
    for (let i = 0; i < d.eval!.size; i++) expect(trainKeys.has(key(d.eval!, i))).toBe(false);
    expect((await loadTrainingData(dir, spec)).eval!.images).toEqual(d.eval!.images);
    expect((await loadTrainingData(dir, { ...spec, seed: 8 })).eval!.images).not.toEqual(d.eval!.images);
    const half = await loadTrainingData(dir, { ...spec, valSplit: 0.5 });
    expect(half.eval!.size).toBe(10 + 5 + 2);
    const none = await loadTrainingData(dir, { ...spec, valSplit: 0 });
    expect(none.eval).toBeUndefined();
    expect(none.notices[0]).toContain('training without evaluation');
    await expectUserError(loadTrainingData(dir, { ...spec, valSplit: 1 }), '--val-split 1', 'fraction in [0, 1)');
  });

  it('a test/ folder lacking a class keeps every label by name, with a warning naming the class', async () => {
    const dir = join(root, 'split');
    await folder(join(dir, 'train'), { ant: 2, bee: 2, cow: 2 });
    await folder(join(dir, 'test'), { ant: 1, cow: 2 });
    const d = await loadTrainingData(dir, spec);
    expect(d.evalName).toBe('test');
    expect([...d.eval!.labels]).toEqual([0, 2, 2]); // cow stays label 2, not shifted to 1
    expect(d.eval!.classes).toEqual(['ant', 'bee', 'cow']);
    expect(d.notices).toEqual([`warning: ${join(dir, 'test')} has no folder for class 'bee'; the test accuracy does not cover it`]);
    await expectUserError(loadDataset(join(root, 'flat'), { split: 'test', channels: 1, height: 4, width: 4 }), 'has no test split');
  });

  it("the model's classes= must name the folders; labels follow its order", async () => {
    const dir = await folder(join(root, 'named'), { ant: 2, bee: 2 });
    const d = await loadTrainingData(dir, { ...spec, classes: ['bee', 'ant'], valSplit: 0 });
    expect(d.train.classes).toEqual(['bee', 'ant']);
    expect([...d.train.labels]).toEqual([1, 1, 0, 0]);
    await expectUserError(loadTrainingData(dir, { ...spec, classes: ['ant', 'wasp'] }), dir,
      "the class folders [ant, bee] do not match the model's classes= [ant, wasp]");
  });

  it('--resize converts, and says how many images it converted', async () => {
    const dir = await folder(join(root, 'sizes'), { ant: 2, bee: 2 });
    await sharp({ create: { width: 9, height: 7, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toFile(join(dir, 'bee', 'big.png'));
    await expectUserError(loadTrainingData(dir, spec), join(dir, 'bee', 'big.png'), 'image is 3x7x9', 'takes 1x4x4');
    const d = await loadTrainingData(dir, { ...spec, resize: true, valSplit: 0 });
    expect(d.train.size).toBe(5);
    expect(d.notices).toContain(`notice: --resize converted 1 image to 1x4x4 (the first: ${join(dir, 'bee', 'big.png')}, 3x7x9)`);
  });
});
