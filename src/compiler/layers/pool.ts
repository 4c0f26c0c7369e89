/** Pooling: max, average and sum over windows, and global average and max. */
import type { ArgSpec, Args, GradInput, GradOutput, LayerKind, Shape, TorchContext, Window } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';
import { requireFeatureMap, slideWindow, windowOf } from './window.ts';

const poolArgs: ArgSpec[] = [
  { name: 'window', type: 'kernel', positional: true, required: true, min: 1, doc: 'window size: K or KHxKW' },
  { name: 'stride', type: 'kernel', min: 1, doc: 'step of the window (defaults to the window)' },
  { name: 'pad', type: 'pad', default: 'valid', min: 0, doc: 'same | valid | P | PHxPW | [top, left, bottom, right]' },
  { name: 'ceil', type: 'bool', default: false, doc: 'one more, partial window at the end where it starts inside the input or its top/left padding (PyTorch ceil_mode)' },
];

/**
 * PyTorch's ceil_mode: ceil((in + pads - extent) / s) + 1 windows instead of the floor, less the
 * last if it would start past the input and its top/left padding. It becomes more end padding
 * (the pool's `window`), so the lowering and gradient are floor mode's; what the windows divide by
 * (avgpool) leaves that padding out (avgDivisors).
 */
function ceilWindow(input: Shape, w: Window): Window {
  const extra = [0, 1].map((i) => {
    const padded = input[i + 1] + w.pads[i] + w.pads[i + 2];
    const extent = w.dilation[i] * (w.kernel[i] - 1) + 1;
    let windows = Math.ceil((padded - extent) / w.stride[i]) + 1;
    if ((windows - 1) * w.stride[i] >= input[i + 1] + w.pads[i]) windows--;
    return Math.max((windows - 1) * w.stride[i] + extent - padded, 0);
  });
  return { ...w, pads: [w.pads[0], w.pads[1], w.pads[2] + extra[0], w.pads[3] + extra[1]] };
}

/** The pool's window: its arguments' (`userWindow`), with ceil mode's end padding. */
function poolWindow(input: Shape, args: Args): Window {
  const w = userWindow(input, args);
  return args.ceil ? ceilWindow(input, w) : w;
}

const userWindow = (input: Shape, args: Args) => windowOf(input, args, 'window');

/** ONNX pooling attributes; pads [top, left, bottom, right] are ONNX's order for 2-D. */
function poolAttrs(w: Window) {
  return { kernel_shape: [...w.kernel], strides: [...w.stride], pads: [...w.pads] };
}

/** MaxPool; in training with its indices output (flat NCHW positions of the maxima), kept for the backward. */
function lowerMax(ctx: LowerContext, x: string, node: LayerNode, attrs: ReturnType<typeof poolAttrs>): string {
  if (ctx.mode === 'inference') return ctx.op('MaxPool', [x], attrs);
  const [y, indices] = ctx.ops('MaxPool', [x], attrs, { outputs: 2 });
  ctx.save(node, 'indices', indices);
  return y;
}

/**
 * Max pooling's gradient: dy placed at the saved argmax positions. Windows that do not overlap
 * have distinct argmaxes, and MaxUnpool (zeros, then one write per value) places them faster than
 * the general form, ScatterElements with reduction add, which overlapping windows need (one
 * input can be the maximum of several windows).
 */
function maxGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  if (!g.needInput) return {};
  const w = node.window; // none for global max pooling: one window over the whole map
  const indices = ctx.saved(node, 'indices');
  if (!w || w.stride.every((s, i) => s >= w.kernel[i])) {
    const attrs = w ? poolAttrs(w) : { kernel_shape: [node.input![1], node.input![2]], strides: [1, 1], pads: [0, 0, 0, 0] };
    return { dx: ctx.op('MaxUnpool', [g.dy, indices, ctx.op('Shape', [g.x])], attrs) };
  }
  const flat = ctx.ints([-1], 'flat');
  const zeros = ctx.op('ConstantOfShape', [ctx.op('Reshape', [ctx.op('Size', [g.x]), flat])]);
  const scattered = ctx.op('ScatterElements', [zeros, ctx.op('Reshape', [indices, flat]), ctx.op('Reshape', [g.dy, flat])], { axis: 0, reduction: 'add' });
  return { dx: ctx.op('Reshape', [scattered, ctx.op('Shape', [g.x])]) };
}

