/** Pooling: max, average and sum over windows, and global average and max. */
import type { ArgSpec, GradInput, GradOutput, LayerKind, Shape, TorchContext, Window } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';
import { requireFeatureMap, slideWindow, windowOf } from './window.ts';

const poolArgs: ArgSpec[] = [
  { name: 'window', type: 'kernel', positional: true, required: true, min: 1, doc: 'window size: K or KHxKW' },
  { name: 'stride', type: 'kernel', min: 1, doc: 'step of the window (defaults to the window)' },
  { name: 'pad', type: 'pad', default: 'valid', min: 0, doc: 'same | valid | P | PHxPW | [top, left, bottom, right]' },
];

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

/** Inputs (padding excluded) under each output window, for avgpool count_pad=off: [oH, oW]. */
function windowCounts(input: Shape, output: Shape, w: Window): Float32Array {
  const counts = new Float32Array(output[1] * output[2]);
  const covered = (i: 0 | 1, o: number) => {
    const start = o * w.stride[i] - w.pads[i];
    return Math.min(start + w.kernel[i], input[i + 1]) - Math.max(start, 0);
  };
  for (let r = 0; r < output[1]; r++) for (let c = 0; c < output[2]; c++) counts[r * output[2] + c] = covered(0, r) * covered(1, c);
  return counts;
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
    dy = node.args.count_pad
      ? ctx.op('Mul', [dy, ctx.scalar(1 / (kh * kw), 'inv_area')])
      : ctx.op('Div', [dy, ctx.constant(windowCounts(input, output, w), [output[1], output[2]], 'counts')]);
  }
  const rest = [leftover(input, output, w, 0), leftover(input, output, w, 1)];
  const spread = ctx.op('ConvTranspose', [
    ctx.op('Reshape', [dy, ctx.ints([-1, 1, output[1], output[2]], 'shape')]),
    ctx.constant(new Float32Array(kh * kw).fill(1), [1, 1, kh, kw], 'ones'),
  ], { kernel_shape: [kh, kw], strides: [...w.stride], pads: [...w.pads], output_padding: rest.some((r) => r > 0) ? rest : undefined });
  return { dx: ctx.op('Reshape', [spread, ctx.ints([-1, ...input], 'shape')]) };
}

const lowerPool: Record<string, LayerKind['lower']> = {
  maxpool: (ctx, x, node) => lowerMax(ctx, x, node, poolAttrs(node.window!)),
  avgpool: (ctx, x, node) => ctx.op('AveragePool', [x], { ...poolAttrs(node.window!), count_include_pad: node.args.count_pad ? 1 : 0 }),
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
 * nn.MaxPool2d or nn.AvgPool2d (sum pooling: divisor 1), with `kwargs`; pads they cannot take come
 * first as a Pad module (-inf for max pooling, zeros otherwise).
 */
function torchWindowPool(node: LayerNode, py: TorchContext, cls: string, kwargs: Record<string, string | number | undefined> = {}): string {
  const w = node.window!;
  const { padding, fits } = torchPadding(w, py);
  const stride = w.stride.every((s, i) => s === w.kernel[i]) ? undefined : py.pair(w.stride);
  const pool = py.call(cls, [py.pair(w.kernel)], { stride, padding, ...kwargs });
  if (fits) return pool;
  const pad = py.call(py.define('Pad', PAD), [py.lit(w.pads), py.lit(cls === 'nn.MaxPool2d' ? -Infinity : 0)]);
  return py.call('nn.Sequential', [pad, pool]);
}

const torchPool: Record<string, LayerKind['torch']> = {
  maxpool: (node, py) => torchWindowPool(node, py, 'nn.MaxPool2d'),
  avgpool: (node, py) => {
    const w = node.window!;
    if (node.args.count_pad || w.pads.every((p) => p === 0)) return torchWindowPool(node, py, 'nn.AvgPool2d');
    if (!torchPadding(w, py).fits) return py.call(py.define('AvgPoolNoPad', AVG_POOL_NO_PAD), [py.pair(w.kernel), py.pair(w.stride), py.lit(w.pads)]);
    return torchWindowPool(node, py, 'nn.AvgPool2d', { count_include_pad: py.lit(false) });
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
      const w = windowOf(input, args, 'window');
      if (name === 'maxpool' && (w.pads[0] >= w.kernel[0] || w.pads[1] >= w.kernel[1])) {
        ctx.fail('argumentOutOfRange', { layer: name, arg: 'pad', value: w.pads.join(','), range: 'smaller than the window' }, { arg: 'pad' });
      }
      const [h, wd] = slideWindow(input, w, ctx, 'window');
      return [input[0], h, wd];
    },
    window: (input, args) => windowOf(input, args, 'window'),
    lower: lowerPool[name],
    grad: name === 'maxpool' ? maxGrad : windowGrad,
    torch: torchPool[name],
    windowMax: name === 'maxpool',
  };
}

export const maxpool = pool('maxpool', 'max pooling: maxpool WINDOW [stride=] [pad=]');
export const avgpool = pool('avgpool', 'average pooling: avgpool WINDOW [stride=] [pad=] [count_pad=]', [
  { name: 'count_pad', type: 'bool', default: true, doc: 'count padded zeros in the average (PyTorch count_include_pad)' },
]);
export const sumpool = pool('sumpool', 'sum pooling: sumpool WINDOW [stride=] [pad=] (the window sum, i.e. average times window size)');

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
