/** conv, dwconv and convtranspose: 2-D convolution and its transpose, with stride, padding, dilation, groups and optional bias. */
import { product, type ArgSpec, type Args, type GradInput, type GradOutput, type LayerKind, type Padding, type ParamSpec, type Shape, type ShapeContext, type TorchContext, type Window } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode, Receptive } from '../model.ts';
import { requireFeatureMap, slideWindow, windowOf } from './window.ts';

const dilationArg: ArgSpec = { name: 'dilation', type: 'kernel', default: [1, 1], min: 1, doc: 'spacing of the kernel taps' };
const biasArg: ArgSpec = { name: 'bias', type: 'bool', default: true, doc: 'add a learned bias per output channel' };
const windowArgs: ArgSpec[] = [
  { name: 'stride', type: 'kernel', default: [1, 1], min: 1, doc: 'step of the window: S or SHxSW' },
  { name: 'pad', type: 'pad', default: 'valid', min: 0, doc: 'same | valid | P | PHxPW | [top, left, bottom, right]' },
  dilationArg,
  biasArg,
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
 * - dw: see weightGradient;
 * - db: dy summed over the batch and the positions.
 */
function convGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  const geo = convGeometry(node.input!, node.args, node.layer.name);
  const w = geo.window;
  const input = node.input!, output = node.output!;
  const rest = [leftover(input, output, w, 0), leftover(input, output, w, 1)];
  const out: GradOutput = { params: {} };
  const sameSize = input[1] === output[1] && input[2] === output[2];
  if (g.needInput) out.dx = inputGradient(ctx, g.dy, ctx.param(node, 'weight'), w, geo.groups, rest, sameSize);
  let dyRows: string | undefined; // dy as [M, N·oH·oW], when the weight gradient made it
  if (g.needParam('weight')) ({ dw: out.params!.weight, dyRows } = weightGradient(ctx, g.x, g.dy, input, output, w, geo.groups));
  if (node.args.bias && g.needParam('bias')) {
    out.params!.bias = dyRows
      ? ctx.op('ReduceSum', [dyRows, ctx.ints([1])], { keepdims: 0 })
      : ctx.op('ReduceSum', [g.dy, ctx.ints([0, 2, 3])], { keepdims: 0 });
  }
  return out;
}

/**
 * dw for y = conv(x, w), x [N, C, H, W] (`input` [C, H, W]) and dy [N, M, oH, oW] (`output`):
 * a convolution of x (channels as the batch, the batch as channels) with dy (as the kernel), the
 * forward's stride as the kernel's dilation and its dilation as the stride: for each group,
 * dw[m, c, i, j] = Σ_n,p,q dy[n, m, p, q] · xpad[n, c, p·s + i·d, q·s + j·d]. Ungrouped and with
 * small patches, explicit im2col and GEMM instead (onnxruntime runs it about twice as fast),
 * which also gives dy as rows [M, N·oH·oW] (`dyRows`) for the bias: with many input channels one
 * GEMM per kernel tap on that tap's slice of x, dw[:, :, i, j] = dyRows · tap_ijᵀ, so that the
 * taps are never stacked into one patch matrix (FashionMnistCnn's conv2, 32 channels: 9 GEMMs of
 * 0.18 ms against 1.85 for the one GEMM plus 0.53 for the Concat; with one channel each tap's GEMM
 * has a single column and the stacked form is faster).
 */