/** Rows past the last window, which ConvTranspose adds back as output_padding. */
function leftover(input: Shape, output: Shape, w: Window, i: 0 | 1): number {
  return input[i + 1] + w.pads[i] + w.pads[i + 2] - (w.stride[i] * (output[i + 1] - 1) + w.kernel[i]);
}

/**
 * What avgpool's windows divide by, [oH, oW], or null where each divides by its area: the inputs
 * under the window (count_pad=off), or the inputs and padding (count_pad=on) but not ceil mode's
 * end padding, as PyTorch.
 */
function avgDivisors(node: LayerNode): Float32Array | null {
  const w = node.window!, input = node.input!, output = node.output!;
  const pads = node.args.count_pad ? userWindow(input, node.args).pads : [0, 0, 0, 0];
  const covered = (i: 0 | 1, o: number) => {
    const start = o * w.stride[i] - w.pads[i];
    return Math.min(start + w.kernel[i], input[i + 1] + pads[i + 2]) - Math.max(start, -pads[i]);
  };
  const counts = new Float32Array(output[1] * output[2]);
  for (let r = 0; r < output[1]; r++) for (let c = 0; c < output[2]; c++) counts[r * output[2] + c] = covered(0, r) * covered(1, c);
  return node.args.count_pad && counts.every((n) => n === w.kernel[0] * w.kernel[1]) ? null : counts;
}

/**
 * Average and sum pooling's gradient: dy divided by each window's divisor, spread back over the
 * window by a transposed convolution with a kernel of ones, one channel at a time (N·C as the batch).
 */
function windowGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  if (!g.needInput) return {};
  const w = node.window!, input = node.input!, output = node.output!;
  const [kh, kw] = w.kernel;
  let dy = g.dy;
  if (node.layer.name === 'avgpool') {
    const counts = avgDivisors(node);
    dy = counts
      ? ctx.op('Div', [dy, ctx.constant(counts, [output[1], output[2]], 'counts')])
      : ctx.op('Mul', [dy, ctx.scalar(1 / (kh * kw), 'inv_area')]);
  }
  const rest = [leftover(input, output, w, 0), leftover(input, output, w, 1)];
  const spread = ctx.op('ConvTranspose', [
    ctx.op('Reshape', [dy, ctx.ints([-1, 1, output[1], output[2]], 'shape')]),
    ctx.constant(new Float32Array(kh * kw).fill(1), [1, 1, kh, kw], 'ones'),
  ], { kernel_shape: [kh, kw], strides: [...w.stride], pads: [...w.pads], output_padding: rest.some((r) => r > 0) ? rest : undefined });
  return { dx: ctx.op('Reshape', [spread, ctx.ints([-1, ...input], 'shape')]) };
}

/**
 * avgpool: count_pad=off is AveragePool's count_include_pad=0; with count_pad=on the window sums
 * (AveragePool with the padding counted, times the area) over the divisors where ceil mode's end
 * padding makes them differ from the area.
 */
function lowerAvg(ctx: LowerContext, x: string, node: LayerNode): string {
  if (!node.args.count_pad) return ctx.op('AveragePool', [x], { ...poolAttrs(node.window!), count_include_pad: 0 });
  const avg = ctx.op('AveragePool', [x], { ...poolAttrs(node.window!), count_include_pad: 1 });
  const counts = avgDivisors(node);
  if (!counts) return avg;
  const area = node.window!.kernel[0] * node.window!.kernel[1];
  return ctx.op('Mul', [avg, ctx.constant(counts.map((n) => area / n), [node.output![1], node.output![2]], 'area_over_counts')]);
}

const lowerPool: Record<string, LayerKind['lower']> = {
  maxpool: (ctx, x, node) => lowerMax(ctx, x, node, poolAttrs(node.window!)),
  avgpool: lowerAvg,
  // The window sum: the average with padded zeros counted, times the window's area.
  sumpool: (ctx, x, node) => {
    const w = node.window!;
    const avg = ctx.op('AveragePool', [x], { ...poolAttrs(w), count_include_pad: 1 });
    return ctx.op('Mul', [avg, ctx.scalar(w.kernel[0] * w.kernel[1], 'area')]);
  },
};

