/**
 * Lowering the checked model tree to ONNX nodes: layers through their kind's `lower` (the layer
 * registry), combinators through theirs (the combinator registry). Shared by the inference
 * emitter and, with mode 'training' and parameters bound to graph inputs, by the training emitter.
 */
import { nodeRules } from '../combinators/index.ts';
import type { Node } from '../model.ts';
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
    default:
      return ctx.within(node, x, () => nodeRules(node).lower(ctx, node, x, (child, value) => lowerNode(ctx, child, value)));
  }
}
