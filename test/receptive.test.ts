/**
 * Receptive fields (size in input pixels / jump between neighbouring outputs) through the layer
 * kinds' own rules: sliding windows and global layers (the default), upsampling, transposed
 * convolution, pixel shuffle and adaptive pooling; and the size formulas hovers show for them.
 */
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { layers } from '../src/compiler/model.ts';
import { Analysis } from '../src/lsp/analysis.ts';
import { hover } from '../src/lsp/hover.ts';

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

describe('size formulas in hovers', () => {
  const text = `model H {
  input 4x112x11
  maxpool 3 stride=2 ceil=on -> maxpool 2 stride=3 pad=[0,1,0,1] ceil=on -> convtranspose 4 3x3 stride=2 pad=1 output_padding=1
  -> upsample 2x3 -> upsample size=5x6 mode=bilinear -> pixelshuffle 2 -> avgpool 2
}
`;
  const analysis = new Analysis(text);
  const at = (needle: string) => {
    const offset = text.indexOf(needle);
    const line = text.slice(0, offset).split('\n').length - 1;
    const h = hover(analysis, { line, character: offset - text.lastIndexOf('\n', offset - 1) });
    return (h!.contents as { value: string }).value;
  };

  it('says how each kind sizes its output, with the numbers', () => {
    expect(at('maxpool 3')).toContain('H: `ceil((112 + 0 - 3) / 2) + 1 = 56`');
    expect(at('maxpool 3')).toContain('W: `ceil((11 + 0 - 3) / 2) + 1 = 5`');
    expect(at('maxpool 2')).toContain('H: `ceil((56 + 0 - 2) / 3) + 1 = 19`');
    expect(at('maxpool 2')).toContain('W: `ceil((5 + 2 - 2) / 3) + 1 - 1 = 2 (the last window would start in the padding)`');
    expect(at('convtranspose')).toContain('H: `(19 - 1)·2 - 2 + 2 + 1 + 1 = 38`');
    expect(at('upsample 2x3')).toContain('W: `4·3 = 12`');
    expect(at('upsample size')).toContain('H: `size 5`');
    expect(at('pixelshuffle')).toContain('H: `5·2 = 10`');
    expect(at('avgpool 2')).toContain('H: `floor((10 + 0 - 2) / 2) + 1 = 5`');
  });
});
