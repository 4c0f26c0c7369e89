/**
 * Resampling along H and W: upsample (nearest, bilinear) and adaptiveavgpool, each a fixed linear map per axis,
 * y = Mh · x · Mwᵀ for every sample and channel, whose gradient is the transposed map,
 * dx = Mhᵀ · dy · Mw (two MatMuls with constant matrices, exact for any sizes); and pixelshuffle,
 * which moves channels into space.
 */
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode, Receptive } from '../model.ts';
import type { Args, GradInput, GradOutput, LayerKind, Shape, ShapeContext } from './types.ts';
import { requireFeatureMap } from './window.ts';

/** A fixed linear map along one axis: for each output index, the input indices it reads and their weights. */
interface AxisMap {
  inSize: number;
  taps: { src: number; weight: number }[][];
}

/**
 * PyTorch's nearest neighbour: src = floor(dst · scale) with scale = in/out, both in float32
 * (upsampling by 41 gives 0 at dst 41, not 1), clamped to the input; the identity when the sizes
 * are equal. onnxruntime's Resize divides by out/in instead and differs for some sizes (6 to 74,
 * 14 to 2), so the lowering gathers these indices itself.
 */
function nearestMap(inSize: number, outSize: number): AxisMap {
  const scale = Math.fround(inSize / outSize);
  const src = (d: number) => (inSize === outSize ? d : Math.min(Math.floor(Math.fround(d * scale)), inSize - 1));
  return { inSize, taps: Array.from({ length: outSize }, (_, d) => [{ src: src(d), weight: 1 }]) };
}

/**
 * PyTorch's linear interpolation: with align_corners off, src = (dst + 0.5) · in/out - 0.5
 * clamped at 0 (half-pixel centres); with it on, src = dst · (in - 1)/(out - 1), corners on
 * corners. src then mixes its floor and the next index (the last index alone at the end).
 */
function linearMap(inSize: number, outSize: number, alignCorners: boolean): AxisMap {
  const src = (d: number) => (alignCorners
    ? (outSize > 1 ? (d * (inSize - 1)) / (outSize - 1) : 0)
    : Math.max(((d + 0.5) * inSize) / outSize - 0.5, 0));
  const taps = Array.from({ length: outSize }, (_, d) => {
    const s = src(d);
    const lo = Math.min(Math.floor(s), inSize - 1);
    const frac = s - lo;
    return lo < inSize - 1 && frac > 0 ? [{ src: lo, weight: 1 - frac }, { src: lo + 1, weight: frac }] : [{ src: lo, weight: 1 }];
  });
  return { inSize, taps };
}

/** PyTorch's adaptive average pooling: output i averages inputs floor(i·in/out) to ceil((i + 1)·in/out) - 1. */
function adaptiveMap(inSize: number, outSize: number): AxisMap {
  const taps = Array.from({ length: outSize }, (_, i) => {
    const start = Math.floor((i * inSize) / outSize), end = Math.ceil(((i + 1) * inSize) / outSize);
    return Array.from({ length: end - start }, (_, k) => ({ src: start + k, weight: 1 / (end - start) }));
  });
  return { inSize, taps };
}

const isIdentity = (m: AxisMap) => m.taps.length === m.inSize && m.taps.every((t, i) => t.length === 1 && t[0].src === i && t[0].weight === 1);

/** The map as a dense matrix, [out, in], or transposed [in, out]. */
function matrix(m: AxisMap, transposed: boolean): { data: Float32Array; dims: number[] } {
  const out = m.taps.length, inn = m.inSize;
  const data = new Float32Array(out * inn);
  m.taps.forEach((row, o) => row.forEach(({ src, weight }) => { data[transposed ? src * out + o : o * inn + src] += weight; }));
  return { data, dims: transposed ? [inn, out] : [out, inn] };
}

/**
 * x [N, C, H, W] through the maps: Mh · x · Mwᵀ per sample and channel, or with `adjoint` the
 * transposed maps, Mhᵀ · x · Mw (the gradient). Axes whose map is the identity are left alone.
 */
function applyMaps(ctx: LowerContext, x: string, [mh, mw]: readonly [AxisMap, AxisMap], adjoint: boolean): string {
  let y = x;
  if (!isIdentity(mh)) {
    const m = matrix(mh, adjoint);
    y = ctx.op('MatMul', [ctx.constant(m.data, m.dims, 'rows'), y]);
  }
  if (!isIdentity(mw)) {
    const m = matrix(mw, !adjoint);
    y = ctx.op('MatMul', [y, ctx.constant(m.data, m.dims, 'columns')]);
  }
  return y;
}

