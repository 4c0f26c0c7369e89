/** The checked model: the expanded layer tree with shapes, parameters, costs and receptive fields. */
import type { LayerStep } from './ast.ts';
import { children, nodeRules } from './combinators/index.ts';
import type { Diagnostic } from './diagnostics.ts';
import type { Args, LayerKind, ParamSpec, Shape, Window } from './layers/types.ts';
import type { Span } from './source.ts';
import type { TrainConfig } from './train-config.ts';

/** Receptive field of one output position in input pixels, and the step between neighbours. */
export interface Receptive {
  size: readonly [number, number];
  jump: readonly [number, number];
  /** Sees the whole input (after global pooling, flatten or dense); size is then the input's H and W. */
  global?: boolean;
}

interface NodeBase {
  /** Dotted name that follows the source (`stage1.conv2`); parameter names extend it. */
  path: string;
  span: Span;
  input: Shape | null;
  output: Shape | null; // null when it could not be inferred (an error here or before)
  rf: Receptive | null;
  frozen: boolean;
  /** The error that stopped inference at this node, shown on its summary row. */
  error?: Diagnostic;
}

export interface LayerNode extends NodeBase {
  kind: 'layer';
  layer: LayerKind;
  args: Args;
  /** How the layer is written, with block parameters substituted: `conv 64 3x3 pad=same`. */
  text: string;
  params: ParamSpec[];
  macs: number;
  window?: Window;
  step?: LayerStep;
}

export interface SeqNode extends NodeBase {
  kind: 'seq';
  items: Node[];
  /** Set when the sequence is a block's expansion (`vgg(64)`) or a repetition. */
  origin?: { kind: 'block'; name: string; text: string } | { kind: 'repeat'; count: number };
}

export interface ResidualNode extends NodeBase {
  kind: 'residual';
  body: SeqNode;
  shortcut: SeqNode | null; // null: identity
}

export interface BranchNode extends NodeBase {
  kind: 'concat' | 'add';
  branches: SeqNode[];
}

/** `split [sizes] { a | b }`: branch i runs on the channels `sizes[i]` of the input; the outputs are joined along the channels. */
export interface SplitNode extends NodeBase {
  kind: 'split';
  branches: SeqNode[];
  /** Channels of each part (empty when they could not be worked out). */
  sizes: number[];
}

export interface GateNode extends NodeBase {
  kind: 'gate';
  body: SeqNode;
}

export type Node = LayerNode | SeqNode | ResidualNode | BranchNode | SplitNode | GateNode;

export interface Preprocess {
  mean: number[];
  std: number[];
  classes?: string[];
}

export interface Totals {
  trainable: number;
  nonTrainable: number;
  macs: number;
  paramBytes: number;
  activationBytes: number; // per sample, float32, every layer output
}

export interface CheckedModel {
  name: string;
  span: Span;
  nameSpan: Span;
  input: Shape | null;
  output: Shape | null;
  root: SeqNode;
  preprocess: Preprocess;
  totals: Totals;
  train: TrainConfig;
  /** Diagnostics inside this model (the file's list holds them too). */
  diagnostics: Diagnostic[];
}

export function assertNever(x: never): never {
  throw new Error(`unexpected node ${JSON.stringify(x)}`);
}

/**
 * The layer whose output is `node`'s output, through sequences (blocks, repeats, frozen), skipping
 * empty ones (they pass their input on); undefined when a combinator (residual, concat, add, gate)
 * produces the output.
 */
export function finalLayer(node: Node): LayerNode | undefined {
  if (node.kind === 'layer') return node;
  if (node.kind !== 'seq') return undefined;
  for (let i = node.items.length - 1; i >= 0; i--) {
    const item = node.items[i];
    if (item.kind !== 'seq' || layers(item).length > 0) return finalLayer(item);
  }
  return undefined;
}

/** Every layer in execution order, through all combinators (an array: a recursive generator is several times slower). */
export function layers(node: Node, out: LayerNode[] = []): LayerNode[] {
  if (node.kind === 'layer') out.push(node);
  else for (const child of children(node)) layers(child, out);
  return out;
}

/** A shallow copy of `node` whose child nodes are `map` of the old ones (a layer has none). */
export function withChildren<N extends Node>(node: N, map: <C extends Node>(child: C) => C): N;
export function withChildren(node: Node, map: <C extends Node>(child: C) => C): Node {
  switch (node.kind) {
    case 'layer': return { ...node };
    case 'seq': return { ...node, items: node.items.map(map) };
    default: {
      const rules = nodeRules(node);
      return rules.withChildren(node, rules.children(node).map(map));
    }
  }
}