function weightGradient(ctx: LowerContext, x: string, dy: string, input: Shape, output: Shape, w: Window, groups: number): { dw: string; dyRows?: string } {
  const [C, H, W] = input;
  const M = output[0];
  if (groups === 1 && C * w.kernel[0] * w.kernel[1] * output[1] * output[2] <= IM2COL_LIMIT) {
    const dyRows = ctx.op('Reshape', [ctx.op('Transpose', [dy], { perm: [1, 0, 2, 3] }), ctx.ints([M, -1], 'shape')]);
    const shape = ctx.ints([M, C, ...w.kernel], 'shape');
    if (C < PER_TAP_CHANNELS) return { dw: ctx.op('Reshape', [ctx.op('Gemm', [dyRows, patches(ctx, x, input, output, w)], { transB: 1 }), shape]), dyRows };
    const rows = ctx.ints([C, -1], 'shape'), axis2 = ctx.ints([2]);
    const perTap = tapSlices(ctx, x, output, w).map((tap) => ctx.op('Unsqueeze', [ctx.op('Gemm', [dyRows, ctx.op('Reshape', [tap, rows])], { transB: 1 }), axis2]));
    return { dw: ctx.op('Reshape', [ctx.op('Concat', perTap, { axis: 2 }), shape]), dyRows };
  }
  let xt: string, dyt: string;
  if (groups === 1) {
    xt = ctx.op('Transpose', [x], { perm: [1, 0, 2, 3] });
    dyt = ctx.op('Transpose', [dy], { perm: [1, 0, 2, 3] });
  } else {
    const cg = C / groups, mg = M / groups;
    const x5 = ctx.op('Reshape', [x, ctx.ints([0, groups, cg, H, W], 'shape')]);
    xt = ctx.op('Reshape', [ctx.op('Transpose', [x5], { perm: [2, 1, 0, 3, 4] }), ctx.ints([cg, -1, H, W], 'shape')]);
    const dy5 = ctx.op('Reshape', [dy, ctx.ints([0, groups, mg, output[1], output[2]], 'shape')]);
    dyt = ctx.op('Reshape', [ctx.op('Transpose', [dy5], { perm: [1, 2, 0, 3, 4] }), ctx.ints([M, -1, output[1], output[2]], 'shape')]);
  }
  // The leftover rows would widen dw past the kernel: trim them from the end padding, then slice.
  const rest = [leftover(input, output, w, 0), leftover(input, output, w, 1)];
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
  return { dw: ctx.op('Transpose', [dw], { perm: [1, 0, 2, 3] }) };
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
 * Input channels from which the weight gradient takes one GEMM per kernel tap: faster at 16 and 32
 * channels, slower at 8, 3 and 1 (3x3 kernels on 26×26 to 11×11 maps, batch 64).
 */
const PER_TAP_CHANNELS = 16;

/**
 * x's values under each kernel tap (i, j), as [C, N, oH, oW] in row-major tap order: x transposed
 * to [C, N, H, W] (a small copy), padded, then one strided Slice per tap.
 */
function tapSlices(ctx: LowerContext, x: string, output: Shape, w: Window): string[] {
  const [oh, ow] = [output[1], output[2]];
  let xt = ctx.op('Transpose', [x], { perm: [1, 0, 2, 3] });
  const [pt, pl, pb, pr] = w.pads;
  if (pt || pl || pb || pr) xt = ctx.op('Pad', [xt, ctx.ints([0, 0, pt, pl, 0, 0, pb, pr], 'pads')]);
  const taps: string[] = [];
  for (let i = 0; i < w.kernel[0]; i++) {
    for (let j = 0; j < w.kernel[1]; j++) {
      const start = [i * w.dilation[0], j * w.dilation[1]];
      const end = [start[0] + (oh - 1) * w.stride[0] + 1, start[1] + (ow - 1) * w.stride[1] + 1];
      taps.push(ctx.op('Slice', [xt, ctx.ints(start, 'starts'), ctx.ints(end, 'ends'), ctx.ints([2, 3]), ctx.ints([...w.stride], 'steps')]));
    }
  }
  return taps;
}

/** im2col: x's patches as [C·kH·kW, N·oH·oW], rows in the weight's (c, i, j) order: the taps stacked. */
function patches(ctx: LowerContext, x: string, input: Shape, output: Shape, w: Window): string {
  const axis1 = ctx.ints([1]);
  const taps = tapSlices(ctx, x, output, w).map((tap) => ctx.op('Unsqueeze', [tap, axis1]));
  const stacked = taps.length === 1 ? taps[0] : ctx.op('Concat', taps, { axis: 1 });
  return ctx.op('Reshape', [stacked, ctx.ints([input[0] * w.kernel[0] * w.kernel[1], -1], 'shape')]);
}

/**
 * nn.Conv2d; pads its symmetric padding= cannot express (`pad=same` with an even kernel, explicit
 * [top, left, bottom, right]) go to a subclass that zero-pads first, keeping the weight's name.
 */
function torchConv(node: LayerNode, py: TorchContext): string {
  return torchConvModule(node, py, convGeometry(node.input!, node.args, node.layer.name), 'nn.Conv2d', ['PaddedConv2d', PADDED_CONV]);
}

/**
 * PyTorch convolution module `cls` with the layer's geometry (`extra` keyword arguments after
 * padding); pads that its symmetric padding= cannot express go to `subclass` (name, Python
 * source), which takes the pads as its first argument.
 */
function torchConvModule(node: LayerNode, py: TorchContext, g: { window: Window; filters: number; groups: number }, cls: string,
  subclass: readonly [string, string], extra: Record<string, string | undefined> = {}): string {
  const w = g.window;
  const [top, left, bottom, right] = w.pads;
  const symmetric = top === bottom && left === right;
  const kwargs = {
    stride: w.stride.some((s) => s !== 1) ? py.pair(w.stride) : undefined,
    padding: symmetric && (top || left) ? py.pair([top, left]) : undefined,
    ...extra,
    dilation: w.dilation.some((d) => d !== 1) ? py.pair(w.dilation) : undefined,
    groups: g.groups !== 1 ? g.groups : undefined,
    bias: node.args.bias ? undefined : py.lit(false),
  };
  const args = [node.input![0], g.filters, py.pair(w.kernel)];
  if (symmetric) return py.call(cls, args, kwargs);
  return py.call(py.define(subclass[0], subclass[1]), [py.lit(w.pads), ...args], kwargs);
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

/**
 * A transposed convolution's geometry: the window of the convolution it is the transpose of (its
 * pads crop the full output, (in - 1)·s + d·(k - 1) + 1), and the output padding added at the end.
 * `pad=same` gives out = in·s: the full output cropped by its excess, the smaller half first, or
 * padded at the end where the kernel is shorter than the stride.
 */
export function transposeGeometry(input: Shape, args: Args) {
  const kernel = args.kernel as [number, number];
  const stride = args.stride as [number, number], dilation = args.dilation as [number, number];
  const pad = args.pad as Padding;
  let pads: [number, number, number, number] = pad === 'valid' || pad === 'same' ? [0, 0, 0, 0] : [pad[0], pad[1], pad[2], pad[3]];
  let outputPadding = [...(args.output_padding as [number, number])] as [number, number];
  if (pad === 'same') {
    const excess = [0, 1].map((i) => dilation[i] * (kernel[i] - 1) + 1 - stride[i]);
    const before = excess.map((e) => Math.max(Math.floor(e / 2), 0));
    pads = [before[0], before[1], Math.max(excess[0], 0) - before[0], Math.max(excess[1], 0) - before[1]];
    outputPadding = [Math.max(-excess[0], 0), Math.max(-excess[1], 0)];
  }
  const window: Window = { kernel, stride, dilation, pads };
  const size = (i: 0 | 1) => (input[i + 1] - 1) * stride[i] - pads[i] - pads[i + 2] + dilation[i] * (kernel[i] - 1) + outputPadding[i] + 1;
  return { window, outputPadding, groups: args.groups as number, filters: args.filters as number, size: [size(0), size(1)] as [number, number] };
}

function convTransposeShape(input: Shape, args: Args, ctx: ShapeContext): Shape {
  requireFeatureMap(input, ctx);
  const filters = args.filters as number, groups = args.groups as number;
  if (input[0] % groups !== 0) ctx.fail('groupsMismatch', { layer: ctx.layer, groups, channels: input[0], what: 'input channels' }, { arg: 'groups' });
  if (filters % groups !== 0) ctx.fail('groupsMismatch', { layer: ctx.layer, groups, channels: filters, what: 'filters' }, { arg: 'groups' });
  const op = args.output_padding as [number, number];
  if (args.pad === 'same' && op.some((p) => p > 0)) {
    ctx.fail('conflictingArguments', { layer: ctx.layer, detail: 'output_padding cannot be given with pad=same, which chooses it' }, { arg: 'output_padding' });
  }
  const geo = transposeGeometry(input, args);
  const { stride, pads } = geo.window;
  // Output padding restores rows a convolution with this window would leave over, fewer than its
  // stride (PyTorch also takes less than the dilation, which onnxruntime's ConvTranspose refuses).
  if (op.some((p, i) => p >= stride[i])) {
    ctx.fail('argumentOutOfRange', { layer: ctx.layer, arg: 'output_padding', value: op.join('x'), range: 'smaller than the stride' }, { arg: 'output_padding' });
  }
  const [h, w] = geo.size;
  if (h < 1 || w < 1) {
    ctx.fail('emptyOutput', { layer: ctx.layer, detail: `crops [${pads.join(', ')}] from its ${h + pads[0] + pads[2] - op[0]}×${w + pads[1] + pads[3] - op[1]} output, leaving nothing` }, { arg: 'pad', hint: 'use less padding' });
  }
  return [filters, h, w];
}

/**
 * The receptive field through a transposed convolution: an output reads the inputs whose kernel
 * taps land on it, and neighbouring outputs are 1/s inputs apart. Taps j and j' land on the same
 * output when (j - j')·d is a multiple of s, that is when j - j' is a multiple of s/g (g = gcd(d, s)),
 * so an output reads taps floor((k - 1)·g/s) steps of s/g apart, inputs d/g apart.
 */
function transposeReceptive(rf: Receptive, w: Window): Receptive {
  const jump = [0, 1].map((i) => rf.jump[i] / w.stride[i]) as [number, number];
  if (rf.global) return { ...rf, jump };
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const span = (i: 0 | 1) => {
    const g = gcd(w.dilation[i], w.stride[i]);
    return Math.floor(((w.kernel[i] - 1) * g) / w.stride[i]) * (w.dilation[i] / g);
  };
  return { size: [rf.size[0] + span(0) * rf.jump[0], rf.size[1] + span(1) * rf.jump[1]], jump };
}

function lowerConvTranspose(ctx: LowerContext, x: string, node: LayerNode): string {
  const g = transposeGeometry(node.input!, node.args);
  const w = g.window;
  const inputs = [x, ctx.param(node, 'weight')];
  if (node.args.bias) inputs.push(ctx.param(node, 'bias'));
  return ctx.op('ConvTranspose', inputs, {
    kernel_shape: [...w.kernel], strides: [...w.stride], pads: [...w.pads], dilations: [...w.dilation], group: g.groups,
    output_padding: g.outputPadding.some((p) => p > 0) ? g.outputPadding : undefined,
  });
}

/**
 * A transposed convolution is the adjoint of the convolution with its weight and window, so
 * dx = conv(dy, w), and dw is that convolution's weight gradient with the roles of input and
 * output gradient swapped: dy as its input, x as its output gradient.
 */
function convTransposeGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  const geo = transposeGeometry(node.input!, node.args);
  const w = geo.window;
  const input = node.input!, output = node.output!;
  const out: GradOutput = { params: {} };
  if (g.needInput) {
    out.dx = ctx.op('Conv', [g.dy, ctx.param(node, 'weight')], {
      kernel_shape: [...w.kernel], strides: [...w.stride], pads: [...w.pads], dilations: [...w.dilation], group: geo.groups,
    });
  }
  if (g.needParam('weight')) out.params!.weight = weightGradient(ctx, g.dy, g.x, output, input, w, geo.groups).dw;
  if (node.args.bias && g.needParam('bias')) out.params!.bias = ctx.op('ReduceSum', [g.dy, ctx.ints([0, 2, 3])], { keepdims: 0 });
  return out;
}

/** nn.ConvTranspose2d; asymmetric pads go to a subclass that crops its output, keeping the weight's name. */
function torchConvTranspose(node: LayerNode, py: TorchContext): string {
  const g = transposeGeometry(node.input!, node.args);
  return torchConvModule(node, py, g, 'nn.ConvTranspose2d', ['CroppedConvTranspose2d', CROPPED_CONV_TRANSPOSE], {
    output_padding: g.outputPadding.some((p) => p > 0) ? py.pair(g.outputPadding) : undefined,
  });
}

const CROPPED_CONV_TRANSPOSE = `class CroppedConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose output loses (top, left, bottom, right) rows and columns: pads that padding= cannot express."""

    def __init__(self, pads, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = tuple(pads)

    def forward(self, x):
        top, left, bottom, right = self.pads
        y = super().forward(x)
        return y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right]
`;

/** Transposed convolution (U-Net's up-convolution), PyTorch's ConvTranspose2d. */
export const convtranspose: LayerKind = {
  name: 'convtranspose',
  aliases: ['deconv', 'upconv', 'convtranspose2d'],
  doc: 'transposed convolution: convtranspose FILTERS KERNEL [stride=] [pad=] [output_padding=] [dilation=] [groups=] [bias=]',
  args: [
    { name: 'filters', type: 'int', positional: true, required: true, min: 1, doc: 'number of output channels' },
    { name: 'kernel', type: 'kernel', positional: true, required: true, min: 1, doc: 'kernel size: K or KHxKW' },
    { name: 'stride', type: 'kernel', default: [1, 1], min: 1, doc: 'step between input pixels on the output: S or SHxSW (the upsampling factor)' },
    { name: 'pad', type: 'pad', default: 'valid', min: 0, doc: 'cropped from the full output: valid (none) | same (output = input · stride) | P | PHxPW | [top, left, bottom, right]' },
    { name: 'output_padding', type: 'kernel', default: [0, 0], min: 0, doc: 'rows and columns added at the end of the output, fewer than the stride' },
    dilationArg,
    biasArg,
    { name: 'groups', type: 'int', default: 1, min: 1, doc: 'split channels into groups' },
  ],
  shape: convTransposeShape,
  params(input, args) {
    const [kh, kw] = args.kernel as [number, number];
    const filters = args.filters as number, groups = args.groups as number;
    // PyTorch's fan-in of a transposed convolution's weight [C_in, filters/groups, kh, kw]: its second dimension times the kernel.
    const fanIn = (filters / groups) * kh * kw;
    const params: ParamSpec[] = [{ name: 'weight', shape: [input[0], filters / groups, kh, kw], trainable: true, init: { kind: 'kaiming_uniform', fanIn } }];
    if (args.bias) params.push({ name: 'bias', shape: [filters], trainable: true, init: { kind: 'bias_uniform', fanIn } });
    return params;
  },
  macs: (input, _output, args) => product(input) * ((args.filters as number) / (args.groups as number)) * product(args.kernel as [number, number]),
  receptive: (rf, input, args) => transposeReceptive(rf, transposeGeometry(input, args).window),
  sizeFormula(input, args, i, out) {
    const { window: w, outputPadding } = transposeGeometry(input, args);
    return `(${input[i + 1]} - 1)·${w.stride[i]} - ${w.pads[i] + w.pads[i + 2]} + ${w.dilation[i] * (w.kernel[i] - 1)} + ${outputPadding[i]} + 1 = ${out}`;
  },
  lower: lowerConvTranspose,
  grad: convTransposeGrad,
  torch: torchConvTranspose,
};