/**
 * The receptive field through the maps: an output sees the inputs between its first and last
 * tap (one more input step for bilinear), and neighbouring outputs are in/out inputs apart.
 */
function mapsReceptive(rf: Receptive, maps: readonly [AxisMap, AxisMap]): Receptive {
  const jump = maps.map((m, i) => (rf.jump[i] * m.inSize) / m.taps.length) as [number, number];
  if (rf.global) return { ...rf, jump };
  const span = (m: AxisMap) => Math.max(...m.taps.map((t) => Math.max(...t.map((k) => k.src)) - Math.min(...t.map((k) => k.src))));
  const size = maps.map((m, i) => rf.size[i] + span(m) * rf.jump[i]) as [number, number];
  return { size, jump };
}

/** The output H and W: the input times the scale, or the size asked for. */
function upsampleSize(input: Shape, args: Args): [number, number] {
  if (args.size) return [...(args.size as [number, number])];
  const [sh, sw] = args.scale as [number, number];
  return [input[1] * sh, input[2] * sw];
}

function upsampleMaps(input: Shape, args: Args): [AxisMap, AxisMap] {
  const out = upsampleSize(input, args);
  const map = (i: 0 | 1) => (args.mode === 'bilinear' ? linearMap(input[i + 1], out[i], args.align_corners as boolean) : nearestMap(input[i + 1], out[i]));
  return [map(0), map(1)];
}

function upsampleShape(input: Shape, args: Args, ctx: ShapeContext): Shape {
  requireFeatureMap(input, ctx);
  if (args.scale && args.size) ctx.fail('conflictingArguments', { layer: ctx.layer, detail: 'takes a scale or size=, not both' }, { arg: 'size' });
  if (!args.scale && !args.size) {
    ctx.fail('missingArgument', { layer: ctx.layer, arg: 'a scale (upsample 2) or an output size (upsample size=28x28)' });
  }
  if (args.align_corners && args.mode !== 'bilinear') {
    ctx.fail('conflictingArguments', { layer: ctx.layer, detail: 'align_corners applies to mode=bilinear only' }, { arg: 'align_corners' });
  }
  return [input[0], ...upsampleSize(input, args)];
}

/**
 * Nearest: two Gathers of PyTorch's source indices (see nearestMap). Bilinear: Resize, whose
 * linear mode with half_pixel (or align_corners) coordinates is PyTorch's interpolation.
 */
function lowerUpsample(ctx: LowerContext, x: string, node: LayerNode): string {
  if (node.args.mode === 'bilinear') {
    const sizes = ctx.op('Concat', [ctx.op('Shape', [x], { end: 2 }), ctx.ints(node.output!.slice(1), 'size')], { axis: 0 });
    return ctx.op('Resize', [x, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: node.args.align_corners ? 'align_corners' : 'half_pixel' });
  }
  let y = x;
  upsampleMaps(node.input!, node.args).forEach((m, i) => {
    if (!isIdentity(m)) y = ctx.op('Gather', [y, ctx.ints(m.taps.map((t) => t[0].src), 'index')], { axis: i + 2 });
  });
  return y;
}

/** The gradient of a layer that is the per-axis maps `maps` gives: the maps transposed. */
const mapsGrad = (maps: (input: Shape, args: Args) => [AxisMap, AxisMap]): LayerKind['grad'] =>
  (ctx, g, node) => (g.needInput ? { dx: applyMaps(ctx, g.dy, maps(node.input!, node.args), true) } : {});

export const upsample: LayerKind = {
  name: 'upsample',
  doc: 'upsampling by an integer scale or to a size: upsample SCALE | size=HxW [mode=nearest|bilinear] [align_corners=]',
  args: [
    { name: 'scale', type: 'kernel', positional: true, min: 1, doc: 'integer scale factor: S or SHxSW' },
    { name: 'size', type: 'kernel', min: 1, doc: 'output size instead of a scale: S or HxW' },
    { name: 'mode', type: 'enum', values: ['nearest', 'bilinear'], default: 'nearest', doc: 'nearest neighbour, or bilinear interpolation' },
    { name: 'align_corners', type: 'bool', default: false, doc: 'bilinear: map the corner pixels onto each other instead of pixel centres (PyTorch align_corners)' },
  ],
  shape: upsampleShape,
  receptive: (rf, input, args) => mapsReceptive(rf, upsampleMaps(input, args)),
  lower: lowerUpsample,
  grad: mapsGrad(upsampleMaps),
  torch(node, py) {
    const { scale, size, mode, align_corners: align } = node.args;
    return py.call('nn.Upsample', [], {
      size: size ? py.pair(size as [number, number]) : undefined,
      scale_factor: scale ? py.pair(scale as [number, number]) : undefined,
      mode: py.lit(mode as string),
      align_corners: mode === 'bilinear' ? py.lit(align as boolean) : undefined,
    });
  },
};

