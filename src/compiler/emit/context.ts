/**
 * LowerContext: what a layer kind's `lower` sees while it turns one checked layer into ONNX nodes.
 *
 * It wraps a GraphBuilder and owns naming, so that every ONNX name says where it came from:
 * - a layer's output tensor is named after its path (`conv1`, `vgg1.conv2`, `residual1`);
 *   intermediate tensors inside a layer are `conv1/Mul`, `gelu1/Erf_1`, ...;
 * - each node is named after the layer and its source line: `conv1 (model.cnn:3)` for the node
 *   that produces the layer's output, `gelu1/Erf (model.cnn:3)` for the others;
 * - parameters are `${path}.${param}` (`conv1.weight`, `residual1.shortcut.bn.running_var`),
 *   the names checkpoints use too.
 *
 * Where a parameter comes from is pluggable (a ParamBinding): initializers for an inference
 * graph, graph inputs (or Loop-carried values) for a training graph. The mode tells layers
 * whether to lower their inference or training behaviour (bn with batch statistics, dropout).
 * Layers in training mode report updated buffers (bn running statistics) with `updateState`.
 */
import type { AttrValue, Dim, ElemType, GraphBuilder, TensorData } from '../onnx/builder.ts';
import type { onnx as O } from 'onnx-proto';
import type { ParamSpec, Shape } from '../layers/types.ts';
import type { LayerNode, Node } from '../model.ts';
import { sourceSetOf, type SourceInput, type SourceSet } from '../source.ts';

type NodeProto = O.NodeProto;

export type LowerMode = 'inference' | 'training';

/** Supplies the ONNX value holding one parameter (an initializer, a graph input, a Loop state...). */
export interface ParamBinding {
  /** Called once per parameter (results are cached by name); `name` is `${node.path}.${spec.name}`. */
  bind(name: string, spec: ParamSpec, node: LayerNode, ctx: LowerContext): string;
}

export interface LowerContextOptions {
  mode?: LowerMode;
  params: ParamBinding;
  /**
   * Source file name and source, for node names like `conv1 (model.cnn:3)`; with the check's
   * texts, nodes from blocks of imported files are named after their own file and line.
   */
  file?: string;
  source?: SourceInput;
  /** Name of the batch dimension in recorded value_info (default 'N'). */
  batch?: Dim;
  /** Record value_info for each layer and combinator output (default true). */
  valueInfo?: boolean;
  /** Training: layers that are frozen (no gradient, no update; bn uses its running statistics). */
  frozen?: (node: LayerNode) => boolean;
  /** Training: an int64 scalar value that seeds random layers (dropout masks) for this step. */
  seed?: string;
}

export interface OpOptions {
  /** Number of outputs (default 1); extra outputs are named `${path}/${Op}_k`. */
  outputs?: number;
  domain?: string;
}

/** What the emitter remembers about each lowered node (for training: saved activations). */
export interface LoweredNode {
  node: Node;
  input: string;
  output: string;
}

export class LowerContext {
  readonly mode: LowerMode;
  readonly batch: Dim;
  /** Every value name handed out, so names stay unique without asking the builder. */
  private readonly used = new Set<string>();
  private readonly params = new Map<string, string>();
  private readonly sources?: SourceSet;
  private readonly file: string;
  private current: Node | null = null;
  /** Name prefix for ops in the current scope (backward, loss, optimizer); the node's path when null. */
  private prefix: string | null = null;
  /** Values a layer's training-mode forward keeps for its backward: `${path}\0${key}` -> value. */
  private readonly savedValues = new Map<string, string>();
  /** Nodes added by ops() in the current scope (not by nested scopes). */
  private own: NodeProto[] = [];
  /** Lowered layers and combinators, in order: input and output value names per node path. */
  readonly lowered = new Map<string, LoweredNode>();
  /** Buffers updated in training mode: parameter name -> value name holding the new value. */
  readonly stateUpdates = new Map<string, string>();

