/**
 * What every layer kind declares, in one place: its arguments, shape rule, parameters, MACs
 * spatial window (for the receptive field), ONNX lowering and gradient, and PyTorch form, so that
 * a new layer is one entry. Its proofs are entries too: a float64 forward in test/reference/layers.ts
 * and cases in test/helpers/layer-cases.ts (lowering, gradient, PyTorch parity), which
 * test/registry.test.ts requires of every kind.
 */
import type { CatalogKey, DiagnosticExtras, Diagnostic } from '../diagnostics.ts';
import type { LowerContext } from '../emit/context.ts';
import type { LayerNode, Receptive } from '../model.ts';

/** A per-sample shape: [C, H, W] for feature maps, [N] for vectors. The batch is symbolic. */
export type Shape = readonly number[];

export type ArgType =
  | 'int' // an integer
  | 'number' // any finite number
  | 'kernel' // K or KxK, resolved to [kh, kw]
  | 'pad' // same | valid | P | PHxPW | [top, left, bottom, right], resolved to Padding
  | 'bool' // on/off, true/false, yes/no
  | 'enum'; // one of `values`

export interface ArgSpec {
  name: string;
  type: ArgType;
  doc: string;
  positional?: boolean;
  required?: boolean;
  default?: ArgValue;
  values?: readonly string[];
  /** Inclusive bounds unless marked exclusive. */
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

export type Padding = 'same' | 'valid' | readonly [number, number, number, number];
export type ArgValue = number | string | boolean | readonly [number, number] | Padding;
export type Args = Record<string, ArgValue>;

export type Init =
  | { kind: 'kaiming_uniform'; fanIn: number } // PyTorch's default for conv and linear weights: U(-1/sqrt(fanIn), 1/sqrt(fanIn))
  | { kind: 'bias_uniform'; fanIn: number } // PyTorch's default bias: the same bound
  | { kind: 'constant'; value: number };

export interface ParamSpec {
  name: string; // local name: weight, bias, running_mean, ...
  shape: readonly number[];
  trainable: boolean;
  init: Init;
}

/** A sliding window over H and W, with explicit pads: what conv and pooling share. */
export interface Window {
  kernel: readonly [number, number];
  stride: readonly [number, number];
  dilation: readonly [number, number];
  pads: readonly [number, number, number, number]; // top, left, bottom, right
}

export class ShapeFailure extends Error {
  constructor(readonly diagnostic: Omit<Diagnostic, 'span'> & { arg?: string }) {
    super(diagnostic.message);
  }
}

/** `arg` points the range at that argument; `insertBefore` offers a fix that inserts text before the layer. */
export type ShapeExtras = DiagnosticExtras & { arg?: string; insertBefore?: string };

/** Handed to shape rules to report problems; the checker attaches source ranges. */
export interface ShapeContext {
  readonly layer: string;
  /** Reports an error and abandons the shape rule. `arg` points the range at that argument. */
  fail<K extends CatalogKey>(key: K, params: Parameters<typeof import('../diagnostics.ts').diagnostic<K>>[2], extras?: ShapeExtras): never;
  warn<K extends CatalogKey>(key: K, params: Parameters<typeof import('../diagnostics.ts').diagnostic<K>>[2], extras?: ShapeExtras): void;
}

export interface LayerKind {
  name: string;
  aliases?: readonly string[];
  /** One line for help, hover and completion. */
  doc: string;
  /** How the layer shows in a summary (e.g. `conv 32 3x3 s2`). */
  args: readonly ArgSpec[];
  /** The output shape, or ctx.fail. */
  shape(input: Shape, args: Args, ctx: ShapeContext): Shape;
  params?(input: Shape, args: Args): ParamSpec[];
  macs?(input: Shape, output: Shape, args: Args): number;
  /** The sliding window, for layers that have one (receptive field, hover formulas, lowering). */
  window?(input: Shape, args: Args): Window;
  /** Whether the output sees the whole input (global pooling, flatten, dense). */
  global?: boolean;
  /**
   * The receptive field after this layer from the one before (`rf`), for layers whose rule is
   * neither a sliding window's (`window`) nor a global layer's (`global`), the default ones: an
   * upsampling divides the jump by its scale. Sizes and jumps are in input pixels; `inputExtent`
   * is the model input's H and W.
   */
  receptive?(rf: Receptive, input: Shape, args: Args, inputExtent: readonly [number, number]): Receptive;
  /**
   * Set on layers that turn the values before them into probabilities: `softmax` (a distribution
   * over the outputs) or `sigmoid` (each output on its own). When a model ends in one, training
   * folds it into the matching loss (cross_entropy after softmax, bce after sigmoid), which then
   * takes the values before it, and predict shows the outputs as they are.
   */
  probabilities?: 'softmax' | 'sigmoid';
  /**
   * The buffers (non-trainable parameters, by local name) that the training-mode forward gives
   * new values with `ctx.updateState` when the layer is not frozen: bn's running statistics.
   * Training carries these from step to step; the other buffers stay as they are.
   */
  updates?: readonly string[];
  /**
   * Set on element-wise layers that commute with a window max in values and gradients: f does
   * not decrease (so f(max x) = max f(x)) and its gradient is 0 where it is flat (so the maximum's
   * gradient is the same whichever tied input the window picks), as relu. Training pools first
   * (`windowMax` after it) and runs f on the smaller, pooled tensor.
   */
  commutesWithMax?: boolean;
  /** Set on layers whose output is each window's maximum (maxpool, globalmaxpool), for `commutesWithMax`. */
  windowMax?: boolean;
  /**
   * Set on normalisations that an exporter may fold into the convolution before them (batch norm
   * in torch.onnx.export's eval export): this layer's tensors that make it the identity plus the
   * folded `bias` ([C]), each with how the weights report shows its origin (`1`, `1 - eps`).
   */
  unfold?(bias: Float32Array, args: Args): Record<string, { data: Float32Array; from: string }>;
  /**
   * Adds the ONNX nodes (opset 17) computing this layer on `x` ([N, ...node.input]) and returns
   * the output value. Parameters come from `ctx.param(node, 'weight')`; nodes from `ctx.op`.
   * `ctx.mode` is 'inference' or 'training' (batch statistics, active dropout); in training,
   * the buffers listed in `updates` get their new values with `ctx.updateState`. Only called on nodes the checker
   * inferred without errors (node.input and node.output are set).
   */
  lower(ctx: LowerContext, x: string, node: LayerNode): string;
  /**
   * Reverse mode: adds the ONNX nodes computing the gradients of this layer from the gradient of
   * its output (`g.dy`), after the training-mode forward pass (`lower` with ctx.mode 'training').
   * Values the forward saved with `ctx.save(node, key, value)` come back with `ctx.saved(node, key)`.
   * Returns the input gradient when `g.needInput`, and parameter gradients (by local name:
   * `weight`, `bias`) for the parameters `g.needParam` asks for. Ops go through `ctx.op` as in
   * `lower`; the emitter puts them in the layer's backward scope (`conv1/grad/...`).
   */
  grad(ctx: LowerContext, g: GradInput, node: LayerNode): GradOutput;
  /**
   * The layer in the exported model.py (`cnnc export --torch`): a Python expression building an
   * nn.Module (model.py imports torch, nn, F and math) that computes what `lower` computes, in
   * eval mode as the inference graph and in train mode as the training graph (bn's batch
   * statistics; dropout, with PyTorch's own random mask). Its parameters and buffers carry the
   * layer's local parameter names (`weight`, `running_mean`), so that state_dict keys are cnnc's
   * tensor names. Helper classes it needs go into model.py once, through `py.define`.
   */
  torch(node: LayerNode, py: TorchContext): string;
}

/** What a layer's `torch` form writes with (src/compiler/emit/torch/). */
export interface TorchContext {
  /** Puts `code`, a Python class or function called `name`, once at the top of model.py; returns `name`. */
  define(name: string, code: string): string;
  /** `fn(a, b, key=value)`; keyword arguments given as undefined (defaults) are left out. */
  call(fn: string, args: readonly (string | number)[], kwargs?: Record<string, string | number | undefined>): string;
  /** A Python literal: a number, True/False, a quoted string, a tuple of numbers. */
  lit(value: number | boolean | string | readonly number[]): string;
  /** A size pair as PyTorch takes it: `3` when both are equal, else `(1, 7)`. */
  pair(value: readonly [number, number]): string;
}

/** What a layer's `grad` gets: forward values and the output gradient, all [N, ...]. */
export interface GradInput {
  /** The layer's input in the forward pass. */
  x: string;
  /** The layer's output in the forward pass. */
  y: string;
  /** Gradient of the loss with respect to y. */
  dy: string;
  /** Whether the input gradient is needed (false when nothing before the layer is trained). */
  needInput: boolean;
  /** Whether the gradient of parameter `name` (local name) is needed. */
  needParam(name: string): boolean;
}

export interface GradOutput {
  dx?: string;
  params?: Record<string, string>;
}

export const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
export const formatShape = (s: Shape) => s.join('×');
