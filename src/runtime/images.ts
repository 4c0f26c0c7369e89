/**
 * Decoding PNG/JPEG images into the CHW layout a model takes.
 *
 * Channel rule (the model's channel count decides, never the file):
 *  - alpha is dropped (not composited), so a transparent pixel keeps its colour values;
 *  - a grayscale image given to a 3-channel model is replicated into R, G and B;
 *  - a colour image given to a 1-channel model becomes luminance Y = 0.299 R + 0.587 G + 0.114 B
 *    (ITU-R BT.601 on the stored sRGB values, the same weights PIL and torchvision use);
 *  - CMYK and other colour spaces are converted to sRGB first. EXIF orientation is applied.
 * Resizing stretches to exactly height x width (no cropping), like torchvision's Resize((h, w)).
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { UserError } from '../errors.ts';

export interface ImageOptions {
  channels: 1 | 3;
  height: number;
  width: number;
  /** Resize to height x width (default). When false, an image of another size is an error. */
  resize?: boolean;
  /** When true, the file's own channel count (gray vs colour) must match `channels` instead of being converted. */
  strict?: boolean;
}

const FORMATS = new Set(['png', 'jpeg']);
const GRAY_SPACES = new Set(['b-w', 'grey16']);

/** Decodes an image file to CHW unsigned bytes (0..255). */
export async function decodeImage(path: string, opts: ImageOptions): Promise<Uint8Array> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (e) {
    throw new UserError(`cannot read image: ${(e as Error).message}`, path);
  }
  let rgb: Buffer, width: number, height: number;
  try {
    const meta = await sharp(file).metadata();
    if (!meta.format || !FORMATS.has(meta.format)) {
      throw new UserError(`unsupported image format '${meta.format}'; use PNG or JPEG`, path);
    }
    if (opts.strict) checkChannels(path, GRAY_SPACES.has(meta.space ?? ''), opts.channels);
    let pipeline = sharp(file).autoOrient().removeAlpha().toColourspace('srgb');
    if (opts.resize !== false) pipeline = pipeline.resize(opts.width, opts.height, { fit: 'fill' });
    const out = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    ({ data: rgb, info: { width, height } } = out);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`not a readable PNG or JPEG image (${(e as Error).message.split('\n')[0]})`, path);
  }
  if (width !== opts.width || height !== opts.height) {
    throw new UserError(`image is ${height}x${width} (height x width) but ${opts.height}x${opts.width} is needed` +
      ' (enable resizing or resize the data set)', path);
  }
  return opts.channels === 3 ? rgbToChw(rgb, width * height) : rgbToGray(rgb, width * height);
}

function checkChannels(path: string, isGray: boolean, channels: 1 | 3): void {
  if (isGray !== (channels === 1)) {
    throw new UserError(`image is ${isGray ? 'grayscale' : 'colour'} but the model takes ${channels} channel(s)` +
      ' (strict channel checking is on)', path);
  }
}

function rgbToChw(rgb: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(3 * pixels);
  for (let i = 0; i < pixels; i++) {
    out[i] = rgb[3 * i];
    out[pixels + i] = rgb[3 * i + 1];
    out[2 * pixels + i] = rgb[3 * i + 2];
  }
  return out;
}

function rgbToGray(rgb: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    out[i] = Math.round(0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]);
  }
  return out;
}

/** Decodes an image file to CHW floats in [0, 1]. */
export async function loadImage(path: string, opts: ImageOptions): Promise<Float32Array> {
  const bytes = await decodeImage(path, opts);
  return Float32Array.from(bytes, (v) => v / 255);
}

/**
 * Per-channel normalisation (v - mean[c]) / std[c] of a CHW array; the channel count is mean.length.
 * Returns a new array.
 */
export function normalize(chw: Float32Array, mean: number[], std: number[]): Float32Array {
  const c = mean.length;
  if (c === 0 || std.length !== c) throw new UserError(`mean and std need one value per channel (got ${c} and ${std.length})`);
  if (std.some((s) => !(s > 0))) throw new UserError(`std values must be positive (got [${std.join(', ')}])`);
  if (chw.length % c !== 0) throw new Error(`normalize: ${chw.length} values do not split into ${c} channels`);
  const plane = chw.length / c;
  return chw.map((v, i) => {
    const ch = Math.floor(i / plane);
    return (v - mean[ch]) / std[ch];
  });
}
