/**
 * Data sets for training and evaluation: IDX files (MNIST, Fashion-MNIST), a folder of images with
 * one subfolder per class, or image/mask pairs for dense prediction (images/ and masks/ folders of
 * files with matching names, a mask pixel's value its class). Everything is held in memory as
 * unsigned bytes and converted to normalised floats (and int labels) one batch at a time.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { readIdx } from './idx.ts';
import { decodeImage, decodeMask, type ImageOptions } from './images.ts';

export interface Dataset {
  /** The directory it was loaded from, for error messages. */
  source: string;
  size: number;
  shape: [number, number, number];
  classes: string[];
  /** size * C * H * W bytes, CHW per image. */
  images: Uint8Array;
  labels: Uint8Array | Int32Array;
  /** The file the labels come from (IDX), named when a label is out of range; else `source`. */
  labelsFile?: string;
  /** Image/mask pairs: the masks, size * H * W class indices, and each sample's mask file (labels are then all 0). */
  masks?: { shape: [number, number]; data: Uint8Array; files: string[] };
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
    source: dir, size: n, shape: [1, h, w], images: images.data, labels: labels.data, labelsFile: files.labels,
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
const subfolders = (dir: string) => readdirSync(dir).filter((d) => visible(d) && isDir(join(dir, d))).sort();
const listed = (names: readonly string[]) => `[${names.join(', ')}]`;

export interface FolderOptions extends ImageOptions {
  /** Label order: the model's `classes=` (must name the same folders) or the training split's. */
  classes?: readonly string[];
}

/** The class folders of root and their PNG/JPEG files (other files are ignored); an empty one is an error. */
function classFolders(root: string): Map<string, string[]> {
  if (!existsSync(root)) throw new UserError('image folder does not exist', root);
  const folders = new Map<string, string[]>();
  for (const cls of subfolders(root)) {
    const names = readdirSync(join(root, cls)).filter((f) => visible(f) && IMAGE_EXT.test(f)).sort();
    if (names.length === 0) throw new UserError('class folder contains no PNG or JPEG images', join(root, cls));
    folders.set(cls, names.map((f) => join(root, cls, f)));
  }
  return folders;
}

/**
 * The label order for a training folder's classes: the model's `classes=` when given (the same
 * names, in the model's order; any other set is an error showing both), else the sorted folder names.
 */
function classOrder(root: string, found: readonly string[], declared?: readonly string[]): string[] {
  if (found.length < 2) throw new UserError(`an image folder needs at least 2 class subfolders, found ${found.length}`, root);
  if (!declared?.length) return [...found];
  const same = declared.length === found.length && declared.every((c) => found.includes(c));
  if (!same) {
    throw new UserError(`the class folders ${listed(found)} do not match the model's classes= ${listed(declared)}; ` +
      'name the folders as the classes (or change classes=)', root);
  }
  return [...declared];
}

/**
 * Loads root/<class>/<image>. Labels follow `classes` (see FolderOptions); a folder for a class not
 * in `classes` is an error, a class without a folder is allowed (a test split may lack one).
 */
async function loadFolders(root: string, classes: readonly string[], opts: ImageOptions): Promise<Dataset> {
  const folders = classFolders(root);
  const files: string[] = [];
  const labelList: number[] = [];
  for (const [cls, names] of folders) {
    const label = classes.indexOf(cls);
    if (label < 0) throw new UserError(`class folder '${cls}' is not a class of the training split ${listed(classes)}`, join(root, cls));
    for (const f of names) {
      files.push(f);
      labelList.push(label);
    }
  }
  const { channels, height, width } = opts;
  const per = channels * height * width;
  const images = new Uint8Array(files.length * per);
  await forEachLimit(files, 8, async (file, i) => images.set(await decodeImage(file, opts), i * per));
  return {
    source: root, size: files.length, shape: [channels, height, width], classes: [...classes], images,
    labels: Int32Array.from(labelList),
  };
}

/** Loads dir/<class>/<image>; labels follow opts.classes or the sorted folder names. Non-image files are ignored. */
export async function loadImageFolder(dir: string, opts: FolderOptions): Promise<Dataset> {
  const classes = classOrder(dir, [...classFolders(dir).keys()], opts.classes);
  return loadFolders(dir, classes, opts);
}

// ---------------------------------------------------------------------------------------------
// Image/mask pairs

