/**
 * The PyTorch form of every node kind of the checked tree, in one table: what each contributes
 * to the container it sits in, as named child modules of model.py. Layers defer to their kind's
 * `torch` form (the layer registry); a block's expansion becomes a class of its own; the other
 * combinators become small container modules (Seq, Residual, Concat, Add, Gate) whose children
 * carry cnnc's path segments, so that state_dict keys are cnnc's tensor names.
 */
import type { BranchNode, LayerNode, Node, SeqNode } from '../../model.ts';
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

type Form<N extends Node> = (node: N, w: TreeWriter, c: Container) => PyChild[];

/** A sequence node's role: a block's expansion, a repeat, or (no origin) a `frozen { }` step. */
type SeqRole = NonNullable<SeqNode['origin']>['kind'] | 'frozen';

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

const RESIDUAL = `class Residual(nn.Module):
    """residual { body }: body(x) + x; residual project: body(x) + shortcut(x), a 1x1 conv and bn."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        for name, step in body.items():
            self.add_module(name, step)
        self._body = list(body)
        self.shortcut = shortcut

    def forward(self, x):
        y = x
        for name in self._body:
            y = self._modules[name](y)
        return y + (x if self.shortcut is None else self.shortcut(x))
`;

const CONCAT = `class Concat(nn.Module):
    """concat { a | b | ... }: every branch on the same input, joined along the channels."""

    def __init__(self, branches):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=1)
`;

const ADD = `class Add(nn.Module):
    """add { a | b | ... }: every branch on the same input, summed."""

    def __init__(self, branches):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        total, *rest = [branch(x) for branch in self.children()]
        for y in rest:
            total = total + y
        return total
`;

const GATE = `class Gate(nn.Module):
    """gate { body }: x * body(x), body(x) broadcast over x (C×1×1 after global pooling)."""

    def __init__(self, body):
        super().__init__()
        for name, step in body.items():
            self.add_module(name, step)

    def forward(self, x):
        y = x
        for step in self.children():
            y = step(y)
        return x * y
`;

/** `conv1` for `vgg1.conv1` in the container at `vgg1`. */
function relativeName(path: string, at: string): string {
  if (!at) return path;
  if (!path.startsWith(`${at}.`)) throw new Error(`model.py: ${path} is not inside ${at}`);
  return path.slice(at.length + 1);
}

const child = (node: Node, c: Container, expr: PyExpr, comment?: string): PyChild =>
  ({ name: relativeName(node.path, c.at), expr, node, comment });

/** `Seq({...})` over `children` of `node`, with what logits=True does when it leads to the final layer. */
function seq(node: SeqNode, children: PyChild[], w: TreeWriter): PyCall {
  const kwargs: [string, PyExpr][] = [];
  if (w.onFinalPath(node)) kwargs.push(['logits', w.py.lit(children[children.length - 1].node === w.finalLayer ? 'skip' : 'pass')]);
  return { fn: w.py.define('Seq', SEQ), args: [{ children }], kwargs };
}

/** A chain at a path of its own (a repetition, a branch, a shortcut) as a Seq. */
const chain = (node: SeqNode, w: TreeWriter): PyCall => seq(node, w.children(node.items, { at: node.path, frozen: node.frozen }), w);

const frozenExpr = (e: PyExpr): PyExpr => (typeof e === 'string' ? `frozen(${e})` : { fn: 'frozen', args: [e] });

const seqForms: { [R in SeqRole]: Form<SeqNode> } = {
  block: (node, w, c) => [child(node, c, `${w.blockClass(node)}()`, w.comment(node))],
  repeat: (node, w, c) => {
    const repetitions = node.items.map((r) => child(r, { at: node.path, frozen: node.frozen }, chain(r as SeqNode, w)));
    return [child(node, c, seq(node, repetitions, w), w.comment(node))];
  },
  // frozen { } has no name: its steps join the container, each frozen (requires_grad_(False), and a
  // frozen bn in eval mode while training) unless the container already is.
  frozen: (node, w, c) => w.children(node.items, { at: c.at, frozen: true }).map((ch) => (c.frozen ? ch : { ...ch, expr: frozenExpr(ch.expr) })),
};

const branches = (cls: string, code: string): Form<BranchNode> => (node, w, c) => {
  const each = node.branches.map((b) => child(b, { at: node.path, frozen: node.frozen }, chain(b, w)));
  return [child(node, c, { fn: w.py.define(cls, code), args: [{ children: each }] }, w.comment(node))];
};

/** Every node kind's form: a new kind of node is a compile error here until it has one. */
export const combinatorForms: { [K in Node['kind']]: Form<Extract<Node, { kind: K }>> } = {
  layer: (node, w, c) => [child(node, c, node.layer.torch(node, w.py), w.comment(node))],
  seq: (node, w, c) => seqForms[node.origin?.kind ?? 'frozen'](node, w, c),
  residual: (node, w, c) => {
    const body = w.children(node.body.items, { at: node.path, frozen: node.frozen });
    const kwargs: [string, PyExpr][] = node.shortcut ? [['shortcut', chain(node.shortcut, w)]] : [];
    return [child(node, c, { fn: w.py.define('Residual', RESIDUAL), args: [{ children: body }], kwargs }, w.comment(node))];
  },
  concat: branches('Concat', CONCAT),
  add: branches('Add', ADD),
  gate: (node, w, c) => {
    const body = w.children(node.body.items, { at: node.path, frozen: node.frozen });
    return [child(node, c, { fn: w.py.define('Gate', GATE), args: [{ children: body }] }, w.comment(node))];
  },
};

/** The children `node` gives its container, from the table. */
export function formOf(node: Node, w: TreeWriter, c: Container): PyChild[] {
  return (combinatorForms[node.kind] as Form<Node>)(node, w, c);
}
