/**
 * Data sets for training and evaluation: IDX files (MNIST, Fashion-MNIST) or a folder of images with
 * one subfolder per class. Everything is held in memory as unsigned bytes and converted to normalised
 * floats one batch at a time.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { readIdx } from './idx.ts';
import { decodeImage, type ImageOptions } from './images.ts';

export interface Dataset {
  /** The directory it was loaded from, for error messages. */
  source: string;
  size: number;
  shape: [number, number, number];
  classes: string[];
  /** size * C * H * W bytes, CHW per image. */
  images: Uint8Array;
  labels: Uint8Array | Int32Array;
}

export type Split = 'train' | 'test';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

// ---------------------------------------------------------------------------------------------
// IDX data sets

const IDX_PREFIX: Record<Split, string> = { train: 'train', test: 't10k' };

/** The image and label files of a split, or undefined where missing. Both `-idx3-` and `.idx3-` spellings occur. */
function idxFiles(dir: string, split: Split): { images?: string; labels?: string } {
  const find = (kind: string, n: number) => [`-${kind}-idx${n}-ubyte`, `-${kind}.idx${n}-ubyte`]
    .flatMap((s) => [s, `${s}.gz`])
    .map((s) => join(dir, IDX_PREFIX[split] + s))
    .find((p) => existsSync(p));
  return { images: find('images', 3), labels: find('labels', 1) };
}

export function loadIdxDataset(dir: string, split: Split, opts: { classNames?: string[] } = {}): Dataset {
  const files = idxFiles(dir, split);
  const p = IDX_PREFIX[split];
  if (!files.images || !files.labels) {
    const missing = !files.images ? `${p}-images-idx3-ubyte` : `${p}-labels-idx1-ubyte`;
    throw new UserError(`no ${split} split: ${missing} (or ${missing}.gz) not found`, dir);
  }
  const images = readIdx(files.images);
  const labels = readIdx(files.labels);
  if (images.dims.length !== 3) {
    throw new UserError(`image file must have 3 dimensions [count, height, width], has [${images.dims.join(', ')}]`,
      files.images);
  }
  if (labels.dims.length !== 1) {
    throw new UserError(`label file must have 1 dimension [count], has [${labels.dims.join(', ')}]`, files.labels);
  }
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) {
    throw new UserError(`${labels.dims[0]} labels but ${files.images} holds ${n} images`, files.labels);
  }
  if (n === 0) throw new UserError('image file holds no images', files.images);
  return {
    source: dir, size: n, shape: [1, h, w], images: images.data, labels: labels.data,
    classes: classNamesFor(labels.data, files.labels, opts.classNames),
  };
}

/** Class count is max label + 1 (at least 2); given names must cover every label. */
function classNamesFor(labels: Uint8Array, file: string, names?: string[]): string[] {
  const max = maxLabel(labels);
  if (names) {
    if (max >= names.length) {
      throw new UserError(`label ${max} is out of range for the ${names.length} class names given`, file);
    }
    return names;
  }
  return Array.from({ length: Math.max(max + 1, 2) }, (_, i) => String(i));
}

function maxLabel(labels: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < labels.length; i++) max = Math.max(max, labels[i]);
  return max;
}

// ---------------------------------------------------------------------------------------------
// Image folders

const IMAGE_EXT = /\.(png|jpe?g)$/i;

const visible = (name: string) => !name.startsWith('.');
const isDir = (p: string) => statSync(p).isDirectory();

/** Loads dir/<class>/<image>; sorted subfolder names give the class indices. Non-image files are ignored. */
export async function loadImageFolder(dir: string, opts: ImageOptions): Promise<Dataset> {
  if (!existsSync(dir)) throw new UserError('image folder does not exist', dir);
  const classes = readdirSync(dir).filter((d) => visible(d) && isDir(join(dir, d))).sort();
  if (classes.length < 2) {
    throw new UserError(`an image folder needs at least 2 class subfolders, found ${classes.length}`, dir);
  }
  const files: string[] = [];
  const labelList: number[] = [];
  classes.forEach((cls, label) => {
    const names = readdirSync(join(dir, cls)).filter((f) => visible(f) && IMAGE_EXT.test(f)).sort();
    if (names.length === 0) throw new UserError('class folder contains no PNG or JPEG images', join(dir, cls));
    for (const f of names) {
      files.push(join(dir, cls, f));
      labelList.push(label);
    }
  });
  const { channels, height, width } = opts;
  const per = channels * height * width;
  const images = new Uint8Array(files.length * per);
  await forEachLimit(files, 8, async (file, i) => images.set(await decodeImage(file, opts), i * per));
  return {
    source: dir, size: files.length, shape: [channels, height, width], classes, images,
    labels: Int32Array.from(labelList),
  };
}

/**
 * Runs fn over items with at most `limit` in flight (sharp decodes on libuv's thread pool).
 * On failure it starts nothing new and rethrows the error of the earliest failing item, so the
 * file reported does not depend on timing.
 */
