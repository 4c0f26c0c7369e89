/**
 * Lowering the checked model tree to ONNX nodes: layers through their kind's `lower` (the
 * registry), combinators here. Shared by the inference emitter and, with mode 'training' and
 * parameters bound to graph inputs, by the training emitter.
 */
import { assertNever, type Node } from '../model.ts';
import type { LowerContext } from './context.ts';

/** Lowers `node` on the value `x` and returns the value of its output. */
export function lowerNode(ctx: LowerContext, node: Node, x: string): string {
  if (!node.output) throw new Error(`cannot lower ${node.path || 'the model'}: its shape was not inferred`);
  switch (node.kind) {
    case 'layer':
      return ctx.within(node, x, () => node.layer.lower(ctx, x, node));
    case 'seq':
      // Frozen sequences lower like any other: freezing only matters to training.
      return node.items.reduce((value, item) => lowerNode(ctx, item, value), x);
    case 'residual':
      return ctx.within(node, x, () => {
        const body = lowerNode(ctx, node.body, x);
        const shortcut = node.shortcut ? lowerNode(ctx, node.shortcut, x) : x;
        return ctx.op('Add', [body, shortcut]);
      });
    case 'concat':
      return ctx.within(node, x, () => ctx.op('Concat', node.branches.map((b) => lowerNode(ctx, b, x)), { axis: 1 }));
    case 'add':
      return ctx.within(node, x, () => {
        const outs = node.branches.map((b) => lowerNode(ctx, b, x));
        return outs.length === 2 ? ctx.op('Add', outs) : ctx.op('Sum', outs);
      });
    case 'gate':
      // x · f(x); f(x) broadcasts (C×1×1 after global pooling).
      return ctx.within(node, x, () => ctx.op('Mul', [x, lowerNode(ctx, node.body, x)]));
    default:
      return assertNever(node);
  }
}
