/** conv and dwconv: 2-D convolution with stride, padding, dilation, groups and optional bias. */
import { product, type ArgSpec, type Args, type LayerKind, type ParamSpec, type Shape } from './types.ts';
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