async function forEachLimit<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const failures: { i: number; error: unknown }[] = [];
  const worker = async () => {
    while (next < items.length && failures.length === 0) {
      const i = next++;
      await fn(items[i], i).catch((error) => failures.push({ i, error }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.length) throw failures.reduce((a, b) => (b.i < a.i ? b : a)).error;
}

// ---------------------------------------------------------------------------------------------
// Choosing a loader

export interface LoadOptions {
  split?: Split;
  /** Class names for IDX data sets (e.g. FASHION_MNIST_CLASSES). */
  classNames?: string[];
  /** The model's input: required for image folders, which are decoded to this size. */
  channels?: 1 | 3;
  height?: number;
  width?: number;
  resize?: boolean;
  strict?: boolean;
}

/**
 * Loads IDX files when dir has them for the split, otherwise an image folder. An image folder whose
 * only subfolders are `train` and `test` is taken to hold one class tree per split.
 */
export async function loadDataset(dir: string, opts: LoadOptions = {}): Promise<Dataset> {
  const split = opts.split ?? 'train';
  if (!existsSync(dir)) throw new UserError('data directory does not exist', dir);
  if (!isDir(dir)) throw new UserError('data path is not a directory', dir);
  const idx = idxFiles(dir, split);
  if (idx.images || idx.labels) return loadIdxDataset(dir, split, opts);
  const subdirs = readdirSync(dir).filter((d) => visible(d) && isDir(join(dir, d))).sort();
  if (subdirs.length === 0) {
    throw new UserError(`contains neither IDX files (${IDX_PREFIX[split]}-images-idx3-ubyte[.gz]) ` +
      'nor class subfolders of PNG/JPEG images', dir);
  }
  const root = subdirs.join() === 'test,train' ? join(dir, split) : dir;
  const { channels, height, width } = opts;
  if (!channels || !height || !width) throw new Error('loadDataset: image folders need channels, height and width');
  return loadImageFolder(root, { channels, height, width, resize: opts.resize, strict: opts.strict });
}

/** Checks that a data set fits a model with the given input shape [C, H, W] and number of classes. */
export function checkAgainstModel(ds: Dataset, inputShape: readonly number[], numClasses: number): void {
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (inputShape.length !== 3 || inputShape.some((d, i) => d !== ds.shape[i])) {
    throw new UserError(`images have shape ${fmt(ds.shape)} (channels, height, width) ` +
      `but the model's input is ${fmt(inputShape)}`, ds.source);
  }
  const max = maxLabel(ds.labels);
  if (max >= numClasses) {
    throw new UserError(`label ${max} (class '${ds.classes[max] ?? max}') is out of range: ` +
      `the model has ${numClasses} classes (labels 0..${numClasses - 1})`, ds.source);
  }
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness: a 32-bit counter passed through an integer hash (xor-shift / multiply rounds).
// Small, fast and fully determined by the seed, so a resumed run replays the same order.

function hash32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Combines integers (any safe integers, including negative and above 2^32) into one 32-bit seed. */
export function mixSeed(...parts: number[]): number {
  let h = 0x6a09e667;
  for (const p of parts) {
    h = hash32(h ^ (p >>> 0));
    h = hash32(h ^ Math.floor(p / 2 ** 32) >>> 0);
  }
  return h;
}

/** A generator of uniform floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let counter = seed >>> 0;
  return () => {
    counter = (counter + 0x9e3779b9) >>> 0;
    return hash32(counter) / 2 ** 32;
  };
}

/** The sample order of one epoch: a Fisher-Yates shuffle seeded by (seed, epoch), or 0..size-1. */
export function epochOrder(size: number, seed: number, epoch: number, shuffle = true): Uint32Array {
  const order = Uint32Array.from({ length: size }, (_, i) => i);
  if (!shuffle) return order;
  const rand = seededRandom(mixSeed(seed, epoch));
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

// ---------------------------------------------------------------------------------------------
// Batching

export interface Augment {
  /** Mirror left-right with probability 0.5. */
  flip?: boolean;
  /** Pad by this many zero pixels on each side, then crop back to H x W at a random offset. */
  cropPad?: number;
}

export interface BatchOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
  /** Skip the last batch when it would be smaller than batchSize. */
  dropLast?: boolean;
  augment?: Augment;
  /** Per-channel (or single) mean and std applied after scaling to [0, 1]. */
  mean?: number[];
  std?: number[];
  /** Label tensor type; int64 by default (what ONNX's loss operators usually take). */
  labelType?: 'int32' | 'int64';
  /** Start at this batch of the epoch, for resuming mid-epoch. */
  startBatch?: number;
}

export interface Batch {
  /** count * C * H * W normalised floats. */
  x: Float32Array;
  y: Int32Array | BigInt64Array;
  count: number;
  /** Which samples of the data set are in the batch. */
  indices: Uint32Array;
  /** Index of this batch within the epoch. */
  index: number;
}

export function batchCount(size: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
}

/**
 * The batches of one epoch. Order depends only on (seed, epoch) and augmentation only on
 * (seed, epoch, batch index), so any batch can be reproduced on its own.
 */
export function* batches(ds: Dataset, opts: BatchOptions): Generator<Batch> {
  const { batchSize, seed = 0, epoch = 0 } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  const order = epochOrder(ds.size, seed, epoch, opts.shuffle ?? true);
  const luts = normalisationTables(ds.shape[0], opts.mean ?? [0], opts.std ?? [1]);
  const n = batchCount(ds.size, batchSize, opts.dropLast);
  for (let b = opts.startBatch ?? 0; b < n; b++) {
    const indices = order.subarray(b * batchSize, Math.min((b + 1) * batchSize, ds.size));
    yield makeBatch(ds, indices, luts, opts, b);
  }
}

/** For each channel, a 256-entry table from byte value to normalised float. */
function normalisationTables(channels: number, mean: number[], std: number[]): Float32Array[] {
  const pick = (a: number[], c: number, what: string) => {
    if (a.length !== 1 && a.length !== channels) {
      throw new UserError(`${what} needs 1 or ${channels} values (one per channel), got ${a.length}`);
    }
    return a.length === 1 ? a[0] : a[c];
  };
  return Array.from({ length: channels }, (_, c) => {
    const m = pick(mean, c, 'mean'), s = pick(std, c, 'std');
    if (!(s > 0)) throw new UserError(`std values must be positive, got ${s}`);
    return Float32Array.from({ length: 256 }, (_, v) => (v / 255 - m) / s);
  });
}

function makeBatch(ds: Dataset, indices: Uint32Array, luts: Float32Array[], opts: BatchOptions, b: number): Batch {
  const [c, h, w] = ds.shape;
  const per = c * h * w;
  const count = indices.length;
  const x = new Float32Array(count * per);
  const y = opts.labelType === 'int32' ? new Int32Array(count) : new BigInt64Array(count);
  const { flip = false, cropPad = 0 } = opts.augment ?? {};
  const rand = seededRandom(mixSeed(opts.seed ?? 0, opts.epoch ?? 0, b, 0xa06));
  for (let k = 0; k < count; k++) {
    const i = indices[k];
    if (y instanceof Int32Array) y[k] = ds.labels[i];
    else y[k] = BigInt(ds.labels[i]);
    // Draw the same number of values per sample whatever the options, so the stream stays aligned.
    const mirror = flip && rand() < 0.5;
    const dy = cropPad ? Math.floor(rand() * (2 * cropPad + 1)) - cropPad : 0;
    const dx = cropPad ? Math.floor(rand() * (2 * cropPad + 1)) - cropPad : 0;
    writeSample(ds.images, i * per, x, k * per, ds.shape, luts, mirror, dy, dx);
  }
  return { x, y, count, indices, index: b };
}

/** Copies one CHW image into out, shifted by (dy, dx) with zero fill and optionally mirrored. */
function writeSample(src: Uint8Array, srcOff: number, out: Float32Array, outOff: number,
  [c, h, w]: [number, number, number], luts: Float32Array[], mirror: boolean, dy: number, dx: number): void {
  for (let ch = 0; ch < c; ch++) {
    const lut = luts[ch];
    const plane = ch * h * w;
    for (let r = 0; r < h; r++) {
      const sr = r + dy;
      const rowOut = outOff + plane + r * w;
      if (sr < 0 || sr >= h) {
        out.fill(lut[0], rowOut, rowOut + w);
        continue;
      }
      const rowIn = srcOff + plane + sr * w;
      for (let col = 0; col < w; col++) {
        const sc = (mirror ? w - 1 - col : col) + dx;
        out[rowOut + col] = sc < 0 || sc >= w ? lut[0] : lut[src[rowIn + sc]];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Overlapping data preparation with compute

/**
 * Yields the items of `source`, preparing up to `depth` of them ahead. This is an async double buffer
 * on the main thread, not a worker: each item is produced in a setImmediate callback, so it runs while
 * the consumer awaits asynchronous work (an onnxruntime session.run executes on native threads).
 * Synchronous compute in the consumer gets no overlap.
 */
export async function* prefetch<T>(source: Iterable<T> | AsyncIterable<T>, depth = 2): AsyncGenerator<T> {
  const it: Iterator<T> | AsyncIterator<T> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const ahead: Promise<IteratorResult<T>>[] = [];
  let done = false;
  try {
    for (;;) {
      while (!done && ahead.length < Math.max(1, depth)) {
        const p = new Promise<void>((r) => setImmediate(r)).then(() => it.next());
        p.catch(() => {}); // rejections are rethrown when this item is awaited; avoid unhandled-rejection noise
        ahead.push(p);
      }
      const r = await ahead.shift()!;
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    if (!done) await it.return?.();
  }
}