  constructor(readonly graph: GraphBuilder, private readonly opts: LowerContextOptions) {
    this.mode = opts.mode ?? 'inference';
    this.batch = opts.batch ?? 'N';
    this.file = opts.file ?? '<input>';
    if (opts.source !== undefined) this.sources = sourceSetOf(opts.source, this.file);
  }

  /** Reserves a value name (graph inputs/outputs chosen by the caller) so no layer takes it. */
  reserve(name: string): string {
    if (this.used.has(name)) throw new Error(`value name already in use: ${name}`);
    this.used.add(name);
    return name;
  }

  /** A name not used so far: `base`, else `base_1`, `base_2`, ... */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Where a node comes from, for node names: `model.cnn:3`. */
  location(node: Node): string {
    if (!this.sources) return this.file;
    const { source, position } = this.sources.locate(node.span.start);
    return `${source.base === 0 ? this.file : source.label}:${position.line + 1}`;
  }

  private get scope(): Node {
    if (!this.current) throw new Error('LowerContext: op() outside a layer or combinator');
    return this.current;
  }

  /** The value holding a parameter of `node` (`conv1.weight`), bound on first use. */
  param(node: LayerNode, param: string): string {
    const spec = node.params.find((p) => p.name === param);
    if (!spec) throw new Error(`layer ${node.path} (${node.layer.name}) has no parameter "${param}"`);
    const name = `${node.path}.${param}`;
    let value = this.params.get(name);
    if (value === undefined) {
      value = this.opts.params.bind(name, spec, node, this);
      this.params.set(name, value);
    }
    return value;
  }

  /** Parameters bound so far: full name -> value name. */
  get boundParams(): ReadonlyMap<string, string> {
    return this.params;
  }

