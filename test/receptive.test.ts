/**
 * Receptive fields (size in input pixels / jump between neighbouring outputs) through the layer
 * kinds' own rules: sliding windows and global layers (the default), upsampling, transposed
 * convolution, pixel shuffle and adaptive pooling.
 */
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { layers } from '../src/compiler/model.ts';

/** The receptive field after each layer of a one-model source. */
function fields(input: string, body: string): { size: number[]; jump: number[]; global: boolean }[] {
  const r = check(`model R {\n  input ${input}\n  ${body}\n}\n`);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return layers(r.models[0].root).map((l) => ({ size: [...l.rf!.size], jump: [...l.rf!.jump], global: l.rf!.global ?? false }));
}

describe('receptive fields', () => {
  it('sliding windows add d·(k - 1)·jump and multiply the jump by the stride; global layers see the input', () => {
    expect(fields('1x32x32', 'conv 1 3x3 -> conv 1 3x3 stride=2 -> conv 1 3x3 dilation=2 -> maxpool 2 ceil=on -> gap').map((f) => [f.size[0], f.jump[0], f.global]))
      .toEqual([[3, 1, false], [5, 2, false], [13, 2, false], [15, 4, false], [32, 4, true]]);
  });

  it('upsampling divides the jump by the scale; bilinear reads one more input step, nearest none', () => {
    const f = fields('1x8x8', 'conv 1 3x3 stride=2 pad=1 -> upsample 2 -> upsample 2x1 mode=bilinear -> upsample size=16x4 mode=bilinear');
    expect(f.map((x) => [x.size, x.jump])).toEqual([
      [[3, 3], [2, 2]], [[3, 3], [1, 1]], [[4, 3], [0.5, 1]], [[4, 4], [0.5, 2]],
    ]);
  });

  it('a transposed convolution reads the inputs whose taps land on one output; 2x2 stride 2 reads one', () => {
    const f = fields('1x8x8', 'conv 1 3x3 stride=2 pad=1 -> convtranspose 1 2x2 stride=2 -> convtranspose 1 3x3 stride=2 -> convtranspose 1 3x3 dilation=2 stride=2');
    expect(f.map((x) => [x.size[0], x.jump[0]])).toEqual([[3, 2], [3, 1], [4, 0.5], [5, 0.25]]);
  });

  it('pixel shuffle divides the jump by its factor; adaptive pooling adds its largest bin less one', () => {
    const f = fields('4x10x9', 'pixelshuffle 2 -> adaptiveavgpool 4x5');
    expect(f.map((x) => [x.size, x.jump])).toEqual([[[1, 1], [0.5, 0.5]], [[3, 3], [2.5, 1.8]]]);
  });

  it('the transposed convolution\'s span is the most distance between inputs sharing an output, by enumeration', () => {
    for (let k = 1; k <= 7; k++)
      for (let s = 1; s <= 5; s++)
        for (let d = 1; d <= 4; d++) {
          // Output o reads input i through tap j when i·s + j·d = o; enumerate o over one period.
          let most = 0;
          for (let o = 0; o < s * d * k; o++) {
            const inputs = Array.from({ length: k }, (_, j) => (o - j * d) / s).filter((i) => Number.isInteger(i));
            if (inputs.length) most = Math.max(most, Math.max(...inputs) - Math.min(...inputs));
          }
          const [f] = fields('1x40x40', `convtranspose 1 ${k}x1 stride=${s}x1 dilation=${d}x1`);
          expect(f.size[0] - 1, `k ${k} s ${s} d ${d}`).toBe(most);
        }
  });
});
