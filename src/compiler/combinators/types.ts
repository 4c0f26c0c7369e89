/**
 * What every combinator declares, in one place: its keyword and syntax, its arguments, how many
 * layers it expands to, its shape rule (the check), and, for combinators that give a checked node
 * of their own, that node's children, ONNX lowering, gradient, summary label, hover text and
 * PyTorch form; plus its hover and completion texts. A new combinator is one entry
 * (src/compiler/combinators/index.ts lists them). Its proofs are entries too: a float64 forward in
 * test/reference/combinators.ts and cases in test/helpers/layer-cases.ts (lowering, gradient,
 * PyTorch parity), which test/registry.test.ts requires of every combinator.
 */
import type { TokenType } from 'chevrotain';
import type * as A from '../ast.ts';
import type { Env } from '../args.ts';
import type { Diagnostic } from '../diagnostics.ts';
import type { LowerContext } from '../emit/context.ts';
import type { Container, TreeWriter } from '../emit/torch/containers.ts';
import type { PyChild } from '../emit/torch/python.ts';
import type { ArgSpec, Args, LayerKind, Shape } from '../layers/types.ts';
import type { LayerNode, Node, Receptive, SeqNode } from '../model.ts';
import type { Span } from '../source.ts';

export type CombinatorStep = Exclude<A.Step, A.LayerStep>;
export type CombinatorKeyword = CombinatorStep['kind'];
export type StepOf<K extends CombinatorKeyword> = CombinatorStep & { kind: K };
/** The checked nodes that combinators make (sequences aside). */
export type CombinatorNode = Exclude<Node, LayerNode | SeqNode>;
export type NodeOf<K extends CombinatorNode['kind']> = CombinatorNode & { kind: K };

/** What flows along a chain while it is checked: the tensor's shape and receptive field (null after an error). */
export interface Flow {
  shape: Shape | null;
  rf: Receptive | null;
}

export interface Scope {
  env: Env;
  path: string;
  counters: Map<string, number>;
  labels: Set<string>;
  frozen: boolean;
  depth: number;
}

/** The checker, as a combinator's check sees it (checker.ts's ModelChecker). */
export interface CheckContext {
  readonly diags: Diagnostic[];
  /** Checks a chain on `flow` (updated to its output) and returns its sequence node. */
  chain(chain: A.Chain, flow: Flow, scope: Scope, span: Span, origin?: SeqNode['origin']): SeqNode;
  /** Applies one layer kind (e.g. a projection's conv) to the flow; `args` are already bound. */
  layer(kind: LayerKind, args: Args, flow: Flow, scope: Scope, path: string, span: Span): LayerNode;
  /** A child scope named by the step's label or by `base` and a counter (`residual2`). */
  childPath(scope: Scope, base: string, label: A.Step['label']): string;
  subScope(scope: Scope, path: string, env?: Env): Scope;
  /** Layers `chain` expands to with `env` (expansion.ts). */
  expansion(chain: A.Chain, env: Env): number;
  /** Whether `size` more layers fit under the limit; reports `use` at `span` once when not. */
  fitsExpansion(size: number, use: string, span: Span): boolean;
  /** Whether the layer limit has been passed (checking stops adding layers). */
  overLimit(): boolean;
  /** Reports the layer limit (once) at `span` and invalidates the flow. */
  tooLarge(span: Span, flow: Flow): void;
  sizeCheck(shape: Shape, span: Span): boolean;
  invalidate(flow: Flow): void;
}

/** What a combinator's backward pass sees (emit/backward.ts). */
export interface BackwardContext {
  readonly ctx: LowerContext;
  /** Whether the node's input needs a gradient. */
  readonly need: boolean;
  /** The node's input value in the forward pass. */
  readonly x: string;
  /** Propagates `dy` through a child; its input gradient, when that is needed. */
  run(child: Node, dy: string): string | undefined;
  /** Whether a child's backward does anything (its input needs a gradient or something in it trains). */
  active(child: Node): boolean;
  /** A child's forward output; undefined for an empty sequence (it passes its input). */
  outputOf(child: Node): string | undefined;
  /** Runs `fn` with ops in the node's backward scope (`residual1/grad/...`). */
  scoped<T>(fn: () => T): T;
}

/** The rules of a checked node that a combinator makes. */
export interface NodeRules<N extends CombinatorNode> {
  /** Its child sequences, in execution order. */
  children(node: N): readonly SeqNode[];
  /** A copy with these children, in the order `children` gives them. */
  withChildren(node: N, children: readonly SeqNode[]): N;
  /** Whether its output uses its input directly, beside its children (an identity shortcut, a gate's product). */
  usesInput(node: N): boolean;
  /** The ONNX nodes around its children's (`lower(child, value)`); returns the output value. */
  lower(ctx: LowerContext, node: N, x: string, lower: (child: Node, x: string) => string): string;
  /** The input gradient from the output gradient `dy` (undefined when not needed). */
  grad(node: N, dy: string, b: BackwardContext): string | undefined;
  /** Its summary row, after its children's: `residual add (projection)`. */
  label(node: N): string;
  /** More about one use in hover: ` (branches 2×8×8, 4×8×8)`. */
  hover?(node: N): string;
  /** The named children it gives its container in model.py. */
  torch(node: N, w: TreeWriter, c: Container): PyChild[];
}

/** The rules of the sequence node a combinator makes (repeat, frozen). */
export interface SeqRules {
  /** Its summary row, before its steps' (none: the steps only). */
  header?(node: SeqNode): string;
  /** The named children it gives its container in model.py. */
  torch(node: SeqNode, w: TreeWriter, c: Container): PyChild[];
}

export interface Combinator<K extends CombinatorKeyword> {
  keyword: K;
  token: TokenType;
  /** What follows the keyword before the `{`: an expression (repeat's count), arguments, or nothing (the formatter). */
  head: 'expression' | 'args' | 'none';
  /** The arguments after the keyword (for completion and hover). */
  args?: readonly ArgSpec[];
  /** The hover title: `residual: body(x) + shortcut(x)`. */
  doc: string;
  /** The completion item. */
  snippet: { detail: string; body: string };
  /** Whether the editor shows the step's output shape at its end. */
  shapeHint: boolean;
  /** Whether it has a name and path of its own (`residual1`); frozen's steps join its container. */
  named: boolean;
  /** The chains inside the step, in source order. */
  chains(step: StepOf<K>): readonly A.Chain[];
  /** The arguments written after the keyword. */
  stepArgs(step: StepOf<K>): readonly A.Arg[];
  /** The expressions it holds outside its arguments and chains (repeat's count). */
  exprs(step: StepOf<K>): readonly A.Expr[];
  /** Layers (and combinator nodes) it expands to, from its chains' sizes (expansion.ts). */
  size(step: StepOf<K>, env: Env, chain: (c: A.Chain) => number): number;
  /** The shape rule: checks the step on `flow` (updated to its output) and returns its node. */
  check(step: StepOf<K>, cx: CheckContext, flow: Flow, scope: Scope): Node | undefined;
  /** The rules of the node it makes, when it makes one of its own (not a sequence). */
  node?: K extends CombinatorNode['kind'] ? NodeRules<NodeOf<K>> : never;
  /** For combinators whose node is a sequence (repeat, frozen). */
  seq?: SeqRules;
}