export const IMAGES_DIR = 'images';
export const MASKS_DIR = 'masks';

/** Whether dir holds images/ and masks/ (a data set of image/mask pairs). */
const isMaskFolder = (dir: string) => { const s = subfolders(dir); return s.includes(IMAGES_DIR) && s.includes(MASKS_DIR); };

const stem = (file: string) => file.replace(/\.[^.]*$/, '');

/** A few names of a list, for messages: `a.png, b.png and 3 more`. */
function someOf(names: readonly string[]): string {
  const shown = names.slice(0, 3).join(', ');
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

/**
 * root/images/NAME.(png|jpg) with root/masks/NAME.png, paired by NAME: an image without a mask or
 * a mask without an image is an error naming them. The pairs in sorted order.
 */
function maskPairs(root: string): { image: string; mask: string }[] {
  const list = (dir: string, ext: RegExp) => readdirSync(join(root, dir)).filter((f) => visible(f) && ext.test(f)).sort();
  const images = list(IMAGES_DIR, IMAGE_EXT), masks = list(MASKS_DIR, /\.png$/i);
  const maskByStem = new Map(masks.map((m) => [stem(m), m]));
  const imageStems = new Set(images.map(stem));
  const lonely = images.filter((f) => !maskByStem.has(stem(f)));
  if (lonely.length) throw new UserError(`${plural(lonely.length, 'image')} without a mask of the same name in ${MASKS_DIR}/ (NAME.png): ${someOf(lonely)}`, join(root, IMAGES_DIR));
  const orphans = masks.filter((m) => !imageStems.has(stem(m)));
  if (orphans.length) throw new UserError(`${plural(orphans.length, 'mask')} without an image of the same name in ${IMAGES_DIR}/: ${someOf(orphans)}`, join(root, MASKS_DIR));
  if (images.length === 0) throw new UserError('holds no PNG or JPEG images', join(root, IMAGES_DIR));
  return images.map((f) => ({ image: join(root, IMAGES_DIR, f), mask: join(root, MASKS_DIR, maskByStem.get(stem(f))!) }));
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What image/mask pairs are decoded to: the model's input, and the mask size its output has. */
export interface MaskOptions extends ImageOptions {
  mask: [number, number];
  /** Class names (the model's classes=, or 0..K-1). */
  classes: readonly string[];
}

/** Loads root/images and root/masks (see maskPairs); every mask must have the model's output size. */
export async function loadMaskFolder(root: string, opts: MaskOptions): Promise<Dataset> {
  if (!existsSync(root)) throw new UserError('data folder does not exist', root);
  const pairs = maskPairs(root);
  const { channels, height, width } = opts;
  const per = channels * height * width, perMask = opts.mask[0] * opts.mask[1];
  const images = new Uint8Array(pairs.length * per), masks = new Uint8Array(pairs.length * perMask);
  await forEachLimit(pairs, 8, async (p, i) => {
    images.set(await decodeImage(p.image, opts), i * per);
    masks.set(await decodeMask(p.mask, opts.mask), i * perMask);
  });
  return {
    source: root, size: pairs.length, shape: [channels, height, width], classes: [...opts.classes], images,
    labels: new Int32Array(pairs.length), masks: { shape: opts.mask, data: masks, files: pairs.map((p) => p.mask) },
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
// Finding the data: layout, splits and class names

/** How a data directory is laid out. */
export type DataLayout =
  | { kind: 'idx'; dir: string; hasTest: boolean }
  | { kind: 'folders' | 'masks'; train: string; test?: string };

function checkDataDir(dir: string): void {
  if (!existsSync(dir)) throw new UserError('data directory does not exist', dir);
  if (!isDir(dir)) throw new UserError('data path is not a directory', dir);
}

/**
 * IDX files when dir has train-… files; image/mask pairs when dir (or its train/) holds images/ and
 * masks/; folders under train/ (and test/) when dir's only subfolders are those; otherwise dir's
 * subfolders are the classes.
 */
export function findLayout(dir: string): DataLayout {
  checkDataDir(dir);
  const has = (split: Split) => { const f = idxFiles(dir, split); return Boolean(f.images || f.labels); };
  if (has('train')) return { kind: 'idx', dir, hasTest: has('test') };
  if (isMaskFolder(dir)) return { kind: 'masks', train: dir };
  const subdirs = subfolders(dir);
  if (subdirs.length === 0) {
    throw new UserError('contains neither IDX files (train-images-idx3-ubyte[.gz]) nor class subfolders of PNG/JPEG images', dir);
  }
  if (subdirs.includes('train') && subdirs.every((d) => d === 'train' || d === 'test')) {
    const [train, test] = [join(dir, 'train'), subdirs.includes('test') ? join(dir, 'test') : undefined];
    const kind = isMaskFolder(train) ? 'masks' : 'folders';
    if (test && kind === 'masks' && !isMaskFolder(test)) throw new UserError(`has no ${IMAGES_DIR}/ and ${MASKS_DIR}/ as train/ has`, test);
    return { kind, train, test };
  }
  return { kind: 'folders', train: dir };
}

/** What the model says about its data. */
export interface DataSpec {
  /** The model's name and input shape ([C, H, W] for images). */
  model: string;
  input: readonly number[];
  /** The model's `classes=`, if any. */
  classes?: readonly string[];
  /** A dense model (dense.ts): its classes and the H×W of the masks it predicts. */
  dense?: { classes: number; height: number; width: number };
  /** Fraction of each class held out for validation when class folders have no test split (default 0.1; 0: none). */
  valSplit?: number;
  /** Seeds the validation split (the train seed). */
  seed?: number;
  /** Use only the first N samples of the training part / the held-out part. */
  limitTrain?: number;
  limitTest?: number;
  /** Resize and convert images that differ from the model's input (otherwise each such image is an error). */
  resize?: boolean;
}

export interface TrainingData {
  train: Dataset;
  /** The held-out set: the test split, or the validation part of the training images. */
  eval?: Dataset;
  /** What the held-out set is, for headers, logs and curves. */
  evalName: 'test' | 'val';
  /** Lines for the user (each a complete sentence): held-out parts, missing classes, conversions. */
  notices: string[];
}

export const DEFAULT_VAL_SPLIT = 0.1;

/** Fashion-MNIST's class names for IDX files when the directory is recognisably that data set. */
function idxClassNames(dir: string, declared?: readonly string[]): string[] | undefined {
  if (declared?.length) return [...declared];
  return /fashion[-_]?mnist/i.test(basename(resolve(dir))) ? FASHION_MNIST_CLASSES : undefined;
}

/** The training and held-out data for a model, found in dir, checked and described. */
export async function loadTrainingData(dir: string, spec: DataSpec): Promise<TrainingData> {
  const valSplit = spec.valSplit ?? DEFAULT_VAL_SPLIT;
  if (!(valSplit >= 0 && valSplit < 1)) throw new UserError(`--val-split ${valSplit}: expected a fraction in [0, 1), e.g. 0.1`);
  const layout = findLayout(dir);
  checkLayoutFits(dir, layout, spec);
  const data = layout.kind === 'idx' ? loadIdxData(layout, spec) : await loadFolderData(layout, spec, valSplit);
  const limit = (ds: Dataset | undefined, n?: number) => (ds && n !== undefined ? sliceDataset(ds, n) : ds);
  return { ...data, train: limit(data.train, spec.limitTrain)!, eval: limit(data.eval, spec.limitTest) };
}

/** Image/mask pairs for a dense model, and only for one. */
function checkLayoutFits(dir: string, layout: DataLayout, spec: DataSpec): void {
  if (spec.dense && layout.kind !== 'masks') {
    const { classes, height, width } = spec.dense;
    throw new UserError(`model ${spec.model} predicts a class at each of ${height}x${width} positions (${classes} classes), so it trains on image/mask pairs: ` +
      `${IMAGES_DIR}/NAME.png with ${MASKS_DIR}/NAME.png (optionally under train/ and test/); this folder holds ${layout.kind === 'idx' ? 'IDX files' : 'class folders'}`, dir);
  }
  if (!spec.dense && layout.kind === 'masks') {
    throw new UserError(`holds image/mask pairs (${IMAGES_DIR}/, ${MASKS_DIR}/) for dense prediction, but model ${spec.model} gives one prediction per image; ` +
      'a model for masks ends in a K×H×W feature map (e.g. a 1x1 conv to K classes)', dir);
  }
}

function loadIdxData(layout: Extract<DataLayout, { kind: 'idx' }>, spec: DataSpec): TrainingData {
  const classNames = idxClassNames(layout.dir, spec.classes);
  const train = loadIdxDataset(layout.dir, 'train', { classNames });
  if (!layout.hasTest) {
    return { train, evalName: 'test', notices: [`notice: ${layout.dir} has no test split (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte); ` +
      'training without evaluation (best.ckpt follows training accuracy)'] };
  }
  return { train, eval: loadIdxDataset(layout.dir, 'test', { classNames }), evalName: 'test', notices: [] };
}

/**
 * Image options for the model's input (a UserError when it is not a 1- or 3-channel image), and a
 * line counting the images that --resize converted, once they are loaded.
 */
function imageOptions(dir: string, spec: DataSpec): { image: ImageOptions; converted: () => string | undefined } {
  const [c, h, w] = spec.input;
  if (spec.input.length !== 3 || (c !== 1 && c !== 3)) {
    throw new UserError(`holds image folders, but model ${spec.model} takes input ${spec.input.join('x')}, not a 1- or 3-channel image`, dir);
  }
  let count = 0, first = '';
  const onConvert = (file: string, from: string) => { if (count++ === 0) first = `${file}, ${from}`; };
  const converted = () => (count ? `notice: --resize converted ${count} image${count === 1 ? '' : 's'} to ${c}x${h}x${w} (the first: ${first})` : undefined);
  return { image: { channels: c as 1 | 3, height: h, width: w, resize: spec.resize, onConvert }, converted };
}

async function loadFolderData(layout: Extract<DataLayout, { kind: 'folders' | 'masks' }>, spec: DataSpec, valSplit: number): Promise<TrainingData> {
  const { image, converted } = imageOptions(layout.train, spec);
  let all: Dataset, split: Omit<TrainingData, 'train'> & { train?: Dataset };
  if (layout.kind === 'masks') {
    const { classes, height, width } = spec.dense!;
    const opts = { ...image, mask: [height, width] as [number, number], classes: spec.classes?.length ? spec.classes : Array.from({ length: classes }, (_, i) => String(i)) };
    all = await loadMaskFolder(layout.train, opts);
    split = layout.test ? { eval: await loadMaskFolder(layout.test, opts), evalName: 'test', notices: [] } : heldOutSplit(layout.train, all, valSplit, spec.seed ?? 0);
  } else {
    const classes = classOrder(layout.train, [...classFolders(layout.train).keys()], spec.classes);
    all = await loadFolders(layout.train, classes, image);
    split = layout.test ? await testSplit(layout.test, classes, image) : heldOutSplit(layout.train, all, valSplit, spec.seed ?? 0);
  }
  const notices = [...split.notices, converted()].filter((n): n is string => n !== undefined);
  return { ...split, train: split.train ?? all, notices };
}

/** test/ labelled by the training split's class names; a class it lacks is a warning naming it. */
async function testSplit(dir: string, classes: readonly string[], image: ImageOptions): Promise<Omit<TrainingData, 'train'> & { train?: Dataset }> {
  const test = await loadFolders(dir, classes, image);
  const present = new Set(test.labels);
  const missing = classes.filter((_, i) => !present.has(i));
  const notices = missing.length === 0 ? [] : [`warning: ${dir} has no folder for class${missing.length === 1 ? '' : 'es'} ` +
    `${missing.map((m) => `'${m}'`).join(', ')}; the test accuracy does not cover ${missing.length === 1 ? 'it' : 'them'}`];
  return { eval: test, evalName: 'test', notices };
}

/** Without a test split: a validation part held out of the training images (none for --val-split 0). */
function heldOutSplit(dir: string, all: Dataset, valSplit: number, seed: number): TrainingData {
  if (valSplit === 0) {
    return { train: all, evalName: 'val', notices: [`notice: ${dir} has no train/ and test/ split and --val-split is 0; ` +
      'training without evaluation (best.ckpt follows training accuracy)'] };
  }
  const { train, val } = holdOut(all, valSplit, seed);
  return { train, eval: val, evalName: 'val', notices: [`notice: ${dir} has no train/ and test/ split; holding out ${val.size} of its ` +
    `${all.size} images (${+(100 * valSplit).toFixed(2)}% ${all.masks ? 'of them' : 'of each class'}, seeded) for validation (--val-split)`] };
}

/** The samples at `indices`, in that order. */
function subset(ds: Dataset, indices: readonly number[]): Dataset {
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const images = new Uint8Array(indices.length * per);
  indices.forEach((i, k) => images.set(ds.images.subarray(i * per, (i + 1) * per), k * per));
  const labels = Int32Array.from(indices, (i) => ds.labels[i]);
  return { ...ds, size: indices.length, images, labels, masks: ds.masks && subsetMasks(ds.masks, indices) };
}

function subsetMasks(m: NonNullable<Dataset['masks']>, indices: readonly number[]): Dataset['masks'] {
  const per = m.shape[0] * m.shape[1];
  const data = new Uint8Array(indices.length * per);
  indices.forEach((i, k) => data.set(m.data.subarray(i * per, (i + 1) * per), k * per));
  return { shape: m.shape, data, files: indices.map((i) => m.files[i]) };
}

/**
 * A seeded, stratified validation split: from each class, round(fraction x its count) images
 * (at least one, and never all of them) chosen by a shuffle seeded by (seed, class). Both parts keep
 * the original order. (Image/mask pairs all have label 0: the same rule over all of them.)
 */
export function holdOut(ds: Dataset, fraction: number, seed: number): { train: Dataset; val: Dataset } {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < ds.size; i++) byClass.set(ds.labels[i], [...(byClass.get(ds.labels[i]) ?? []), i]);
  const held = new Set<number>();
  for (const [label, members] of byClass) {
    const take = Math.min(members.length - 1, Math.max(1, Math.round(fraction * members.length)));
    const order = epochOrder(members.length, mixSeed(seed, 0x5a11d, label), 0);
    for (let k = 0; k < take; k++) held.add(members[order[k]]);
  }
  const all = Array.from({ length: ds.size }, (_, i) => i);
  return { train: subset(ds, all.filter((i) => !held.has(i))), val: subset(ds, all.filter((i) => held.has(i))) };
}

/** The first n samples of a data set (all of them when n is at least its size). */
export function sliceDataset(ds: Dataset, n: number): Dataset {
  if (!Number.isInteger(n) || n < 1) throw new UserError(`a data slice needs a positive whole number of samples, got ${n}`);
  if (n >= ds.size) return ds;
  const per = ds.shape.reduce((a, b) => a * b, 1);
  return { ...ds, size: n, images: ds.images.subarray(0, n * per), labels: ds.labels.subarray(0, n), masks: ds.masks && subsetMasks(ds.masks, Array.from({ length: n }, (_, i) => i)) };
}

// ---------------------------------------------------------------------------------------------
// Choosing a loader

export interface LoadOptions {
  split?: Split;
  /** Class names for IDX data sets (e.g. FASHION_MNIST_CLASSES); label order for image folders. */
  classNames?: string[];
  /** The model's input: required for image folders, which are decoded to this size. */
  channels?: 1 | 3;
  height?: number;
  width?: number;
  resize?: boolean;
}

/**
 * One split of a data directory: IDX files, or class folders (under train/ and test/ when those are
 * the only subfolders; a folder without them is one split, returned whole — loadTrainingData holds
 * out a validation part of it).
 */
export async function loadDataset(dir: string, opts: LoadOptions = {}): Promise<Dataset> {
  const split = opts.split ?? 'train';
  const layout = findLayout(dir);
  if (layout.kind === 'idx') return loadIdxDataset(dir, split, opts);
  if (layout.kind === 'masks') throw new UserError('holds image/mask pairs; they load with the model\'s output size (loadTrainingData)', dir);
  const { channels, height, width } = opts;
  if (!channels || !height || !width) throw new UserError('holds image folders; loading them needs the model\'s channels, height and width', dir);
  const image = { channels, height, width, resize: opts.resize };
  const classes = classOrder(layout.train, [...classFolders(layout.train).keys()], opts.classNames);
  if (split === 'train') return loadFolders(layout.train, classes, image);
  // Never the training images again under the name "test": that would report training accuracy as test accuracy.
  if (!layout.test) throw new UserError('has no test split (class folders under train/ and test/); loadTrainingData holds out a validation part instead', dir);
  return loadFolders(layout.test, classes, image);
}

/**
 * Checks that a data set fits a model with the given input shape [C, H, W] and number of classes;
 * a dense model's (`dense`) masks have its output's H×W and a class (or the ignore label) at every pixel.
 */
export function checkAgainstModel(ds: Dataset, inputShape: readonly number[], numClasses: number, dense?: { height: number; width: number; ignore?: number }): void {
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (inputShape.length !== 3 || inputShape.some((d, i) => d !== ds.shape[i])) {
    throw new UserError(`images have shape ${fmt(ds.shape)} (channels, height, width) ` +
      `but the model's input is ${fmt(inputShape)}`, ds.source);
  }
  if (dense || ds.masks) {
    checkMasks(ds, numClasses, dense);
    return;
  }
  const max = maxLabel(ds.labels);
  if (max >= numClasses) {
    throw new UserError(`label ${max} (class '${ds.classes[max] ?? max}') is out of range: ` +
      `the model has ${numClasses} classes (labels 0..${numClasses - 1})`, ds.labelsFile ?? ds.source);
  }
}

function checkMasks(ds: Dataset, numClasses: number, dense?: { height: number; width: number; ignore?: number }): void {
  if (!dense || !ds.masks) throw new UserError(dense ? 'holds no masks, but the model predicts one' : 'holds masks, but the model gives one prediction per image', ds.source);
  const [h, w] = ds.masks.shape;
  if (h !== dense.height || w !== dense.width) throw new UserError(`masks are ${h}x${w}, but the model predicts ${dense.height}x${dense.width}`, ds.source);
  const per = h * w, data = ds.masks.data;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < numClasses || data[i] === dense.ignore) continue;
    const at = i % per;
    const ignore = dense.ignore === undefined ? '; a label for unlabelled pixels is declared with loss: ... ignore=VALUE' : ` (nor the ignore label ${dense.ignore})`;
    throw new UserError(`pixel value ${data[i]} at row ${Math.floor(at / w)}, column ${at % w} is not a class: ` +
      `the model predicts ${numClasses} classes (mask values 0..${numClasses - 1})${ignore}`, ds.masks.files[Math.floor(i / per)]);
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
  /** Mask pixels that a crop shifts in from outside the image: the ignore label (default 0). */
  maskFill?: number;
}

export interface Batch {
  /** count * C * H * W normalised floats. */
  x: Float32Array;
  /** count labels, or count masks of H * W (image/mask pairs). */
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
  const perLabel = ds.masks ? ds.masks.shape[0] * ds.masks.shape[1] : 1;
  const y = opts.labelType === 'int32' ? new Int32Array(count * perLabel) : new BigInt64Array(count * perLabel);
  const { flip = false, cropPad = 0 } = opts.augment ?? {};
  const rand = seededRandom(mixSeed(opts.seed ?? 0, opts.epoch ?? 0, b, 0xa06));
  for (let k = 0; k < count; k++) {
    const i = indices[k];
    // Draw the same number of values per sample whatever the options, so the stream stays aligned.
    const mirror = flip && rand() < 0.5;
    const dy = cropPad ? Math.floor(rand() * (2 * cropPad + 1)) - cropPad : 0;
    const dx = cropPad ? Math.floor(rand() * (2 * cropPad + 1)) - cropPad : 0;
    writeSample(ds.images, i * per, x, k * per, ds.shape, luts, mirror, dy, dx);
    if (ds.masks) writeMask(ds.masks, i, y, k, opts.maskFill ?? 0, mirror, dy, dx);
    else if (y instanceof Int32Array) y[k] = ds.labels[i];
    else y[k] = BigInt(ds.labels[i]);
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

/** Sample i's mask into labels k, moved as writeSample moves its image; `fill` where it shifts in from outside. */
function writeMask(masks: NonNullable<Dataset['masks']>, i: number, out: Int32Array | BigInt64Array, k: number, fill: number, mirror: boolean, dy: number, dx: number): void {
  const [h, w] = masks.shape;
  const src = masks.data, srcOff = i * h * w, outOff = k * h * w;
  for (let r = 0; r < h; r++) {
    const sr = r + dy;
    for (let col = 0; col < w; col++) {
      const sc = (mirror ? w - 1 - col : col) + dx;
      const v = sr < 0 || sr >= h || sc < 0 || sc >= w ? fill : src[srcOff + sr * w + sc];
      if (out instanceof Int32Array) out[outOff + r * w + col] = v;
      else out[outOff + r * w + col] = BigInt(v);
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
