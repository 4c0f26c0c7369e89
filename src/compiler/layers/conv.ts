/** conv and dwconv: 2-D convolution with stride, padding, dilation, groups and optional bias. */
import { product, type ArgSpec, type Args, type GradInput, type GradOutput, type LayerKind, type ParamSpec, type Shape, type TorchContext, type Window } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';
import { requireFeatureMap, slideWindow, windowOf } from './window.ts';

const windowArgs: ArgSpec[] = [
  { name: 'stride', type: 'kernel', default: [1, 1], min: 1, doc: 'step of the window: S or SHxSW' },
  { name: 'pad', type: 'pad', default: 'valid', min: 0, doc: 'same | valid | P | PHxPW | [top, left, bottom, right]' },
  { name: 'dilation', type: 'kernel', default: [1, 1], min: 1, doc: 'spacing of the kernel taps' },
  { name: 'bias', type: 'bool', default: true, doc: 'add a learned bias per output channel' },
];

function convParams(inChannels: number, filters: number, groups: number, args: Args): ParamSpec[] {
  const [kh, kw] = args.kernel as [number, number];
  const fanIn = (inChannels / groups) * kh * kw;
  const params: ParamSpec[] = [{ name: 'weight', shape: [filters, inChannels / groups, kh, kw], trainable: true, init: { kind: 'kaiming_uniform', fanIn } }];
  if (args.bias) params.push({ name: 'bias', shape: [filters], trainable: true, init: { kind: 'bias_uniform', fanIn } });
  return params;
}

function convShape(input: Shape, args: Args, filters: number, groups: number, ctx: Parameters<LayerKind['shape']>[2]): Shape {
  requireFeatureMap(input, ctx);
  if (input[0] % groups !== 0) ctx.fail('groupsMismatch', { layer: ctx.layer, groups, channels: input[0], what: 'input channels' }, { arg: 'groups' });
  if (filters % groups !== 0) ctx.fail('groupsMismatch', { layer: ctx.layer, groups, channels: filters, what: 'filters' }, { arg: 'groups' });
  const [h, w] = slideWindow(input, windowOf(input, args, 'kernel'), ctx, 'kernel');
  return [filters, h, w];
}

/** ONNX Conv; explicit pads [top, left, bottom, right] are ONNX's [x1_begin, x2_begin, x1_end, x2_end]. */
function lowerConv(ctx: LowerContext, x: string, node: LayerNode): string {
  const g = convGeometry(node.input!, node.args, node.layer.name);
  const w = g.window;
  const inputs = [x, ctx.param(node, 'weight')];
  if (node.args.bias) inputs.push(ctx.param(node, 'bias'));
  return ctx.op('Conv', inputs, {
    kernel_shape: [...w.kernel], strides: [...w.stride], pads: [...w.pads], dilations: [...w.dilation], group: g.groups,
  });
}

/**
 * Rows (or columns) past the last window: (in + pads - extent) mod stride. They get no gradient,
 * and ConvTranspose needs them as output_padding to give back the input's size.
 */
function leftover(input: Shape, output: Shape, w: Window, i: 0 | 1): number {
  const extent = w.dilation[i] * (w.kernel[i] - 1) + 1;
  return input[i + 1] + w.pads[i] + w.pads[i + 2] - (w.stride[i] * (output[i + 1] - 1) + extent);
}

/**
 * The gradients of a convolution y = conv(x, w) + b:
 * - dx: see inputGradient;
 * - dw: a convolution of x (channels as the batch, the batch as channels) with dy (as the kernel),
 *   the forward's stride as the kernel's dilation and its dilation as the stride: for each group,
 *   dw[m, c, i, j] = Σ_n,p,q dy[n, m, p, q] · xpad[n, c, p·s + i·d, q·s + j·d];
 * - db: dy summed over the batch and the positions.
 */
function convGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  const geo = convGeometry(node.input!, node.args, node.layer.name);
  const w = geo.window;
  const input = node.input!, output = node.output!;
  const [C, H, W] = input;
  const M = output[0];
  const groups = geo.groups;
  const rest = [leftover(input, output, w, 0), leftover(input, output, w, 1)];
  const out: GradOutput = { params: {} };
  const sameSize = input[1] === output[1] && input[2] === output[2];
  if (g.needInput) out.dx = inputGradient(ctx, g.dy, ctx.param(node, 'weight'), w, groups, rest, sameSize);
  const needW = g.needParam('weight'), needB = node.args.bias && g.needParam('bias');
  // Ungrouped: explicit im2col and one GEMM (onnxruntime runs it about twice as fast as the Conv
  // formulation), when the patches stay small; otherwise (and for groups) a Conv over x and dy.
  const im2col = groups === 1 && C * w.kernel[0] * w.kernel[1] * output[1] * output[2] <= IM2COL_LIMIT;
  let dyRows: string | undefined; // dy as [M, N·oH·oW]
  if (needW && im2col) {
    dyRows = ctx.op('Reshape', [ctx.op('Transpose', [g.dy], { perm: [1, 0, 2, 3] }), ctx.ints([M, -1], 'shape')]);
    out.params!.weight = ctx.op('Reshape', [ctx.op('Gemm', [dyRows, patches(ctx, g.x, node, w)], { transB: 1 }), ctx.ints([M, C, ...w.kernel], 'shape')]);
  } else if (needW) {
    let xt: string, dyt: string;
    if (groups === 1) {
      xt = ctx.op('Transpose', [g.x], { perm: [1, 0, 2, 3] });
      dyt = ctx.op('Transpose', [g.dy], { perm: [1, 0, 2, 3] });
    } else {
      const cg = C / groups, mg = M / groups;
      const x5 = ctx.op('Reshape', [g.x, ctx.ints([0, groups, cg, H, W], 'shape')]);
      xt = ctx.op('Reshape', [ctx.op('Transpose', [x5], { perm: [2, 1, 0, 3, 4] }), ctx.ints([cg, -1, H, W], 'shape')]);
      const dy5 = ctx.op('Reshape', [g.dy, ctx.ints([0, groups, mg, output[1], output[2]], 'shape')]);
      dyt = ctx.op('Reshape', [ctx.op('Transpose', [dy5], { perm: [1, 2, 0, 3, 4] }), ctx.ints([M, -1, output[1], output[2]], 'shape')]);
    }
    // The leftover rows would widen dw past the kernel: trim them from the end padding, then slice.
    const pads = [...w.pads];
    const extra = [0, 1].map((i) => {
      const trim = Math.min(pads[i + 2], rest[i]);
      pads[i + 2] -= trim;
      return Math.floor((rest[i] - trim) / w.dilation[i]);
    });
    let dw = ctx.op('Conv', [xt, dyt], {
      kernel_shape: [output[1], output[2]], strides: [...w.dilation], dilations: [...w.stride], pads, group: groups,
    });
    if (extra.some((e) => e > 0)) dw = ctx.op('Slice', [dw, ctx.ints([0, 0], 'starts'), ctx.ints([...w.kernel], 'ends'), ctx.ints([2, 3])]);
    out.params!.weight = ctx.op('Transpose', [dw], { perm: [1, 0, 2, 3] });
  }
  if (needB) {
    out.params!.bias = dyRows
      ? ctx.op('ReduceSum', [dyRows, ctx.ints([1])], { keepdims: 0 })
      : ctx.op('ReduceSum', [g.dy, ctx.ints([0, 2, 3])], { keepdims: 0 });
  }
  return out;
}

/**
 * dx for y = conv(x, w). For a size-keeping convolution (stride 1, pad=same) without groups it is
 * a plain convolution of dy with w's channels swapped and taps flipped, padded by the kernel's
 * extent less the forward's padding: onnxruntime's Conv runs it faster than its ConvTranspose
 * (bench/ort-inspect-train.ts). Where the output is smaller (pad=valid) that convolution would
 * also run over the padded border, more work than ConvTranspose's. Otherwise, and with groups,
 * the transposed convolution with the forward's attributes, and output_padding for the rows past
 * the last window.
 */
function inputGradient(ctx: LowerContext, dy: string, weight: string, w: Window, groups: number, rest: number[], sameSize: boolean): string {
  const reach = [0, 1].map((i) => w.dilation[i] * (w.kernel[i] - 1));
  const pads = w.pads.map((p, i) => reach[i % 2] - p);
  if (sameSize && groups === 1 && w.stride.every((s) => s === 1) && pads.every((p) => p >= 0)) {
    const swapped = ctx.op('Transpose', [weight], { perm: [1, 0, 2, 3] });
    const flipped = ctx.op('Slice', [swapped, ctx.ints([-1, -1], 'starts'), ctx.ints([-w.kernel[0] - 1, -w.kernel[1] - 1], 'ends'), ctx.ints([2, 3]), ctx.ints([-1, -1], 'steps')]);
    return ctx.op('Conv', [dy, flipped], { kernel_shape: [...w.kernel], strides: [1, 1], dilations: [...w.dilation], pads, group: 1 });
  }
  return ctx.op('ConvTranspose', [dy, weight], {
    kernel_shape: [...w.kernel], strides: [...w.stride], dilations: [...w.dilation], group: groups,
    pads: [...w.pads], output_padding: rest.some((r) => r > 0) ? rest : undefined,
  });
}

/** Most values per sample in im2col patches (C·kH·kW·oH·oW); larger layers use the Conv formulation. */
const IM2COL_LIMIT = 1 << 19;

/**
 * im2col: x's patches as [C·kH·kW, N·oH·oW], rows in the weight's (c, i, j) order: x transposed to
 * [C, N, H, W] (a small copy), padded, then one strided Slice per kernel tap, stacked.
 */
