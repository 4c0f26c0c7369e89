import { describe, expect, it } from 'vitest';
import * as ref from './reference/ops.ts';

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12) => {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol * (1 + Math.abs(expected[i])));
};

describe('reference ops', () => {
  it('reproduces the tutorial convolution: 1..25 with a vertical Sobel kernel gives -8', () => {
    const image = Array.from({ length: 25 }, (_, i) => i + 1);
    const kernel = [1, 0, -1, 2, 0, -2, 1, 0, -1];
    const y = ref.conv2d(image, [1, 1, 5, 5], kernel, [1, 1, 3, 3], null);
    expect(y.shape).toEqual([1, 1, 3, 3]);
    expect(y.data[0]).toBe(-8);
    // Each row of the image rises by 2 over the kernel's width, so every position gives -8.
    expect([...y.data]).toEqual(Array(9).fill(-8));
  });

  it('reproduces the tutorial 2x2/2 max pool', () => {
    const fm = [1, 3, 2, 4, 5, 6, 1, 2, 3, 2, 8, 1, 4, 1, 3, 7];
    const y = ref.maxPool2d(fm, [1, 1, 4, 4], { kernel: [2, 2], stride: [2, 2] });
    expect(y.shape).toEqual([1, 1, 2, 2]);
    expect([...y.data]).toEqual([6, 4, 4, 8]);
  });

  it('computes conv output sizes with pads, strides and dilation', () => {
    const x = new Float64Array(1 * 2 * 7 * 9).fill(1);
    const w = new Float64Array(4 * 1 * 3 * 2).fill(1);
    const y = ref.conv2d(x, [1, 2, 7, 9], w, [4, 1, 3, 2], null, { stride: [2, 3], pads: [1, 0, 2, 1], dilation: [2, 1], groups: 2 });
    // H: (7+3-2*2-1)/2+1 = 3; W: (9+1-1-1)/3+1 = 3
    expect(y.shape).toEqual([1, 4, 3, 3]);
    expect(y.data[0]).toBe(4); // top row of the kernel lands in padding: 2 rows x 2 cols in bounds
  });

  it('averages with and without padding in the divisor', () => {
    const x = [1, 2, 3, 4];
    const o = { kernel: [2, 2] as [number, number], stride: [1, 1] as [number, number], pads: [1, 1, 0, 0] as [number, number, number, number] };
    expect(ref.avgPool2d(x, [1, 1, 2, 2], o).data[0]).toBe(1 / 4);
    expect(ref.avgPool2d(x, [1, 1, 2, 2], { ...o, countIncludePad: false }).data[0]).toBe(1);
    expect(ref.sumPool2d(x, [1, 1, 2, 2], o).data[3]).toBe(10);
    expect(ref.globalAvgPool(x, [1, 1, 2, 2]).data[0]).toBe(2.5);
    expect(ref.globalMaxPool(x, [1, 1, 2, 2]).data[0]).toBe(4);
  });

  it('computes erf to near double precision', () => {
    const known: [number, number][] = [
      [0, 0], [0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149],
      [2, 0.9953222650189527], [2.9, 0.9999589021219005], [3, 0.9999779095030014], [3.5, 0.9999992569016276],
      [-1.5, -0.9661051464753108], [6, 1],
    ];
    for (const [x, e] of known) expect(Math.abs(ref.erf(x) - e)).toBeLessThan(1e-14);
  });

  it('computes activations at known points', () => {
    const x = [-2, -0.5, 0, 1, 4];
    const s = [5];
    close(ref.relu(x, s).data, [0, 0, 0, 1, 4]);
    close(ref.leakyRelu(x, s, 0.1).data, [-0.2, -0.05, 0, 1, 4]);
    close(ref.elu(x, s, 1).data, [Math.exp(-2) - 1, Math.exp(-0.5) - 1, 0, 1, 4]);
    close(ref.hardswish(x, s).data, [-1 / 3, -0.5 * 2.5 / 6, 0, 4 / 6, 4]);
    close(ref.hardsigmoid([-4, -3, -1.5, 0, 1.5, 3, 4], [7]).data, [0, 0, 0.25, 0.5, 0.75, 1, 1]);
    close(ref.identity(x, s).data, x);
    close(ref.gelu([1], [1]).data, [0.8413447460685429]);
    close(ref.silu([1], [1]).data, [1 / (1 + Math.exp(-1))]);
    close(ref.tanh([1], [1]).data, [Math.tanh(1)]);
    close(ref.sigmoid([0], [1]).data, [0.5]);
    close(ref.prelu([-1, -1, 2, -2], [1, 2, 2], [0.5, 0.25]).data, [-0.5, -0.5, 2, -0.5]);
    close(ref.channelScale([1, 2, 3, 4, 5, 6], [1, 2, 3], [2, -1]).data, [2, 4, 6, -4, -5, -6]);
    close(ref.channelScale([1, 2, 3, 4], [2, 2], [10, 0.5]).data, [10, 1, 30, 2]);
  });

  it('shuffles channels as ShuffleNet (PyTorch\'s channel_shuffle of 0..5 in 2 groups is 0 3 1 4 2 5)', () => {
    expect([...ref.channelShuffle([0, 1, 2, 3, 4, 5], [1, 6, 1, 1], 2).data]).toEqual([0, 3, 1, 4, 2, 5]);
    expect([...ref.channelShuffle([0, 1, 2, 3, 4, 5], [1, 6, 1, 1], 3).data]).toEqual([0, 2, 4, 1, 3, 5]);
    // Two values per channel stay together; one group or one channel per group changes nothing.
    expect([...ref.channelShuffle([0, 1, 2, 3, 4, 5, 6, 7], [1, 4, 1, 2], 2).data]).toEqual([0, 1, 4, 5, 2, 3, 6, 7]);
    expect([...ref.channelShuffle([5, 6, 7], [1, 3, 1, 1], 1).data]).toEqual([5, 6, 7]);
    expect([...ref.channelShuffle([5, 6, 7], [1, 3, 1, 1], 3).data]).toEqual([5, 6, 7]);
  });

  it('computes softmax, dense, batch norm and layer norm', () => {
    close(ref.softmax([0, Math.log(3), 1000, 1000], [2, 2]).data, [0.25, 0.75, 0.5, 0.5]);
    const d = ref.dense([1, 2, 3], [1, 3], [1, 0, 0, 0, 1, 1], [2, 3], [10, 20]);
    expect(d.shape).toEqual([1, 2]);
    close(d.data, [11, 25]);
    const bn = ref.batchNormInference([3, 5], [1, 2, 1, 1], [2, 1], [1, 0], [1, 1], [4, 1], 0);
    close(bn.data, [3, 4]);
    // Over the channels at each position: (1, 3) and (2, 6) have means 2 and 4, variances 1 and 4.
    const ln = ref.layerNorm([1, 2, 3, 6], [1, 2, 2], [2, 1], [0, 10], 0);
    close(ln.data, [-2, -2, 11, 11]);
    close(ref.layerNorm([1, 3], [1, 2], [1, 1], [0, 0], 1).data, [-1 / Math.sqrt(2), 1 / Math.sqrt(2)]);
  });

  it('upsamples as PyTorch: nearest (float32 source indices), bilinear with and without align_corners', () => {
    expect([...ref.upsampleNearest2d([1, 2, 3, 4], [1, 1, 2, 2], [4, 4]).data]).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    // F.interpolate(size=82) of [0, 1]: floor(41 · float32(2/82)) is 0 in float32.
    expect([...ref.upsampleNearest2d([0, 1], [1, 1, 1, 2], [1, 82]).data.slice(40, 43)]).toEqual([0, 0, 1]);
    close(ref.upsampleBilinear2d([0, 1], [1, 1, 1, 2], [1, 4]).data, [0, 0.25, 0.75, 1]);
    close(ref.upsampleBilinear2d([0, 1], [1, 1, 1, 2], [1, 3], true).data, [0, 0.5, 1]);
    // Down to 3×2 from 2×3 (PyTorch's values).
    close(ref.upsampleBilinear2d([0, 1, 2, 3, 4, 5], [1, 1, 2, 3], [3, 2]).data, [0.25, 1.75, 1.75, 3.25, 3.25, 4.75]);
  });

  it('transposes a convolution: <conv(a), b> = <a, convTranspose(b)> with the same weight and window', () => {
    // Strides, asymmetric pads, dilation, groups, and two leftover columns that output padding restores.
    const o = { stride: [2, 3] as [number, number], pads: [1, 0, 2, 1] as [number, number, number, number], dilation: [2, 1] as [number, number], groups: 2 };
    const a = Array.from({ length: 1 * 4 * 10 * 9 }, (_, i) => Math.sin(i + 1));
    const w = Array.from({ length: 6 * 2 * 3 * 2 }, (_, i) => Math.cos(i));
    const y = ref.conv2d(a, [1, 4, 10, 9], w, [6, 2, 3, 2], null, o);
    expect(y.shape).toEqual([1, 6, 5, 3]);
    const b = Array.from({ length: y.data.length }, (_, i) => Math.sin(3 * i));
    // conv's weight [M, C/g, kh, kw] is the transposed convolution's [C_in, C_out/g, kh, kw] with C_in = M.
    const t = ref.convTranspose2d(b, y.shape, w, [6, 2, 3, 2], null, { ...o, outputPadding: [0, 2] });
    expect(t.shape).toEqual([1, 4, 10, 9]);
    const dot = (u: ArrayLike<number>, v: ArrayLike<number>) => Array.from(u).reduce((s, x, i) => s + x * v[i], 0);
    expect(Math.abs(dot(y.data, b) - dot(a, t.data))).toBeLessThan(1e-9);
    // A 2x2 stride-2 transposed convolution puts each pixel's kernel in its own 2x2 block.
    close(ref.convTranspose2d([1, 2], [1, 1, 1, 2], [1, 2, 3, 4], [1, 1, 2, 2], [10], { stride: [2, 2] }).data, [11, 12, 12, 14, 13, 14, 16, 18]);
  });

  it('pixel-shuffles as PyTorch: each 2x2 output block from four consecutive channels', () => {
    // Channels 0..3 of one pixel, then channels 0..3 of the next: one output channel of 2×4.
    const y = ref.pixelShuffle([1, 5, 2, 6, 3, 7, 4, 8], [1, 4, 1, 2], 2);
    expect(y.shape).toEqual([1, 1, 2, 4]);
    expect([...y.data]).toEqual([1, 2, 5, 6, 3, 4, 7, 8]);
  });

  it('pools adaptively as PyTorch: bins from floor(i·in/out) to ceil((i+1)·in/out), overlapping where out does not divide in', () => {
    // 5 to 3: bins [0, 2), [1, 4), [3, 5).
    close(ref.adaptiveAvgPool2d([1, 2, 3, 4, 5], [1, 1, 1, 5], [1, 3]).data, [1.5, 3, 4.5]);
    // 2 to 3: bins [0, 1), [0, 2), [1, 2).
    close(ref.adaptiveAvgPool2d([2, 4], [1, 1, 2, 1], [3, 1]).data, [2, 3, 4]);
  });

  it('pools in ceil mode as PyTorch (values from F.max_pool2d and F.avg_pool2d with ceil_mode=True)', () => {
    const x = Array.from({ length: 25 }, (_, i) => i + 1);
    expect([...ref.maxPool2d(x, [1, 1, 5, 5], { kernel: [2, 2], ceil: true }).data]).toEqual([7, 9, 10, 17, 19, 20, 22, 24, 25]);
    const y = Array.from({ length: 36 }, (_, i) => i + 1);
    const o = { kernel: [3, 3] as [number, number], stride: [2, 2] as [number, number], pads: [1, 1, 1, 1] as [number, number, number, number], ceil: true };
    // The last window counts its padded row and column but not the part past them.
    close(ref.avgPool2d(y, [1, 1, 6, 6], o).data, [2, 4, 16 / 3, 3, 9, 15, 17, 9, 17, 27, 29, 15, 10.5, 16.5, 17.5, 9]);
    close(ref.avgPool2d(y, [1, 1, 6, 6], { ...o, countIncludePad: false }).data, [4.5, 6, 8, 9, 13.5, 15, 17, 18, 25.5, 27, 29, 30, 31.5, 33, 35, 36]);
    // A third window would start in the right padding: PyTorch leaves it out.
    expect([...ref.maxPool2d([1, 2, 3, 4, 5], [1, 1, 1, 5], { kernel: [1, 2], stride: [1, 3], pads: [0, 1, 0, 1], ceil: true }).data]).toEqual([1, 4]);
  });
});
