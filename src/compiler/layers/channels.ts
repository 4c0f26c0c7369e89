/** Layers that rearrange or rescale channels: ShuffleNet's channel shuffle, ConvNeXt's layer scale. */
import type { GradOutput, LayerKind } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';
import { requireFeatureMap } from './window.ts';
import { channelReduce } from './norm.ts';

/**
 * The channels of [N, C, H, W] as a G×(C/G) grid, transposed: output channel j·G + i is input
 * channel i·(C/G) + j. With C/G groups this is the inverse permutation.
 */
function shuffleChannels(ctx: LowerContext, x: string, node: LayerNode, groups: number): string {
  const [c, h, w] = node.input!;
  const grid = ctx.op('Reshape', [x, ctx.ints([0, groups, c / groups, h, w], 'grid')]);
  const swapped = ctx.op('Transpose', [grid], { perm: [0, 2, 1, 3, 4] });
  return ctx.op('Reshape', [swapped, ctx.ints([0, c, h, w], 'shape')]);
}

const CHANNEL_SHUFFLE = `class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle with a backward (PyTorch 1.13's nn.ChannelShuffle has none)."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)`;

export const shuffle: LayerKind = {
  name: 'shuffle',
  aliases: ['channel_shuffle'],
  doc: 'channel shuffle (ShuffleNet): the channels as GROUPS rows of C/GROUPS, read by columns: shuffle GROUPS',
  args: [{ name: 'groups', type: 'int', positional: true, required: true, min: 1, doc: 'number of groups; must divide the channels' }],
  shape(input, args, ctx) {
    requireFeatureMap(input, ctx);
    const groups = args.groups as number;
    if (input[0] % groups !== 0) ctx.fail('groupsMismatch', { layer: ctx.layer, groups, channels: input[0], what: 'input channels' }, { arg: 'groups' });
    return input;
  },
  lower: (ctx, x, node) => shuffleChannels(ctx, x, node, node.args.groups as number),
  // A permutation's gradient is the inverse permutation of dy.
  grad: (ctx, g, node) => (g.needInput ? { dx: shuffleChannels(ctx, g.dy, node, node.input![0] / (node.args.groups as number)) } : {}),
  torch: (node, py) => py.call(py.define('ChannelShuffle', CHANNEL_SHUFFLE), [node.args.groups as number]),
};

const LAYER_SCALE = `class LayerScale(nn.Module):
    """A learned multiplier per channel (ConvNeXt's layer scale), shaped (C, 1, 1) for maps, (C,) for vectors."""

    def __init__(self, shape, init):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x):
        return x * self.layer_scale`;

/**
 * The multiplier is `layer_scale`, torchvision's name on its ConvNeXt block, [C, 1, 1] on maps as
 * there: a torchvision state dict's tensor then has the role and shape the weights matcher pairs.
 */
export const scale: LayerKind = {
  name: 'scale',
  aliases: ['layerscale'],
  doc: 'a learned multiplier per channel (ConvNeXt\'s layer scale): scale [init=]',
  args: [{ name: 'init', type: 'number', default: 1e-6, doc: 'the multipliers\' initial value (torchvision\'s ConvNeXt: 1e-6)' }],
  shape: (input) => input,
  params: (input, args) => [{
    name: 'layer_scale', shape: input.length === 3 ? [input[0], 1, 1] : [input[0]], trainable: true, init: { kind: 'constant', value: args.init as number },
  }],
  lower: (ctx, x, node) => ctx.op('Mul', [x, ctx.param(node, 'layer_scale')]),
  // dx = dy·s; ds = Σ dy·x over all axes but the channel's, in the parameter's shape.
  grad(ctx, g, node) {
    const s = ctx.param(node, 'layer_scale');
    const out: GradOutput = { params: {} };
    if (g.needInput) out.dx = ctx.op('Mul', [g.dy, s]);
    if (g.needParam('layer_scale')) {
      const sum = channelReduce(ctx, node, 'ReduceSum', ctx.op('Mul', [g.dy, g.x]));
      out.params!.layer_scale = node.input!.length === 3 ? ctx.op('Unsqueeze', [sum, ctx.ints([1, 2])]) : sum;
    }
    return out;
  },
  torch: (node, py) => py.call(py.define('LayerScale', LAYER_SCALE), [py.lit(node.params[0].shape), node.args.init as number]),
};
