/**
 * The backward pass over the checked tree: each layer kind's `grad` (the layer registry) and each
 * combinator's (the combinator registry), from the gradient of the output back to the parameters
 * and, when something before needs it, the input.
 */
import { children, nodeRules } from '../combinators/index.ts';
import type { BackwardContext, CombinatorNode } from '../combinators/types.ts';
import type { LayerNode, Node } from '../model.ts';
import type { LowerContext } from './context.ts';

/** What the backward pass needs of the training plan. */
export interface BackwardPlan {
  isFrozen(node: LayerNode): boolean;
}

export class Backward {
  /** Full parameter name -> gradient value. */
  readonly grads = new Map<string, string>();
  /** Whether a node's input needs a gradient (something before it trains). */
  private readonly needIn = new WeakMap<Node, boolean>();
  private readonly trains = new WeakMap<Node, boolean>();

  /**
   * `folded`: the final layer folded into the loss; the gradient given to `run` is already with
   * respect to its input, so it passes through unchanged.
   */
  constructor(private readonly ctx: LowerContext, private readonly plan: BackwardPlan, root: Node, inputNeedsGrad: boolean, private readonly folded?: LayerNode) {
    this.flow(root, inputNeedsGrad);
  }

  private paramTrains(node: LayerNode, param: string): boolean {
    return !this.plan.isFrozen(node) && node.params.some((p) => p.name === param && p.trainable);
  }

  /** Records needIn and trains for each node; returns whether the output depends on something trained. */
  private flow(node: Node, inReq: boolean): boolean {
    this.needIn.set(node, inReq);
    let trains: boolean;
    let out: boolean;
    switch (node.kind) {
      case 'layer':
        trains = node.params.some((p) => this.paramTrains(node, p.name));
        out = inReq || trains;
        break;
      case 'seq': {
        let req = inReq;
        trains = false;
        for (const item of node.items) {
          req = this.flow(item, req);
          trains ||= this.trains.get(item)!;
        }
        out = req;
        break;
      }
      default: {
        // Every child runs on the input (or a part of it); the node may also use the input itself.
        const kids = children(node);
        out = kids.map((c) => this.flow(c, inReq)).some(Boolean) || (inReq && nodeRules(node).usesInput(node));
        trains = kids.some((c) => this.trains.get(c));
      }
    }
    this.trains.set(node, trains);
    return out;
  }

  /** The forward value a node produced (a sequence: its last item's; an empty one: undefined). */
  private outputOf(node: Node): string | undefined {
    if (node.kind === 'seq') return node.items.length ? this.outputOf(node.items[node.items.length - 1]) : undefined;
    const l = this.ctx.lowered.get(node.path);
    if (!l) throw new Error(`backward: ${node.path} was not lowered`);
    return l.output;
  }

  /**
   * Propagates dy (the gradient of node's output) through node: parameter gradients go to
   * `grads`; returns the input gradient when the node's input needs one.
   */
  run(node: Node, dy: string): string | undefined {
    const need = this.needIn.get(node)!;
    if (!need && !this.trains.get(node)) return undefined;
    const ctx = this.ctx;
    switch (node.kind) {
      case 'layer': {
        if (node === this.folded) return need ? dy : undefined;
        const l = ctx.lowered.get(node.path)!;
        const res = ctx.scoped(node, `${node.path}/grad`, () => node.layer.grad(ctx, {
          x: l.input, y: l.output, dy, needInput: need, needParam: (p) => this.paramTrains(node, p),
        }, node));
        for (const [p, v] of Object.entries(res.params ?? {})) if (this.paramTrains(node, p)) this.grads.set(`${node.path}.${p}`, v);
        if (need && !res.dx) throw new Error(`layer ${node.path} (${node.layer.name}) gave no input gradient`);
        return need ? res.dx : undefined;
      }
      case 'seq': {
        let g: string | undefined = dy;
        for (let i = node.items.length - 1; i >= 0 && g !== undefined; i--) g = this.run(node.items[i], g);
        return need ? g : undefined;
      }
      default:
        return nodeRules(node).grad(node, dy, this.context(node, need));
    }
  }

  private context(node: CombinatorNode, need: boolean): BackwardContext {
    const ctx = this.ctx;
    return {
      ctx,
      need,
      x: ctx.lowered.get(node.path)!.input,
      run: (child, dy) => this.run(child, dy),
      active: (child) => this.needIn.get(child)! || this.trains.get(child)!,
      outputOf: (child) => this.outputOf(child),
      scoped: (fn) => ctx.scoped(node, `${node.path}/grad`, fn),
    };
  }
}