function patches(ctx: LowerContext, x: string, node: LayerNode, w: Window): string {
  const [oh, ow] = [node.output![1], node.output![2]];
  let xt = ctx.op('Transpose', [x], { perm: [1, 0, 2, 3] });
  const [pt, pl, pb, pr] = w.pads;
  if (pt || pl || pb || pr) xt = ctx.op('Pad', [xt, ctx.ints([0, 0, pt, pl, 0, 0, pb, pr], 'pads')]);
  const taps: string[] = [];
  const axis1 = ctx.ints([1]);
  for (let i = 0; i < w.kernel[0]; i++) {
    for (let j = 0; j < w.kernel[1]; j++) {
      const start = [i * w.dilation[0], j * w.dilation[1]];
      const end = [start[0] + (oh - 1) * w.stride[0] + 1, start[1] + (ow - 1) * w.stride[1] + 1];
      taps.push(ctx.op('Unsqueeze', [ctx.op('Slice', [xt, ctx.ints(start, 'starts'), ctx.ints(end, 'ends'), ctx.ints([2, 3]), ctx.ints([...w.stride], 'steps')]), axis1]));
    }
  }
  const stacked = taps.length === 1 ? taps[0] : ctx.op('Concat', taps, { axis: 1 });
  return ctx.op('Reshape', [stacked, ctx.ints([node.input![0] * w.kernel[0] * w.kernel[1], -1], 'shape')]);
}

/**
 * nn.Conv2d; pads its symmetric padding= cannot express (`pad=same` with an even kernel, explicit
 * [top, left, bottom, right]) go to a subclass that zero-pads first, keeping the weight's name.
 */
function torchConv(node: LayerNode, py: TorchContext): string {
  const g = convGeometry(node.input!, node.args, node.layer.name);
  const w = g.window;
  const [top, left, bottom, right] = w.pads;
  const symmetric = top === bottom && left === right;
  const kwargs = {
    stride: w.stride.some((s) => s !== 1) ? py.pair(w.stride) : undefined,
    padding: symmetric && (top || left) ? py.pair([top, left]) : undefined,
    dilation: w.dilation.some((d) => d !== 1) ? py.pair(w.dilation) : undefined,
    groups: g.groups !== 1 ? g.groups : undefined,
    bias: node.args.bias ? undefined : py.lit(false),
  };
  const args = [node.input![0], g.filters, py.pair(w.kernel)];
  if (symmetric) return py.call('nn.Conv2d', args, kwargs);
  return py.call(py.define('PaddedConv2d', PADDED_CONV), [py.lit(w.pads), ...args], kwargs);
}

const PADDED_CONV = `class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d after zero padding by (top, left, bottom, right): pads that padding= cannot express."""

    def __init__(self, pads, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = tuple(pads)

    def forward(self, x):
        top, left, bottom, right = self.pads
        return super().forward(F.pad(x, (left, right, top, bottom)))
`;

const convMacs = (input: Shape, output: Shape, args: Args, groups: number) =>
  product(output) * (input[0] / groups) * product(args.kernel as [number, number]);

export const conv: LayerKind = {
  name: 'conv',
  aliases: ['conv2d'],
  doc: 'convolution: conv FILTERS KERNEL [stride=] [pad=] [dilation=] [groups=] [bias=]',
  args: [
    { name: 'filters', type: 'int', positional: true, required: true, min: 1, doc: 'number of output channels' },
    { name: 'kernel', type: 'kernel', positional: true, required: true, min: 1, doc: 'kernel size: K or KHxKW' },
    ...windowArgs,
    { name: 'groups', type: 'int', default: 1, min: 1, doc: 'split channels into groups (groups = channels is depthwise)' },
  ],
  shape: (input, args, ctx) => convShape(input, args, args.filters as number, args.groups as number, ctx),
  params: (input, args) => convParams(input[0], args.filters as number, args.groups as number, args),
  macs: (input, output, args) => convMacs(input, output, args, args.groups as number),
  window: (input, args) => windowOf(input, args, 'kernel'),
  lower: lowerConv,
  grad: convGrad,
  torch: torchConv,
};

/** Depthwise convolution: one filter (or `multiplier` filters) per input channel. */
export const dwconv: LayerKind = {
  name: 'dwconv',
  aliases: ['depthwise'],
  doc: 'depthwise convolution: dwconv KERNEL [multiplier=] [stride=] [pad=] [dilation=] [bias=]',
  args: [
    { name: 'kernel', type: 'kernel', positional: true, required: true, min: 1, doc: 'kernel size: K or KHxKW' },
    ...windowArgs,
    { name: 'multiplier', type: 'int', default: 1, min: 1, doc: 'output channels per input channel' },
  ],
  shape: (input, args, ctx) => convShape(input, args, input[0] * (args.multiplier as number), input[0], ctx),
  params: (input, args) => convParams(input[0], input[0] * (args.multiplier as number), input[0], args),
  macs: (input, output, args) => convMacs(input, output, args, input[0]),
  window: (input, args) => windowOf(input, args, 'kernel'),
  lower: lowerConv,
  grad: convGrad,
  torch: torchConv,
};

/** Arguments of a conv-like layer as ONNX Conv wants them (also used for dwconv). */
export function convGeometry(input: Shape, args: Args, kind: string) {
  const depthwise = kind === 'dwconv';
  return {
    filters: depthwise ? input[0] * (args.multiplier as number) : (args.filters as number),
    groups: depthwise ? input[0] : (args.groups as number),
    window: windowOf(input, args, 'kernel'),
  };
}
