/**
 * Dense prediction's data and metrics: image/mask PNG pairs (found, paired by name, checked against
 * the model's output), masks moved with their images by augmentation, the held-out split, and a
 * dense model trained by the trainer with pixel accuracy and mean IoU in its log.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { batches, findLayout, loadTrainingData, type DataSpec } from '../src/runtime/dataset.ts';
import { checkData, meanIou, train } from '../src/runtime/trainer.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import { defaultTrainConfig } from '../src/compiler/train-config.ts';
import { checkModel } from './helpers/grad-check.ts';
import { expectUserError } from './helpers/errors.ts';
import { SEGMENTATION_CLASSES, writeSegmentationSet } from './helpers/segmentation.ts';

const tmp = mkdtempSync(join(tmpdir(), 'cnnc-seg-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SIZE = 16;
const spec = (over: Partial<DataSpec> = {}): DataSpec => ({
  model: 'Seg', input: [1, SIZE, SIZE], dense: { classes: SEGMENTATION_CLASSES, height: SIZE, width: SIZE }, valSplit: 0.25, seed: 1, ...over,
});
const gray = (data: Uint8Array, h: number, w: number, channels = 1) => {
  const image = sharp(Buffer.from(data), { raw: { width: w, height: h, channels: channels as 1 | 3 } });
  return (channels === 1 ? image.toColourspace('b-w') : image).png().toBuffer();
};

async function set(name: string, count = 8): Promise<string> {
  const dir = join(tmp, name);
  await writeSegmentationSet(dir, count, SIZE, 7);
  return dir;
}

describe('image/mask pairs', () => {
  it('are found as images/ and masks/ (or under train/ and test/), paired by name, a part held out for validation', async () => {
    const dir = await set('plain');
    expect(findLayout(dir)).toEqual({ kind: 'masks', train: dir });
    const d = await loadTrainingData(dir, spec());
    expect(d.evalName).toBe('val');
    expect([d.train.size, d.eval!.size]).toEqual([6, 2]);
    expect(d.notices.join('\n')).toContain('holding out 2 of its 8 images (25% of them, seeded)');
    const masks = d.train.masks!;
    expect(masks.shape).toEqual([SIZE, SIZE]);
    expect(masks.data.length).toBe(6 * SIZE * SIZE);
    // Each sample's mask is the file of the same name as its image.
    const file = masks.files[0];
    expect((await sharp(file).metadata()).channels).toBe(1);
    const { data } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    expect([...masks.data.subarray(0, SIZE * SIZE)]).toEqual([...data]);
    expect(new Set(masks.data)).toEqual(new Set([0, 1, 2]));

    const split = join(tmp, 'split');
    await writeSegmentationSet(join(split, 'train'), 4, SIZE, 1);
    await writeSegmentationSet(join(split, 'test'), 3, SIZE, 2);
    const s = await loadTrainingData(split, spec());
    expect([s.train.size, s.eval!.size, s.evalName]).toEqual([4, 3, 'test']);
  });

  it('refuse missing partners, other sizes, colour, palette and JPEG masks, and values that are no class', async () => {
    const dir = await set('bad');
    rmSync(join(dir, 'masks', '003.png'));
    await expectUserError(loadTrainingData(dir, spec()), join(dir, 'images'), '1 image without a mask', '003.png');
    copyFileSync(join(dir, 'masks', '002.png'), join(dir, 'masks', '003.png'));
    copyFileSync(join(dir, 'masks', '002.png'), join(dir, 'masks', 'extra.png'));
    await expectUserError(loadTrainingData(dir, spec()), join(dir, 'masks'), '1 mask without an image', 'extra.png');
    rmSync(join(dir, 'masks', 'extra.png'));
    const mask = join(dir, 'masks', '005.png');
    writeFileSync(mask, await gray(new Uint8Array(SIZE * 8), 8, SIZE));
    await expectUserError(loadTrainingData(dir, spec()), mask, 'mask is 8x16', 'predicts 16x16', 'not resized');
    const colour = Uint8Array.from({ length: SIZE * SIZE * 3 }, (_, i) => (i === 4 ? 1 : 0));
    writeFileSync(mask, await gray(colour, SIZE, SIZE, 3));
    await expectUserError(loadTrainingData(dir, spec()), mask, 'colour pixels (row 0, column 1)');
    writeFileSync(mask, await sharp(Buffer.from(colour), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png({ palette: true }).toBuffer());
    await expectUserError(loadTrainingData(dir, spec()), mask, 'palette PNG');
    writeFileSync(mask, await sharp(Buffer.from(new Uint8Array(SIZE * SIZE)), { raw: { width: SIZE, height: SIZE, channels: 1 } }).jpeg().toBuffer());
    await expectUserError(loadTrainingData(dir, spec()), mask, 'is jpeg, not PNG');
    const values = new Uint8Array(SIZE * SIZE);
    values[SIZE + 2] = 3;
    writeFileSync(mask, await gray(values, SIZE, SIZE));
    const d = await loadTrainingData(dir, spec({ valSplit: 0 }));
    const model = checkModel(`model Seg {\n  input 1x${SIZE}x${SIZE}\n  conv 3 1x1\n}\n`);
    await expectUserError(() => checkData(model, defaultTrainConfig(), d.train), mask, 'pixel value 3 at row 1, column 2', '3 classes (mask values 0..2)', 'ignore=');
    const ignoring = { ...defaultTrainConfig(), loss: { kind: 'cross_entropy' as const, smoothing: 0, ignore: 3 } };
    checkData(model, ignoring, d.train);
  });

  it('are for dense models only, and dense models train on them only', async () => {
    const dir = await set('which');
    await expectUserError(loadTrainingData(dir, spec({ dense: undefined })), dir, 'image/mask pairs', 'one prediction per image');
    const classes = join(tmp, 'classes');
    for (const c of ['a', 'b']) {
      mkdirSync(join(classes, c), { recursive: true });
      writeFileSync(join(classes, c, 'x.png'), await gray(new Uint8Array(SIZE * SIZE), SIZE, SIZE));
    }
    await expectUserError(loadTrainingData(classes, spec()), classes, 'each of 16x16 positions', 'images/NAME.png with masks/NAME.png', 'class folders');
  });

  it('flip and crop move each mask with its image; pixels shifted in from outside get the fill label', async () => {
    const dir = await set('augment', 4);
    const ds = (await loadTrainingData(dir, spec({ valSplit: 0 }))).train;
    // Images whose pixel value is the mask's: the moved image then shows where the mask must be.
    const same = { ...ds, images: Uint8Array.from(ds.masks!.data, (v) => v * 50) };
    const opts = { batchSize: 4, seed: 3, augment: { flip: true, cropPad: 3 }, maskFill: 9, labelType: 'int32' as const };
    let flips = 0;
    for (const b of batches(same, opts)) {
      const y = b.y as Int32Array;
      for (let i = 0; i < y.length; i++) {
        const v = Math.round(b.x[i] * 255 / 50);
        expect(y[i] === 9 ? v : y[i]).toBe(v); // a shifted-in pixel: zero in the image, 9 in the mask
      }
      const plain = [...batches(same, { ...opts, augment: {} })][0];
      flips += Number(![...y].every((v, i) => v === (plain.y as Int32Array)[i]));
    }
    expect(flips).toBe(1);
  });
});

describe('a dense model in the trainer', () => {
  it('trains on masks, logging pixel accuracy and mean IoU for training and validation', async () => {
    const dir = await set('train', 24);
    const model = checkModel(`model Seg {\n  input 1x${SIZE}x${SIZE}\n  conv 8 3x3 pad=same -> bn -> relu -> conv 8 3x3 pad=same -> relu -> conv 3 1x1\n}\n`);
    const config = { ...defaultTrainConfig(), batch: 8, epochs: 2, optimizer: { ...defaultTrainConfig().optimizer, lr: 0.01 }, augment: { flip: true, crop: 2 } };
    const data = await loadTrainingData(dir, spec({ valSplit: 0.25 }));
    const runner = await OrtTrainRunner.create(model, config, { device: 'cpu', threads: 1, batch: 8 });
    const out = join(tmp, 'run');
    const lines: string[] = [];
    const res = await train({ model, config, runner, trainSet: data.train, testSet: data.eval, evalName: 'val', outDir: out, log: { write: (t) => lines.push(t) }, stepsPerCall: 2 });
    await runner.dispose();
    const epochs = res.history.filter((r) => r.type === 'epoch');
    expect(epochs).toHaveLength(2);
    for (const r of epochs) {
      for (const v of [r.acc, r.miou, r.val_acc, r.val_miou]) expect(v).toBeGreaterThan(0);
      for (const v of [r.acc, r.miou, r.val_acc, r.val_miou]) expect(v).toBeLessThanOrEqual(1);
    }
    expect(res.best!.miou).toBe(Math.max(...epochs.map((r) => r.val_miou!)));
    expect(lines.join('')).toMatch(/val acc [\d.]+%  val mIoU 0\.\d{4}/);
    const log = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.at(-1).val_miou).toBe(epochs[1].val_miou);
    expect(readFileSync(join(out, 'curves.svg'), 'utf8')).toContain('val mIoU');
  });

  it('mean IoU: over the classes predicted or labelled somewhere', () => {
    expect(meanIou({ intersection: [5, 0, 2], union: [10, 0, 4] })).toBe(0.5);
    expect(meanIou({ intersection: [0, 0], union: [0, 3] })).toBe(0);
    expect(meanIou({})).toBeUndefined();
  });
});