/**
 * PyTorch's pools take a symmetric padding of at most half the window: whether the pads fit that,
 * and the padding= to give (none for no pads); pads that do not fit go before, in a Pad module.
 */
function torchPadding(w: Window, py: TorchContext): { padding?: string; fits: boolean } {
  const [top, left, bottom, right] = w.pads;
  if (!top && !left && !bottom && !right) return { fits: true };
  const fits = top === bottom && left === right && top <= Math.floor(w.kernel[0] / 2) && left <= Math.floor(w.kernel[1] / 2);
  return { fits, padding: fits ? py.pair([top, left]) : undefined };
}

const PAD = `class Pad(nn.Module):
    """Pads by (top, left, bottom, right) with value, before a pool whose padding= cannot express them."""

    def __init__(self, pads, value=0.0):
        super().__init__()
        self.pads = tuple(pads)
        self.value = value

    def forward(self, x):
        top, left, bottom, right = self.pads
        return F.pad(x, (left, right, top, bottom), value=self.value)
`;

// Where the inputs under a window vary in number: window sums of the zero-padded input over those
// of a padded mask of ones, which is ONNX AveragePool's count_include_pad=0.
const AVG_POOL_NO_PAD = `class AvgPoolNoPad(nn.Module):
    """Average pooling that counts only the inputs under each window, for pads (top, left, bottom, right)
    that AvgPool2d's padding= cannot express."""

    def __init__(self, kernel, stride, pads):
        super().__init__()
        self.kernel, self.stride, self.pads = kernel, stride, tuple(pads)

    def forward(self, x):
        top, left, bottom, right = self.pads
        pad = (left, right, top, bottom)
        ones = x.new_ones((1, 1) + tuple(x.shape[2:]))
        total = F.avg_pool2d(F.pad(x, pad), self.kernel, self.stride)
        return total / F.avg_pool2d(F.pad(ones, pad), self.kernel, self.stride)
`;

/**
 * nn.MaxPool2d or nn.AvgPool2d (sum pooling: divisor 1), with `kwargs`, and PyTorch's own padding=
 * and ceil_mode= where they take the pads; otherwise the pads, with ceil mode's end padding, come
 * first as a Pad module (-inf for max pooling, zeros otherwise).
 */
function torchWindowPool(node: LayerNode, py: TorchContext, cls: string, kwargs: Record<string, string | number | undefined> = {}): string {
  const w = node.window!;
  const { padding, fits } = torchPadding(userWindow(node.input!, node.args), py);
  const stride = w.stride.every((s, i) => s === w.kernel[i]) ? undefined : py.pair(w.stride);
  if (fits) return py.call(cls, [py.pair(w.kernel)], { stride, padding, ceil_mode: node.args.ceil ? py.lit(true) : undefined, ...kwargs });
  const pad = py.call(py.define('Pad', PAD), [py.lit(w.pads), py.lit(cls === 'nn.MaxPool2d' ? -Infinity : 0)]);
  return py.call('nn.Sequential', [pad, py.call(cls, [py.pair(w.kernel)], { stride, ...kwargs })]);
}

/**
 * Average pooling with pads PyTorch's padding= cannot take: counting only the inputs, AvgPoolNoPad
 * over all the pads; counting the padding too, the pads first and AvgPoolNoPad over ceil mode's end
 * padding alone (the padding counts, the part of the window past it does not).
 */
function torchAvgPadded(node: LayerNode, py: TorchContext): string {
  const w = node.window!, user = userWindow(node.input!, node.args);
  const noPad = (pads: readonly number[]) => py.call(py.define('AvgPoolNoPad', AVG_POOL_NO_PAD), [py.pair(w.kernel), py.pair(w.stride), py.lit(pads)]);
  if (!node.args.count_pad) return noPad(w.pads);
  const pad = py.call(py.define('Pad', PAD), [py.lit(user.pads), py.lit(0)]);
  return py.call('nn.Sequential', [pad, noPad(w.pads.map((p, i) => p - user.pads[i]))]);
}