  /** Adds one node for the current layer and returns its first output. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, opts: OpOptions = {}): string {
    return this.ops(opType, inputs, attrs, opts)[0];
  }

  /** Adds one node for the current layer and returns all its outputs. */
  ops(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, opts: OpOptions = {}): string[] {
    const scope = this.scope;
    const base = `${this.prefix ?? scope.path}/${opType}`;
    const outputs = Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.unique(i === 0 ? base : `${base}_${i}`));
    const name = `${outputs[0]} (${this.location(scope)})`;
    this.graph.node(opType, inputs, attrs, { outputs, name, domain: opts.domain });
    this.own.push(this.graph.nodes[this.graph.nodes.length - 1]);
    return outputs;
  }

  /** A constant initializer named after the current layer (`sumpool1/area`). */
  constant(data: TensorData, dims: number[] = [data.length], hint = 'const', elemType?: ElemType): string {
    return this.graph.initializer(this.unique(`${this.prefix ?? this.scope.path}/${hint}`), data, dims, elemType);
  }

  /** A float scalar constant (shape []), for Mul/Add with broadcasting. */
  scalar(value: number, hint = 'const'): string {
    return this.constant(new Float32Array([value]), [], hint);
  }

  /** An int64 vector constant (axes, shapes). */
  ints(values: readonly number[], hint = 'axes'): string {
    return this.constant(BigInt64Array.from(values, (v) => BigInt(v)), [values.length], hint);
  }

  /** Whether `node` is frozen in training (inside `frozen { }` or matched by a freeze pattern). */
  isFrozen(node: LayerNode): boolean {
    return node.frozen || (this.opts.frozen?.(node) ?? false);
  }

  /** The int64 scalar seeding random layers in training (dropout); throws when none was given. */
  get seed(): string {
    if (!this.opts.seed) throw new Error('LowerContext: no random seed value for a training-mode random layer');
    return this.opts.seed;
  }

  /** Training forward: keeps `value` for the layer's backward (`saved`). */
  save(node: LayerNode, key: string, value: string): void {
    this.savedValues.set(`${node.path}\0${key}`, value);
  }

  /** A value the layer's forward kept with `save`. */
  saved(node: LayerNode, key: string): string {
    const v = this.savedValues.get(`${node.path}\0${key}`);
    if (v === undefined) throw new Error(`layer ${node.path} saved no value "${key}" in its forward pass`);
    return v;
  }

  /**
   * Runs `fn` with ops named `${prefix}/Op` and located at `node` (the backward of a layer, the loss,
   * the optimizer); unlike `within`, nothing is renamed or recorded.
   */
  scoped<T>(node: Node, prefix: string, fn: () => T): T {
    const outer = this.current, outerOwn = this.own, outerPrefix = this.prefix;
    this.current = node;
    this.own = [];
    this.prefix = prefix;
    try {
      return fn();
    } finally {
      this.current = outer;
      this.own = outerOwn;
      this.prefix = outerPrefix;
    }
  }

  /** Training mode: `value` holds the new value of buffer `param` of `node`, one its kind lists in `updates`. */
  updateState(node: LayerNode, param: string, value: string): void {
    if (!node.layer.updates?.includes(param)) throw new Error(`layer ${node.path} (${node.layer.name}) updates ${param}, which its kind does not list in updates`);
    this.stateUpdates.set(`${node.path}.${param}`, value);
  }

  /**
   * Lowers `node` with `fn` (a layer's lower, or a combinator's ops). The value `fn` returns, when
   * a node of this scope produced it, is renamed to the node's path and its producer to
   * `path (file:line)`; its value_info gets the checker's shape with a symbolic batch.
   */
  within(node: Node, input: string, fn: () => string): string {
    const outer = this.current;
    const outerOwn = this.own;
    const outerPrefix = this.prefix;
    this.current = node;
    this.own = [];
    this.prefix = null;
    try {
      let out = fn();
      const producer = [...this.own].reverse().find((n) => n.output.includes(out));
      if (producer) {
        const name = this.unique(node.path || 'root');
        this.renameIn(this.graph.nodes.slice(this.graph.nodes.lastIndexOf(producer)), out, name);
        this.used.delete(out);
        producer.name = `${node.path || 'root'} (${this.location(node)})`;
        out = name;
        if (this.opts.valueInfo !== false && node.output) this.graph.valueInfo(out, this.dims(node.output));
      }
      this.lowered.set(node.path, { node, input, output: out });
      return out;
    } finally {
      this.current = outer;
      this.own = outerOwn;
      this.prefix = outerPrefix;
    }
  }

  /** [batch, ...shape]. */
  dims(shape: Shape): Dim[] {
    return [this.batch, ...shape];
  }

  private renameIn(nodes: readonly NodeProto[], from: string, to: string): void {
    for (const n of nodes) {
      if (n.input.includes(from)) n.input = n.input.map((v) => (v === from ? to : v));
      if (n.output.includes(from)) n.output = n.output.map((v) => (v === from ? to : v));
    }
  }

  /**
   * Renames the value `from` everywhere (nodes and value_info): used to give the final tensor
   * the graph output's name. Returns false when no node produces it (e.g. it is a graph input).
   */
  renameValue(from: string, to: string): boolean {
    if (!this.graph.nodes.some((n) => n.output.includes(from))) return false;
    this.renameIn(this.graph.nodes, from, to);
    for (const vi of this.graph.valueInfos) if (vi.name === from) vi.name = to;
    for (const [path, l] of this.lowered) {
      if (l.output === from) this.lowered.set(path, { ...l, output: to });
      if (l.input === from) this.lowered.set(path, { ...this.lowered.get(path)!, input: to });
    }
    return true;
  }
}

/** Initial values by parameter name are the caller's business; this binding makes each parameter a graph input (training graphs). */
export const inputParams: ParamBinding = {
  bind: (name, spec, _node, ctx) => ctx.graph.input(ctx.reserve(name), [...spec.shape]),
};
