/** Pooling: max, average and sum over windows, and global average and max. */
import type { ArgSpec, LayerKind, Shape, Window } from './types.ts';
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

const lowerPool: Record<string, LayerKind['lower']> = {
  maxpool: (ctx, x, node) => ctx.op('MaxPool', [x], poolAttrs(node.window!)),
  avgpool: (ctx, x, node) => ctx.op('AveragePool', [x], { ...poolAttrs(node.window!), count_include_pad: node.args.count_pad ? 1 : 0 }),
  // The window sum: the average with padded zeros counted, times the window's area.
  sumpool: (ctx, x, node) => {
    const w = node.window!;
    const avg = ctx.op('AveragePool', [x], { ...poolAttrs(w), count_include_pad: 1 });
    return ctx.op('Mul', [avg, ctx.scalar(w.kernel[0] * w.kernel[1], 'area')]);
  },
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
  };
}

export const maxpool = pool('maxpool', 'max pooling: maxpool WINDOW [stride=] [pad=]');
export const avgpool = pool('avgpool', 'average pooling: avgpool WINDOW [stride=] [pad=] [count_pad=]', [
  { name: 'count_pad', type: 'bool', default: true, doc: 'count padded zeros in the average (PyTorch count_include_pad)' },
]);
export const sumpool = pool('sumpool', 'sum pooling: sumpool WINDOW [stride=] [pad=] (the window sum, i.e. average times window size)');

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
    lower: (ctx, x) => ctx.op(op, [x]),
  };
}

export const globalavgpool = globalPool('globalavgpool', ['gap', 'avgpool_global'], 'global average pooling: C×H×W to C×1×1', 'GlobalAveragePool');
export const globalmaxpool = globalPool('globalmaxpool', ['gmp', 'maxpool_global'], 'global max pooling: C×H×W to C×1×1', 'GlobalMaxPool');
