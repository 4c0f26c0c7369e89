/**
 * Decoding PNG/JPEG images into the CHW layout a model takes, and PNG masks into class indices.
 *
 * Channel rule when converting (with resize; the model's channel count decides, never the file):
 *  - alpha is dropped (not composited), so a transparent pixel keeps its colour values;
 *  - a grayscale image given to a 3-channel model is replicated into R, G and B;
 *  - a colour image given to a 1-channel model becomes luminance Y = 0.299 R + 0.587 G + 0.114 B
 *    (ITU-R BT.601 on the stored sRGB values, the same weights PIL and torchvision use);
 *  - CMYK and other colour spaces are converted to sRGB first. EXIF orientation is applied.
 * Resizing stretches to exactly height x width (no cropping), like torchvision's Resize((h, w)).
 * Data sets refuse images of another size or channel count unless asked to resize (ImageOptions).
 */
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';
import { UserError } from '../errors.ts';

export interface ImageOptions {
  channels: 1 | 3;
  height: number;
  width: number;
  /**
   * A file whose size or channel count differs from channels x height x width: false refuses it,
   * naming both shapes (the default of decodeImage, which data sets use: a folder of 64x64 colour
   * images silently stretched into a 28x28 gray model trains on something else than the user thinks);
   * true resizes it (stretching, like torchvision's Resize((h, w))) and converts gray and colour.
   */
  resize?: boolean;
  /** Called for each file that `resize` converted, with its shape and the model's (C x H x W). */
  onConvert?: (file: string, from: string, to: string) => void;
}

const FORMATS = new Set(['png', 'jpeg']);
const GRAY_SPACES = new Set(['b-w', 'grey16']);

const shapeText = (c: number, h: number, w: number) => `${c}x${h}x${w}`;

/** The image's shape as the model would see it: gray or colour, after EXIF orientation. */
function fileShape(meta: Metadata): { channels: 1 | 3; height: number; width: number } {
  const colourChannels = (meta.channels ?? 3) - (meta.hasAlpha ? 1 : 0);
  const gray = GRAY_SPACES.has(meta.space ?? '') || colourChannels === 1;
  const turned = (meta.orientation ?? 1) >= 5; // EXIF orientations 5-8 swap width and height
  const width = meta.width ?? 0, height = meta.height ?? 0;
  return { channels: gray ? 1 : 3, height: turned ? width : height, width: turned ? height : width };
}

/** Decodes an image file to CHW unsigned bytes (0..255); see ImageOptions.resize for other shapes. */
export async function decodeImage(path: string, opts: ImageOptions): Promise<Uint8Array> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (e) {
    throw new UserError(`cannot read image: ${(e as Error).message}`, path);
  }
  let rgb: Buffer;
  try {
    const meta = await sharp(file).metadata();
    if (!meta.format || !FORMATS.has(meta.format)) {
      throw new UserError(`unsupported image format '${meta.format}'; use PNG or JPEG`, path);
    }
    const has = fileShape(meta);
    const sizeDiffers = has.height !== opts.height || has.width !== opts.width;
    const refuse = (channels: number) => {
      throw new UserError(`image is ${shapeText(channels, has.height, has.width)} (channels x height x width) but the model takes ` +
        `${shapeText(opts.channels, opts.height, opts.width)}; pass --resize to resize and convert such images`, path);
    };
    let pipeline = sharp(file).autoOrient().removeAlpha().toColourspace('srgb');
    if (opts.resize) pipeline = pipeline.resize(opts.width, opts.height, { fit: 'fill' });
    rgb = await pipeline.raw({ depth: 'uchar' }).toBuffer();
    // Colour files whose pixels are all gray (R = G = B, common for gray data saved as RGB) lose nothing as one channel.
    const channels = has.channels === 3 && opts.channels === 1 && isGray(rgb) ? 1 : has.channels;
    if ((sizeDiffers || channels !== opts.channels) && !opts.resize) refuse(channels);
    if (sizeDiffers || channels !== opts.channels) {
      opts.onConvert?.(path, shapeText(channels, has.height, has.width), shapeText(opts.channels, opts.height, opts.width));
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`not a readable PNG or JPEG image (${(e as Error).message.split('\n')[0].replace(/[:\s]+$/, '')})`, path);
  }
  const pixels = opts.width * opts.height;
  return opts.channels === 3 ? rgbToChw(rgb, pixels) : rgbToGray(rgb, pixels);
}

/**
 * Decodes a mask: a PNG whose pixel values are class indices, 8-bit gray (colour files are taken
 * when every pixel is gray; alpha is dropped), of exactly [height, width]: masks are never resized
 * (interpolation would invent classes) and never JPEG (lossy compression changes the values).
 */
export async function decodeMask(path: string, [height, width]: readonly [number, number]): Promise<Uint8Array> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (e) {
    throw new UserError(`cannot read mask: ${(e as Error).message}`, path);
  }
  let meta: Metadata;
  try {
    meta = await sharp(file).metadata();
  } catch (e) {
    throw new UserError(`not a readable PNG mask (${(e as Error).message.split('\n')[0]})`, path);
  }
  const why = meta.format !== 'png' ? `is ${meta.format ?? 'not an image'}, not PNG (masks must be lossless)`
    : meta.isPalette ? 'is a palette PNG; save masks as 8-bit grayscale, each pixel value the class index'
      : meta.depth !== 'uchar' ? `has ${meta.depth} samples; masks are 8-bit` : undefined;
  if (why) throw new UserError(`mask ${why}`, path);
  if (meta.height !== height || meta.width !== width) {
    throw new UserError(`mask is ${meta.height}x${meta.width}, but the model predicts ${height}x${width} (masks are not resized)`, path);
  }
  const { data, info } = await sharp(file).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const mask = new Uint8Array(height * width);
  const step = info.channels, colour = info.channels >= 3;
  for (let i = 0; i < mask.length; i++) {
    const v = data[i * step];
    if (colour && (data[i * step + 1] !== v || data[i * step + 2] !== v)) {
      throw new UserError(`mask has colour pixels (row ${Math.floor(i / width)}, column ${i % width}); masks are grayscale, each pixel value the class index`, path);
    }
    mask[i] = v;
  }
  return mask;
}

function isGray(rgb: Uint8Array): boolean {
  for (let i = 0; i < rgb.length; i += 3) if (rgb[i] !== rgb[i + 1] || rgb[i] !== rgb[i + 2]) return false;
  return true;
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

/**
 * Decodes an image file to CHW floats in [0, 1]. Unlike decodeImage it converts other shapes unless
 * told `resize: false`; `cnnc predict` passes false unless given --resize, and prints a note per
 * conversion through onConvert.
 */
export async function loadImage(path: string, opts: ImageOptions): Promise<Float32Array> {
  const bytes = await decodeImage(path, { ...opts, resize: opts.resize ?? true });
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