const torchPool: Record<string, LayerKind['torch']> = {
  maxpool: (node, py) => torchWindowPool(node, py, 'nn.MaxPool2d'),
  avgpool: (node, py) => {
    const user = userWindow(node.input!, node.args);
    const { fits } = torchPadding(user, py);
    if (!fits && (!node.args.count_pad || avgDivisors(node))) return torchAvgPadded(node, py);
    const countPad = node.args.count_pad || user.pads.every((p) => p === 0);
    return torchWindowPool(node, py, 'nn.AvgPool2d', { count_include_pad: countPad ? undefined : py.lit(false) });
  },
  sumpool: (node, py) => torchWindowPool(node, py, 'nn.AvgPool2d', { divisor_override: 1 }),
};

function pool(name: string, doc: string, extra: ArgSpec[] = []): LayerKind {
  return {
    name,
    doc,
    args: [...poolArgs, ...extra],
    shape(input, args, ctx) {
      requireFeatureMap(input, ctx);
      // onnxruntime's pools take pads smaller than the window (so ceil mode's end padding is too).
      const w = userWindow(input, args);
      if (w.pads.some((p, i) => p >= w.kernel[i % 2])) {
        ctx.fail('argumentOutOfRange', { layer: name, arg: 'pad', value: w.pads.join(','), range: 'smaller than the window' }, { arg: 'pad' });
      }
      const [h, wd] = slideWindow(input, poolWindow(input, args), ctx, 'window');
      return [input[0], h, wd];
    },
    window: poolWindow,
    lower: lowerPool[name],
    grad: name === 'maxpool' ? maxGrad : windowGrad,
    torch: torchPool[name],
    windowMax: name === 'maxpool',
  };
}

export const maxpool = pool('maxpool', 'max pooling: maxpool WINDOW [stride=] [pad=] [ceil=]');
export const avgpool = pool('avgpool', 'average pooling: avgpool WINDOW [stride=] [pad=] [ceil=] [count_pad=]', [
  { name: 'count_pad', type: 'bool', default: true, doc: 'count padded zeros in the average (PyTorch count_include_pad)' },
]);
export const sumpool = pool('sumpool', 'sum pooling: sumpool WINDOW [stride=] [pad=] [ceil=] (the window sum, i.e. average times window size)');

/** Global average pooling's gradient: dy / (H·W) at every position. */
function globalAvgGrad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput {
  if (!g.needInput) return {};
  const [, h, w] = node.input!;
  return { dx: ctx.op('Expand', [ctx.op('Mul', [g.dy, ctx.scalar(1 / (h * w), 'inv_area')]), ctx.op('Shape', [g.x])]) };
}

function globalPool(name: string, aliases: string[], doc: string, op: string): LayerKind {
  return {
    name,
    aliases,
    doc,
    args: [],
    global: true,
    shape(input: Shape, _args, ctx) {
      requireFeatureMap(input, ctx);
      return [input[0], 1, 1];
    },
    // Global max pooling trains as a MaxPool over the whole map, whose indices pick one maximum
    // (ties do not share the gradient), as PyTorch's adaptive max pooling.
    lower: (ctx, x, node) => (op === 'GlobalMaxPool' && ctx.mode === 'training'
      ? lowerMax(ctx, x, node, { kernel_shape: [node.input![1], node.input![2]], strides: [1, 1], pads: [0, 0, 0, 0] })
      : ctx.op(op, [x])),
    grad: op === 'GlobalMaxPool' ? maxGrad : globalAvgGrad,
    windowMax: op === 'GlobalMaxPool',
    torch: (_node, py) => py.call(op === 'GlobalMaxPool' ? 'nn.AdaptiveMaxPool2d' : 'nn.AdaptiveAvgPool2d', [1]),
  };
}

export const globalavgpool = globalPool('globalavgpool', ['gap', 'avgpool_global'], 'global average pooling: C×H×W to C×1×1', 'GlobalAveragePool');
export const globalmaxpool = globalPool('globalmaxpool', ['gmp', 'maxpool_global'], 'global max pooling: C×H×W to C×1×1', 'GlobalMaxPool');
