/** Output size arithmetic shared by convolution and pooling. */
import type { Receptive } from '../model.ts';
import type { Args, Padding, Shape, ShapeContext, Window } from './types.ts';

export function outputSize(size: number, kernel: number, stride: number, dilation: number, padBefore: number, padAfter: number): number {
  return Math.floor((size + padBefore + padAfter - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Explicit pads for a padding option: TF-style `same` gives ceil(in/stride), the extra pad at the end. */
export function resolvePads(pad: Padding, input: Shape, kernel: readonly [number, number], stride: readonly [number, number], dilation: readonly [number, number]): [number, number, number, number] {
  if (pad === 'valid') return [0, 0, 0, 0];
  if (pad !== 'same') return [pad[0], pad[1], pad[2], pad[3]];
  const total = [0, 1].map((i) => {
    const size = input[i + 1];
    const out = Math.ceil(size / stride[i]);
    return Math.max((out - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - size, 0);
  });
  return [Math.floor(total[0] / 2), Math.floor(total[1] / 2), total[0] - Math.floor(total[0] / 2), total[1] - Math.floor(total[1] / 2)];
}

export function windowOf(input: Shape, args: Args, kernelArg: string): Window {
  const kernel = args[kernelArg] as [number, number];
  const s = args.stride;
  const stride: [number, number] = s === undefined ? kernel : (s as [number, number]);
  const dilation = (args.dilation as [number, number] | undefined) ?? [1, 1];
  return { kernel, stride, dilation, pads: resolvePads(args.pad as Padding, input, kernel, stride, dilation) };
}

/** Checks a window against its input and returns the output [H, W]. */
export function slideWindow(input: Shape, w: Window, ctx: ShapeContext, what: string): [number, number] {
  const out: number[] = [];
  const dropped: string[] = [];
  for (let i = 0; i < 2; i++) {
    const size = input[i + 1];
    const padded = size + w.pads[i] + w.pads[i + 2];
    const extent = w.dilation[i] * (w.kernel[i] - 1) + 1;
    if (extent > padded) {
      ctx.fail('kernelTooLarge', {
        layer: ctx.layer,
        what: w.dilation[i] > 1 ? `${what} (dilated to ${extent})` : what,
        kernel: `${w.kernel[0]}×${w.kernel[1]}`,
        input: `${input[1] + w.pads[0] + w.pads[2]}×${input[2] + w.pads[1] + w.pads[3]}`,
      }, { hint: padded === size ? 'pad the input (pad=same) or use a smaller kernel' : 'use a smaller kernel or more padding', arg: 'kernel' });
    }
    // Rows past the last window are lost; only worth a warning when they hold data, not padding,
    // and when the window is at least the stride (otherwise rows are skipped by design).
    const lost = (padded - extent) % w.stride[i] - w.pads[i + 2];
    if (lost > 0 && extent >= w.stride[i]) {
      dropped.push(`the last ${lost} ${i === 0 ? 'row' : 'column'}${lost > 1 ? 's' : ''} of ${size}`);
    }
    out.push(outputSize(size, w.kernel[i], w.stride[i], w.dilation[i], w.pads[i], w.pads[i + 2]));
  }
  if (dropped.length) {
    ctx.warn('dropsRows', {
      layer: ctx.layer,
      detail: `${what} ${w.kernel.join('×')} with stride ${w.stride.join('×')} drops ${dropped.join(' and ')} (input ${input[1]}×${input[2]} plus padding minus the window is not a multiple of the stride)`,
    }, { hint: 'pad=same keeps every row and column', arg: 'stride' });
  }
  return [out[0], out[1]];
}

/**
 * The receptive field after a sliding window: each tap past the first widens it by the jump
 * before it; the stride multiplies the jump. After a global layer only the jump changes.
 */
export function windowReceptive(rf: Receptive, w: Window): Receptive {
  const jump = [0, 1].map((i) => rf.jump[i] * w.stride[i]) as [number, number];
  if (rf.global) return { ...rf, jump };
  const size = [0, 1].map((i) => rf.size[i] + w.dilation[i] * (w.kernel[i] - 1) * rf.jump[i]) as [number, number];
  return { size, jump };
}

export function requireFeatureMap(input: Shape, ctx: ShapeContext): void {
  if (input.length !== 3) ctx.fail('spatialOnFlat', { layer: ctx.layer, shape: input }, { hint: 'spatial layers must come before flatten' });
}

/** The size formula with numbers filled in, for hovers: floor((32 + 2 - 3)/2) + 1 = 16. */
export function sizeFormula(input: Shape, w: Window, i: 0 | 1, out: number): string {
  const pad = w.pads[i] + w.pads[i + 2];
  const extent = w.dilation[i] * (w.kernel[i] - 1) + 1;
  return `floor((${input[i + 1]} + ${pad} - ${extent}) / ${w.stride[i]}) + 1 = ${out}`;
}
