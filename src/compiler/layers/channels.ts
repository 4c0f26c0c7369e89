/** Layers that rearrange or rescale channels: ShuffleNet's channel shuffle. */
import type { LayerKind } from './types.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode } from '../model.ts';
import { requireFeatureMap } from './window.ts';

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
