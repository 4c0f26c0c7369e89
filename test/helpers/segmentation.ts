/**
 * A seeded segmentation data set for the tests: gray images of discs (class 1) and squares
 * (class 2) on noise (class 0), written as image/mask PNG pairs, DIR/images/NAME.png and
 * DIR/masks/NAME.png (a mask pixel's value is its class). The shapes' brightness ranges overlap
 * each other's and the noise's, so telling them apart takes their outline, not only a threshold.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { rng } from './random.ts';

export const SEGMENTATION_CLASSES = 3;

/** One image and its mask, size x size, from a seeded generator. */
export function segmentationSample(size: number, next: () => number): { image: Uint8Array; mask: Uint8Array } {
  const image = Uint8Array.from({ length: size * size }, () => Math.floor(next() * 110));
  const mask = new Uint8Array(size * size);
  const shapes = 1 + Math.floor(next() * 3);
  for (let s = 0; s < shapes; s++) {
    const cls = next() < 0.5 ? 1 : 2;
    const r = size * (0.08 + 0.12 * next());
    const cy = r + next() * (size - 2 * r), cx = r + next() * (size - 2 * r);
    const base = cls === 1 ? 175 : 135;
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      const inside = cls === 1 ? (y + 0.5 - cy) ** 2 + (x + 0.5 - cx) ** 2 <= r * r : Math.abs(y + 0.5 - cy) <= r && Math.abs(x + 0.5 - cx) <= r;
      if (!inside) continue;
      image[y * size + x] = Math.round(base + (next() - 0.5) * 90);
      mask[y * size + x] = cls;
    }
  }
  return { image, mask };
}

/** An 8-bit grayscale PNG (sharp writes one channel as RGB unless told b-w). */
const png = (data: Uint8Array, size: number, file: string) => sharp(Buffer.from(data), { raw: { width: size, height: size, channels: 1 } }).toColourspace('b-w').png().toFile(file);

/** Writes `count` pairs named 000.png, 001.png, ... into dir/images and dir/masks. */
export async function writeSegmentationSet(dir: string, count: number, size: number, seed: number): Promise<void> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  mkdirSync(join(dir, 'masks'), { recursive: true });
  const next = rng(seed);
  for (let i = 0; i < count; i++) {
    const { image, mask } = segmentationSample(size, next);
    const name = `${String(i).padStart(3, '0')}.png`;
    await png(image, size, join(dir, 'images', name));
    await png(mask, size, join(dir, 'masks', name));
  }
}