/**
 * PyTorch's PixelShuffle: output (c, h·r + i, w·r + j) is input channel c·r² + i·r + j at (h, w),
 * which is ONNX DepthToSpace in CRD mode.
 */
function pixelShuffleShape(input: Shape, args: Args, ctx: ShapeContext): Shape {
  requireFeatureMap(input, ctx);
  const r = args.factor as number;
  if (input[0] % (r * r) !== 0) {
    ctx.fail('indivisibleChannels', { layer: ctx.layer, channels: input[0], divisor: r * r, why: `the factor ${r} squared` }, { arg: 'factor' });
  }
  return [input[0] / (r * r), input[1] * r, input[2] * r];
}

/** The inverse rearrangement: dy [N, C, H·r, W·r] as [N, C, H, r, W, r], the two r axes moved after C. */
function pixelShuffleGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  if (!g.needInput) return {};
  const [c, h, w] = node.input!;
  const r = node.args.factor as number;
  const split = ctx.op('Reshape', [g.dy, ctx.ints([-1, c / (r * r), h, r, w, r], 'shape')]);
  const moved = ctx.op('Transpose', [split], { perm: [0, 1, 3, 5, 2, 4] });
  return { dx: ctx.op('Reshape', [moved, ctx.ints([-1, c, h, w], 'shape')]) };
}

export const pixelshuffle: LayerKind = {
  name: 'pixelshuffle',
  aliases: ['depth_to_space'],
  doc: 'pixel shuffle (depth to space): C·r²×H×W to C×H·r×W·r, each r×r block from r² channels: pixelshuffle R',
  args: [{ name: 'factor', type: 'int', positional: true, required: true, min: 1, doc: 'upscaling factor r; the channels must divide by r²' }],
  shape: pixelShuffleShape,
  receptive: (rf, _input, args) => ({ ...rf, jump: [rf.jump[0] / (args.factor as number), rf.jump[1] / (args.factor as number)] }),
  lower: (ctx, x, node) => ctx.op('DepthToSpace', [x], { blocksize: node.args.factor as number, mode: 'CRD' }),
  grad: pixelShuffleGrad,
  torch: (node, py) => py.call('nn.PixelShuffle', [node.args.factor as number]),
};

function adaptiveMaps(input: Shape, args: Args): [AxisMap, AxisMap] {
  const [h, w] = args.size as [number, number];
  return [adaptiveMap(input[1], h), adaptiveMap(input[2], w)];
}

/**
 * At the input's size (VGG's 7×7 at 224×224) the identity; where the output divides the input the
 * bins are an AveragePool's windows; otherwise (bins of two sizes, overlapping where the output
 * does not divide) the maps as matrix products.
 */
function lowerAdaptiveAvg(ctx: LowerContext, x: string, node: LayerNode): string {
  const [, h, w] = node.input!, [, oh, ow] = node.output!;
  if (h === oh && w === ow) return x;
  if (h % oh === 0 && w % ow === 0) {
    const kernel = [h / oh, w / ow];
    return ctx.op('AveragePool', [x], { kernel_shape: kernel, strides: kernel });
  }
  return applyMaps(ctx, x, adaptiveMaps(node.input!, node.args), false);
}

export const adaptiveavgpool: LayerKind = {
  name: 'adaptiveavgpool',
  aliases: ['adaptive_avgpool'],
  doc: 'adaptive average pooling to a fixed output size, PyTorch bins: adaptiveavgpool SIZE',
  args: [{ name: 'size', type: 'kernel', positional: true, required: true, min: 1, doc: 'output size: S or HxW' }],
  shape(input, args, ctx) {
    requireFeatureMap(input, ctx);
    return [input[0], ...(args.size as [number, number])];
  },
  receptive: (rf, input, args) => mapsReceptive(rf, adaptiveMaps(input, args)),
  lower: lowerAdaptiveAvg,
  grad: mapsGrad(adaptiveMaps),
  torch: (node, py) => py.call('nn.AdaptiveAvgPool2d', [py.pair(node.args.size as [number, number])]),
};
