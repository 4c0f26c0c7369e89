/**
 * What every node of the checked tree contributes to the container it sits in, as named child
 * modules of model.py. Layers defer to their kind's `torch` form (the layer registry); a block's
 * expansion becomes a class of its own; the combinators' forms (their table) become small
 * container modules (Seq here; Residual, Concat, ... in their entries) whose children carry
 * cnnc's path segments, so that state_dict keys are cnnc's tensor names.
 */
import { nodeRules, seqRole, seqRules } from '../../combinators/index.ts';
import type { LayerNode, Node, SeqNode } from '../../model.ts';
import type { PyCall, PyChild, PyExpr, PyWriter } from './python.ts';

/** The container children are written into: its path (names are relative to it) and whether it is frozen. */
export interface Container {
  at: string;
  frozen: boolean;
}

/** What the forms write with (model-py.ts implements it). */
export interface TreeWriter {
  readonly py: PyWriter;
  /** The named children the chain `items` gives a container. */
  children(items: readonly Node[], c: Container): PyChild[];
  /** The class of a block's expansion, written once per distinct code; returns its name. */
  blockClass(node: SeqNode): string;
  /** `file:line  source text`, for the child's line. */
  comment(node: Node): string;
  /** The model's final softmax or sigmoid, which forward(x, logits=True) leaves out (see finalPath). */
  readonly finalLayer?: LayerNode;
  /** Whether `node` leads to finalLayer (through sequences, always as their last step). */
  onFinalPath(node: Node): boolean;
}

const SEQ = `class Seq(nn.Module):
    """Steps run in order, named as cnnc names them: a repetition of repeat N { }, a branch, a shortcut.

    logits is set only on the path to the model's final softmax or sigmoid: 'skip' where the last
    step is that layer, 'pass' where the last step leads to it; forward(x, logits=True) stops before it."""

    def __init__(self, steps, logits=None):
        super().__init__()
        for name, step in steps.items():
            self.add_module(name, step)
        self._logits = logits

    def forward(self, x, logits=False):
        *steps, last = self.children()
        for step in steps:
            x = step(x)
        if not logits:
            return last(x)
        return x if self._logits == 'skip' else last(x, logits=True)
`;

/** `conv1` for `vgg1.conv1` in the container at `vgg1`. */
function relativeName(path: string, at: string): string {
  if (!at) return path;
  if (!path.startsWith(`${at}.`)) throw new Error(`model.py: ${path} is not inside ${at}`);
  return path.slice(at.length + 1);
}

export const child = (node: Node, c: Container, expr: PyExpr, comment?: string): PyChild =>
  ({ name: relativeName(node.path, c.at), expr, node, comment });

/** `Seq({...})` over `children` of `node`, with what logits=True does when it leads to the final layer. */
export function seq(node: SeqNode, children: PyChild[], w: TreeWriter): PyCall {
  const kwargs: [string, PyExpr][] = [];
  if (w.onFinalPath(node)) kwargs.push(['logits', w.py.lit(children[children.length - 1].node === w.finalLayer ? 'skip' : 'pass')]);
  return { fn: w.py.define('Seq', SEQ), args: [{ children }], kwargs };
}

/** A chain at a path of its own (a repetition, a branch, a shortcut) as a Seq; an empty one (a branch that passes its input) as nn.Identity. */
export const chain = (node: SeqNode, w: TreeWriter): PyExpr => (node.items.length ? seq(node, w.children(node.items, { at: node.path, frozen: node.frozen }), w) : 'nn.Identity()');

/** Every node's form: layers from the layer registry, block expansions as classes, combinators from their table. */
export function formOf(node: Node, w: TreeWriter, c: Container): PyChild[] {
  switch (node.kind) {
    case 'layer': return [child(node, c, node.layer.torch(node, w.py), w.comment(node))];
    case 'seq': {
      const role = seqRole(node);
      return role === 'block' ? [child(node, c, `${w.blockClass(node)}()`, w.comment(node))] : seqRules(role).torch(node, w, c);
    }
    default: return nodeRules(node).torch(node, w, c);
  }
}
