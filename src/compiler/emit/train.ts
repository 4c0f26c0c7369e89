/**
 * Training graphs in plain ONNX (opset 17): the forward pass in training mode, the backward pass
 * (backward.ts: each layer kind's and combinator's `grad` from the registries), the loss and the optimizer
 * update, all standard ops, so that stock onnxruntime (no training build) runs them.
 *
 * Three graphs per model and train config:
 * - the training step: inputs are every parameter and buffer (`conv1.weight`, `bn1.running_var`),
 *   the optimizer state (`optim.conv1.weight.m`, ...), the batch `input` [N, ...], `labels` [N]
 *   (int64; [N, H, W] masks for a dense model, see dense.ts), `lr` (float scalar) and `step`
 *   (int64 scalar, 0-based: Adam's t is step + 1, and dropout masks are seeded by it); outputs
 *   `loss` (mean over the batch), `correct` (int64: samples, or a dense model's pixels) and
 *   `new:NAME` for every value the step changes (trained parameters, their optimizer state, the
 *   running statistics of batch norms that are not frozen); a dense model's steps also output
 *   `intersection` and `union` (int64 [C], the pixel counts per class behind the IoU);
 * - evaluation: parameters and buffers, `input`, `labels` -> `loss`, `correct`, `logits` (and a
 *   dense model's `intersection`, `union`), with batch norm on running statistics and dropout off;
 * - K steps in one ONNX Loop over a block of batches: `input` [K, N, ...], `labels` [K, N, ...],
 *   `lr` [K], `step` (the first step's number); the state is loop-carried; outputs the final
 *   `new:NAME` values and the per-step `loss` [K] and `correct` [K] (and `intersection`, `union`
 *   [K, C]).
 *
 * Frozen layers (inside `frozen { }`, or matched by the train section's freeze patterns) get no
 * gradient and no update; a frozen batch norm uses its running statistics and keeps them.
 */
import onnxProto from 'onnx-proto';
import { UserError } from '../../errors.ts';
import type { SourceInput } from '../source.ts';
import type { LayerKind, ParamSpec } from '../layers/types.ts';
import { assertNever, finalLayer, layers, withChildren, type CheckedModel, type LayerNode, type Node } from '../model.ts';
import { Backward } from './backward.ts';
import { buildModel, GraphBuilder, type Dim } from '../onnx/builder.ts';
import { classesOf, denseOutput } from '../dense.ts';
import type { TrainConfig } from '../train-config.ts';
import { LowerContext } from './context.ts';
import { assertEmittable, IR_VERSION, modelMetadata, OPSET, PRODUCER } from './inference.ts';
import { initialValue, paramCount } from './init.ts';
import { lowerNode } from './lower.ts';

export const TRAIN_INPUTS = { input: 'input', labels: 'labels', lr: 'lr', step: 'step' } as const;
export const TRAIN_OUTPUTS = { loss: 'loss', correct: 'correct', logits: 'logits', intersection: 'intersection', union: 'union' } as const;
/** Prefix of the outputs holding updated state: `new:conv1.weight`. */
export const NEW_PREFIX = 'new:';
/** Prefix of the gradient outputs of the gradient graph: `grad:conv1.weight`, `grad:input`. */
export const GRAD_PREFIX = 'grad:';

// ---------------------------------------------------------------------------------------------
// Freezing

/** `*` matches any run of characters (dots included); everything else literally. */
function globRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/**
 * A predicate for the train section's freeze patterns: a layer is frozen when a pattern matches its
 * path or the path of anything it is inside (`stage1` freezes `stage1.conv2`; so does `stage1.*`).
 */
export function frozenMatcher(patterns: readonly string[]): (node: LayerNode) => boolean {
  const res = patterns.map(globRegExp);
  if (res.length === 0) return () => false;
  return (node) => {
    const parts = node.path.split('.');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('.');
      if (res.some((r) => r.test(prefix))) return true;
    }
    return false;
  };
}

// ---------------------------------------------------------------------------------------------
// What the graphs take and give

export interface StateEntry {
  /** `conv1.weight`, `bn1.running_mean`, `optim.conv1.weight.m`. */
  name: string;
  dims: number[];
  kind: 'param' | 'buffer' | 'optim';
  /** Whether the training step outputs a new value (`new:NAME`). */
  updated: boolean;
  /** For params and buffers: the layer and its spec. */
  node?: LayerNode;
  spec?: ParamSpec;
}

export interface TrainPlan {
  model: CheckedModel & { input: number[]; output: number[] };
  config: TrainConfig;
  /** Every state value, in input order: parameters and buffers in layer order, then optimizer state. */
  state: StateEntry[];
  isFrozen: (node: LayerNode) => boolean;
  /** Full parameter name -> optimizer slot names. */
  slots: Map<string, string[]>;
}

/** Optimizer state slots per trained parameter: SGD's momentum buffer, Adam's two moments. */
export function optimizerSlots(opt: TrainConfig['optimizer']): string[] {
  if (opt.kind === 'sgd') return opt.momentum > 0 ? ['momentum'] : [];
  return ['m', 'v'];
}

export function trainPlan(model: CheckedModel, config: TrainConfig): TrainPlan {
  assertEmittable(model);
  const match = frozenMatcher(config.freeze);
  const isFrozen = (node: LayerNode) => node.frozen || match(node);
  const state: StateEntry[] = [];
  const optim: StateEntry[] = [];
  const slots = new Map<string, string[]>();
  const slotNames = optimizerSlots(config.optimizer);
  for (const node of layers(model.root)) {
    const frozen = isFrozen(node);
    for (const spec of node.params) {
      const name = `${node.path}.${spec.name}`;
      const dims = [...spec.shape];
      if (spec.trainable) {
        state.push({ name, dims, kind: 'param', updated: !frozen, node, spec });
        if (!frozen) {
          slots.set(name, slotNames.map((s) => `optim.${name}.${s}`));
          for (const s of slotNames) optim.push({ name: `optim.${name}.${s}`, dims, kind: 'optim', updated: true });
        }
      } else {
        // Buffers: updated when the layer trains, if its kind updates them (bn's running statistics).
        state.push({ name, dims, kind: 'buffer', updated: !frozen && (node.layer.updates?.includes(spec.name) ?? false), node, spec });
      }
    }
  }
  return { model, config, state: [...state, ...optim], isFrozen, slots };
}

/** Initial state: parameters as `cnnc compile` initialises them for `seed` (default config.seed), optimizer state zero. */
export function initialState(plan: TrainPlan, seed = plan.config.seed): Map<string, { dims: number[]; data: Float32Array }> {
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const e of plan.state) {
    const count = e.dims.reduce((a, b) => a * b, 1);
    out.set(e.name, { dims: e.dims, data: e.spec ? initialValue(e.spec.init, paramCount(e.spec), seed, e.name) : new Float32Array(count) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Losses

interface LossValues {
  loss: string;
  correct: string;
  /** Gradient of the loss with respect to the loss's input (absent in evaluation). */
  dz?: string;
  /** Dense models: per class, the pixels predicted and labelled it (intersection) and either (union), int64 [C]. */
  iou?: { intersection: string; union: string };
}

const FLOAT = 1, INT64 = 7;

/**
 * The tree the training graphs run: an activation that commutes with a max (relu) before a window
 * max (`maxpool`, `globalmaxpool`) swapped to after it, which gives the same values and gradients
 * (LayerKind.commutesWithMax) with the activation's forward and backward on the pooled tensor.
 */
function poolsBeforeActivations<N extends Node>(node: N): N {
  const copy = withChildren(node, poolsBeforeActivations);
  if (copy.kind !== 'seq') return copy;
  const items = copy.items;
  for (let i = 0; i + 1 < items.length; i++) {
    const [act, pool] = [items[i], items[i + 1]];
    if (act.kind !== 'layer' || pool.kind !== 'layer' || !act.layer.commutesWithMax || !pool.layer.windowMax) continue;
    items.splice(i, 2, { ...pool, input: act.input }, { ...act, input: pool.output, output: pool.output });
    i++;
  }
  return copy;
}

/** Which probabilities each loss takes as logits instead (PyTorch's CrossEntropyLoss, BCEWithLogitsLoss). */
export const FOLDED_BY_LOSS: Record<TrainConfig['loss']['kind'], LayerKind['probabilities']> = { cross_entropy: 'softmax', bce: 'sigmoid', mse: undefined };

/**
 * The final layer folded into the loss: a softmax before cross-entropy or a sigmoid before BCE,
 * wherever the model's last layer is (inside blocks too); the loss takes the values before it.
 */
function foldedTail(root: Node, config: TrainConfig): LayerNode | undefined {
  const last = finalLayer(root);
  const want = FOLDED_BY_LOSS[config.loss.kind];
  return want !== undefined && last?.layer.probabilities === want ? last : undefined;
}

/**
 * Loss, correct count and (with `withGrad`) the gradient, for z [N, ...out] and int64 labels: [N],
 * or [N, H, W] for a dense model (out K×H×W), whose every position is a prediction (PyTorch's
 * losses on [N, K, H, W] against [N, H, W], the mean over positions and batch):
 * - cross_entropy: softmax cross-entropy over the class axis, label smoothing as PyTorch
 *   (targets (1 - ε)·onehot + ε/K); correct = argmax matches;
 * - bce: binary cross-entropy with logits, mean over all outputs; one output: the label (0/1) is
 *   the target and z > 0 predicts 1; K outputs: one-hot targets and argmax;
 * - mse: mean squared error over all outputs against the label (one output) or one-hot targets.
 * Labels equal to the loss's `ignore` count toward neither the loss (the mean is over the others,
 * as PyTorch's ignore_index; 0 when a batch has none) nor the correct count nor the IoU counts.
 */
function emitLoss(ctx: LowerContext, node: Node, config: TrainConfig, zIn: string, labels: string, outShape: readonly number[], withGrad: boolean): LossValues {
  return ctx.scoped(node, 'loss', () => {
    const dense = denseOutput(outShape);
    const K = dense ? dense.channels : outShape.reduce((a, b) => a * b, 1);
    const z = dense || outShape.length === 1 ? zIn : ctx.op('Flatten', [zIn], { axis: 1 });
    const { kind, ignore } = config.loss;
    const valid = ignore === undefined ? undefined : ctx.op('Not', [ctx.op('Equal', [labels, ctx.constant(BigInt64Array.of(BigInt(ignore)), [], 'ignore')])]);
    // The valid positions as a factor that broadcasts over the class axis.
    const validK = valid && ctx.op('Unsqueeze', [ctx.op('Cast', [valid], { to: FLOAT }), ctx.ints([1])]);
    const masked = (v: string) => (validK ? ctx.op('Mul', [v, validK]) : v);
    const sumAll = (v: string) => ctx.op('ReduceSum', [v], { keepdims: 0 });
    const n = validK ? ctx.op('Max', [sumAll(validK), ctx.scalar(1, 'one')]) : ctx.op('Cast', [ctx.op('Size', [labels])], { to: FLOAT });
    const onehot = () => ctx.op('OneHot', [labels, ctx.constant(BigInt64Array.of(BigInt(K)), [], 'depth'), ctx.constant(Float32Array.of(0, 1), [2], 'onehot_values')], { axis: 1 });
    const argmax = () => ctx.op('ArgMax', [z], { axis: 1, keepdims: 0 });
    // A single output's prediction: z > 0 (bce) or z rounded (mse).
    const single = (f: (v: string) => string) => ctx.op('Cast', [f(ctx.op('Squeeze', [z, ctx.ints([1])]))], { to: INT64 });
    let loss: string, pred: string, dz: string | undefined;
    if (kind === 'cross_entropy') {
      const eps = config.loss.smoothing;
      const logp = ctx.op('LogSoftmax', [z], { axis: 1 });
      let target = onehot();
      if (eps > 0) target = ctx.op('Add', [ctx.op('Mul', [target, ctx.scalar(1 - eps, 'confidence')]), ctx.scalar(eps / K, 'smooth')]);
      loss = ctx.op('Div', [ctx.op('Neg', [sumAll(masked(ctx.op('Mul', [target, logp])))]), n]);
      pred = argmax();
      if (withGrad) dz = ctx.op('Div', [masked(ctx.op('Sub', [ctx.op('Exp', [logp]), target])), n]);
    } else {
      const target = K === 1 ? ctx.op('Unsqueeze', [ctx.op('Cast', [labels], { to: FLOAT }), ctx.ints([1])]) : onehot();
      const total = ctx.op('Mul', [n, ctx.scalar(K, 'outputs')]);
      if (kind === 'bce') {
        // max(z, 0) - z·t + log(1 + exp(-|z|)), stable for any z.
        const terms = ctx.op('Add', [
          ctx.op('Sub', [ctx.op('Relu', [z]), ctx.op('Mul', [z, target])]),
          ctx.op('Softplus', [ctx.op('Neg', [ctx.op('Abs', [z])])]),
        ]);
        loss = ctx.op('Div', [sumAll(masked(terms)), total]);
        pred = K === 1 ? single((v) => ctx.op('Greater', [v, ctx.scalar(0, 'zero')])) : argmax();
        if (withGrad) dz = ctx.op('Div', [masked(ctx.op('Sub', [ctx.op('Sigmoid', [z]), target])), total]);
      } else if (kind === 'mse') {
        const diff = ctx.op('Sub', [z, target]);
        loss = ctx.op('Div', [sumAll(masked(ctx.op('Mul', [diff, diff]))), total]);
        pred = K === 1 ? single((v) => ctx.op('Round', [v])) : argmax();
        if (withGrad) dz = ctx.op('Div', [masked(ctx.op('Mul', [diff, ctx.scalar(2, 'two')])), total]);
      } else {
        return assertNever(kind);
      }
    }
    let hit = ctx.op('Equal', [pred, labels]);
    if (valid) hit = ctx.op('And', [hit, valid]);
    const correct = sumAll(ctx.op('Cast', [hit], { to: INT64 }));
    if (dz && z !== zIn) dz = ctx.op('Reshape', [dz, ctx.op('Shape', [zIn])]);
    return { loss, correct, dz, iou: dense && iouCounts(ctx, pred, labels, valid, classesOf(K, kind)) };
  });
}

/** Per class c of `classes`: positions predicted c and labelled c, and those predicted or labelled c (int64 [C]). */
function iouCounts(ctx: LowerContext, pred: string, labels: string, valid: string | undefined, classes: number): LossValues['iou'] {
  const depth = ctx.constant(BigInt64Array.of(BigInt(classes)), [], 'classes');
  const values = ctx.constant(BigInt64Array.of(0n, 1n), [2], 'onehot_counts');
  const validK = valid && ctx.op('Unsqueeze', [ctx.op('Cast', [valid], { to: INT64 }), ctx.ints([1])]);
  // One-hot over the class axis ([N, C, H, W]); out-of-range values (an ignore label) give no class.
  const onehot = (v: string) => {
    const h = ctx.op('OneHot', [v, depth, values], { axis: 1 });
    return validK ? ctx.op('Mul', [h, validK]) : h;
  };
  const [p, t] = [onehot(pred), onehot(labels)];
  const perClass = (v: string) => ctx.op('ReduceSum', [v, ctx.ints([0, 2, 3])], { keepdims: 0 });
  const intersection = perClass(ctx.op('Mul', [p, t]));
  return { intersection, union: ctx.op('Sub', [ctx.op('Add', [perClass(p), perClass(t)]), intersection]) };
}

// ---------------------------------------------------------------------------------------------
// Optimizers

/**
 * Adam's per-step scalars, computed in float64 as PyTorch computes them (Python floats) and cast
 * to float32 once: step size lr/(1-β1^t), √(1-β2^t), and AdamW's decay 1 - lr·wd. In float32,
 * β2 = 0.99999 rounds to 0.99998999, and 1 - β2^t on that value is 0.14% larger than on β2 (the
 * moments' 1 - β2 is exact to float32), which made every update 0.068% too large.
 */
function adamScalars(ctx: LowerContext, o: TrainConfig['optimizer'], lr: string, step: string): { stepSize: string; sqrtBc2: string; decay?: string } {
  const DOUBLE = 11, FLOAT = 1;
  const d = (value: number, hint: string) => ctx.constant(Float64Array.of(value), [], hint);
  const one = d(1, 'one_f64');
  const t = ctx.op('Cast', [ctx.op('Add', [step, ctx.constant(BigInt64Array.of(1n), [], 'one')])], { to: DOUBLE });
  const lr64 = ctx.op('Cast', [lr], { to: DOUBLE });
  const correction = (beta: number, hint: string) => ctx.op('Sub', [one, ctx.op('Pow', [d(beta, hint), t])]);
  const toFloat = (v: string) => ctx.op('Cast', [v], { to: FLOAT });
  return {
    stepSize: toFloat(ctx.op('Div', [lr64, correction(o.beta1, 'beta1_f64')])),
    sqrtBc2: toFloat(ctx.op('Sqrt', [correction(o.beta2, 'beta2_f64')])),
    decay: o.kind === 'adamw' && o.weight_decay > 0 ? toFloat(ctx.op('Sub', [one, ctx.op('Mul', [lr64, d(o.weight_decay, 'weight_decay_f64')])])) : undefined,
  };
}

/**
 * PyTorch's update rules, with lr a float scalar value and step the 0-based int64 step:
 * - sgd: g += wd·p; with momentum, b = μ·b + g and g = b (or g + μ·b with Nesterov); p -= lr·g;
 * - adam: g += wd·p; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
 *   p -= lr/(1-β1^t) · m / (√v/√(1-β2^t) + eps), t = step + 1;
 * - adamw: as adam without the wd in g, after p ← p·(1 - lr·wd).
 */
function emitOptimizer(ctx: LowerContext, plan: TrainPlan, root: Node, grads: Map<string, string>, value: (name: string) => string, lr: string, step: string): Map<string, string> {
  const o = plan.config.optimizer;
  const out = new Map<string, string>();
  const shared = o.kind === 'sgd' ? undefined : ctx.scoped(root, 'optim', () => adamScalars(ctx, o, lr, step));
  for (const e of plan.state) {
    if (e.kind !== 'param' || !e.updated) continue;
    const grad = grads.get(e.name);
    if (!grad) throw new Error(`no gradient for ${e.name}`);
    const slots = plan.slots.get(e.name)!;
    ctx.scoped(root, `optim/${e.name}`, () => {
      const p = value(e.name);
      let g = grad;
      if (o.weight_decay > 0 && o.kind !== 'adamw') g = ctx.op('Add', [g, ctx.op('Mul', [p, ctx.scalar(o.weight_decay, 'weight_decay')])]);
      if (o.kind === 'sgd') {
        if (o.momentum > 0) {
          const buf = ctx.op('Add', [ctx.op('Mul', [value(slots[0]), ctx.scalar(o.momentum, 'momentum')]), g]);
          out.set(slots[0], buf);
          g = o.nesterov ? ctx.op('Add', [g, ctx.op('Mul', [buf, ctx.scalar(o.momentum, 'momentum')])]) : buf;
        }
        out.set(e.name, ctx.op('Sub', [p, ctx.op('Mul', [g, lr])]));
        return;
      }
      const s = shared!;
      const m = ctx.op('Add', [ctx.op('Mul', [value(slots[0]), ctx.scalar(o.beta1, 'beta1')]), ctx.op('Mul', [g, ctx.scalar(1 - o.beta1, 'one_minus_beta1')])]);
      const v = ctx.op('Add', [ctx.op('Mul', [value(slots[1]), ctx.scalar(o.beta2, 'beta2')]), ctx.op('Mul', [ctx.op('Mul', [g, g]), ctx.scalar(1 - o.beta2, 'one_minus_beta2')])]);
      const denom = ctx.op('Add', [ctx.op('Div', [ctx.op('Sqrt', [v]), s.sqrtBc2]), ctx.scalar(o.eps, 'eps')]);
      const base = s.decay ? ctx.op('Mul', [p, s.decay]) : p;
      out.set(e.name, ctx.op('Sub', [base, ctx.op('Mul', [ctx.op('Div', [m, denom]), s.stepSize])]));
      out.set(slots[0], m);
      out.set(slots[1], v);
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The step, shared by the single-step graph and the Loop body

export interface GraphOptions {
  /** Source file and source (text, or the check's texts with its imports), for node names and metadata. */
  file?: string;
  source?: SourceInput;
}

interface StepValues {
  input: string;
  labels: string;
  lr: string;
  step: string;
  /** State name -> value (graph input or loop-carried value). */
  state: (name: string) => string;
}

function newContext(graph: GraphBuilder, plan: TrainPlan, mode: 'inference' | 'training', values: (name: string) => string, opts: GraphOptions, seed?: string): LowerContext {
  return new LowerContext(graph, {
    mode, file: opts.file, source: opts.source, frozen: plan.isFrozen, seed,
    params: { bind: (name) => values(name) },
  });
}

/** A seed for the step's random layers: step + 1,000,003·(train seed), as an int64 scalar. */
function stepSeed(graph: GraphBuilder, plan: TrainPlan, step: string): string {
  const offset = graph.constant(BigInt64Array.of(BigInt(plan.config.seed) * 1_000_003n), [], 'seed_offset');
  return graph.op('Add', [step, offset]);
}

/** Forward, loss, backward and update on `ctx`; returns the loss, correct count and new state values. */
function emitStep(ctx: LowerContext, plan: TrainPlan, v: StepValues): Omit<LossValues, 'dz'> & { updates: Map<string, string> } {
  const { model, config } = plan;
  const root = poolsBeforeActivations(model.root);
  const out = lowerNode(ctx, root, v.input);
  const tail = foldedTail(root, config);
  const z = tail ? ctx.lowered.get(tail.path)!.input : out;
  const zShape = tail ? tail.input! : model.output;
  const loss = emitLoss(ctx, root, config, z, v.labels, zShape, true);
  const backward = new Backward(ctx, plan, root, false, tail);
  backward.run(root, loss.dz!);
  const updates = emitOptimizer(ctx, plan, root, backward.grads, v.state, v.lr, v.step);
  for (const [name, value] of ctx.stateUpdates) updates.set(name, value);
  for (const e of plan.state) if (e.updated && !updates.has(e.name)) throw new Error(`the training step computes no new value for ${e.name}`);
  return { loss: loss.loss, correct: loss.correct, iou: loss.iou, updates };
}

/** The labels' dimensions after the batch: a dense model's mask [H, W], else none. */
export function labelDims(model: { output: readonly number[] | null }): number[] {
  const dense = denseOutput(model.output);
  return dense ? [dense.height, dense.width] : [];
}

/** A dense model's per-class counts (TRAIN_OUTPUTS.intersection, union) as outputs, with `lead` dims before [C]. */
function addIouOutputs(outputs: Outputs, plan: TrainPlan, iou: LossValues['iou'], lead: Dim[], prefix = ''): void {
  if (!iou) return;
  const dense = denseOutput(plan.model.output)!;
  const dims = [...lead, classesOf(dense.channels, plan.config.loss.kind)];
  outputs.add(iou.intersection, prefix + TRAIN_OUTPUTS.intersection, dims, 'int64');
  outputs.add(iou.union, prefix + TRAIN_OUTPUTS.union, dims, 'int64');
}

/**
 * Declares `value` as the graph output `name`. Its producer's output is renamed rather than copied
 * through an Identity (onnxruntime copies Identity's data; the step outputs every parameter);
 * values without a producer in this graph, or already given out, go through an Identity.
 */
class Outputs {
  private readonly renamed = new Map<string, string>();
  constructor(private readonly ctx: LowerContext, private readonly graph: GraphBuilder) {}

  add(value: string, name: string, dims: Dim[], elemType: 'float' | 'int64' = 'float'): void {
    const given = this.renamed.get(value);
    if (given === undefined && this.ctx.renameValue(value, name)) this.renamed.set(value, name);
    else this.graph.node('Identity', [given ?? value], {}, { outputs: [name], name: `${name} (output)` });
    this.graph.output(name, dims, elemType);
  }
}

const dimsOf = (plan: TrainPlan, name: string) => plan.state.find((e) => e.name === name)!.dims;

function finish(graph: GraphBuilder, plan: TrainPlan, opts: GraphOptions, what: string): Uint8Array {
  return buildModel(graph, {
    opset: OPSET, irVersion: IR_VERSION, producerName: PRODUCER.name, producerVersion: PRODUCER.version,
    docString: `${plan.model.name}: ${what}, compiled by cnnc from ${opts.file ?? 'a .cnn source'}`,
    metadata: { ...modelMetadata(plan.model, opts.source, opts.file), 'cnnc.graph': what, 'cnnc.train_config': JSON.stringify(plan.config) },
  });
}

/** The single training-step graph. */
export function emitTrainStep(plan: TrainPlan, opts: GraphOptions = {}): Uint8Array {
  const graph = new GraphBuilder(`${plan.model.name}_train_step`);
  for (const e of plan.state) graph.input(e.name, e.dims);
  const input = graph.input(TRAIN_INPUTS.input, ['N', ...plan.model.input]);
  const labels = graph.input(TRAIN_INPUTS.labels, ['N', ...labelDims(plan.model)], 'int64');
  const lr = graph.input(TRAIN_INPUTS.lr, [], 'float');
  const step = graph.input(TRAIN_INPUTS.step, [], 'int64');
  const ctx = newContext(graph, plan, 'training', (n) => n, opts, stepSeed(graph, plan, step));
  reserveAll(ctx, graph);
  const r = emitStep(ctx, plan, { input, labels, lr, step, state: (n) => n });
  const outputs = new Outputs(ctx, graph);
  outputs.add(r.loss, TRAIN_OUTPUTS.loss, [], 'float');
  outputs.add(r.correct, TRAIN_OUTPUTS.correct, [], 'int64');
  addIouOutputs(outputs, plan, r.iou, []);
  for (const e of plan.state) if (e.updated) outputs.add(r.updates.get(e.name)!, NEW_PREFIX + e.name, e.dims);
  return finish(graph, plan, opts, 'train_step');
}

/** Reserves every name the builder has handed out so far, so the context never reuses one. */
function reserveAll(ctx: LowerContext, graph: GraphBuilder): void {
  for (const v of [...graph.inputs, ...graph.initializers]) if (v.name) ctx.reserve(v.name);
  for (const n of graph.nodes) for (const o of n.output) ctx.reserve(o);
}

/** The evaluation graph: running statistics, no dropout; loss, correct count and logits. */
export function emitEval(plan: TrainPlan, opts: GraphOptions = {}): Uint8Array {
  const graph = new GraphBuilder(`${plan.model.name}_eval`);
  for (const e of plan.state) if (e.kind !== 'optim') graph.input(e.name, e.dims);
  const input = graph.input(TRAIN_INPUTS.input, ['N', ...plan.model.input]);
  const labels = graph.input(TRAIN_INPUTS.labels, ['N', ...labelDims(plan.model)], 'int64');
  const ctx = newContext(graph, plan, 'inference', (n) => n, opts);
  reserveAll(ctx, graph);
  for (const name of Object.values(TRAIN_OUTPUTS)) ctx.reserve(name);
  const out = lowerNode(ctx, plan.model.root, input);
  const tail = foldedTail(plan.model.root, plan.config);
  const loss = emitLoss(ctx, plan.model.root, plan.config, tail ? ctx.lowered.get(tail.path)!.input : out, labels, tail ? tail.input! : plan.model.output, false);
  const outputs = new Outputs(ctx, graph);
  outputs.add(loss.loss, TRAIN_OUTPUTS.loss, [], 'float');
  outputs.add(loss.correct, TRAIN_OUTPUTS.correct, [], 'int64');
  outputs.add(out, TRAIN_OUTPUTS.logits, ['N', ...plan.model.output]);
  addIouOutputs(outputs, plan, loss.iou, []);
  return finish(graph, plan, opts, 'eval');
}

/**
 * K training steps in one ONNX Loop (K = the first dimension of `input`): the updated state is
 * loop-carried, so it stays inside the runtime between steps. Frozen parameters are read from the
 * outer graph. Gives the same state as K single steps with the same batches, lrs and steps.
 */
export function emitTrainLoop(plan: TrainPlan, opts: GraphOptions & { steps?: number } = {}): Uint8Array {
  const graph = new GraphBuilder(`${plan.model.name}_train_loop`);
  for (const e of plan.state) graph.input(e.name, e.dims);
  const K: Dim = opts.steps ?? 'K';
  const input = graph.input(TRAIN_INPUTS.input, [K, 'N', ...plan.model.input]);
  const labels = graph.input(TRAIN_INPUTS.labels, [K, 'N', ...labelDims(plan.model)], 'int64');
  const lr = graph.input(TRAIN_INPUTS.lr, [K], 'float');
  const step = graph.input(TRAIN_INPUTS.step, [], 'int64');
  const zero = graph.constant(BigInt64Array.of(0n), [], 'zero');
  const trips = opts.steps !== undefined
    ? graph.constant(BigInt64Array.of(BigInt(opts.steps)), [], 'trips')
    : graph.op('Gather', [graph.op('Shape', [input]), zero], { axis: 0 });

  const carried = plan.state.filter((e) => e.updated);
  const body = graph.subgraph('step');
  const iter = body.input('iteration', [], 'int64');
  const condIn = body.input('cond_in', [], 'bool');
  const inside = new Map<string, string>();
  for (const e of carried) inside.set(e.name, body.input(`loop:${e.name}`, e.dims));
  const state = (name: string) => inside.get(name) ?? name; // frozen values: the outer graph's inputs
  const stepI = body.op('Add', [step, iter]);
  const x = body.op('Gather', [input, iter], { axis: 0 });
  const y = body.op('Gather', [labels, iter], { axis: 0 });
  const lrI = body.op('Gather', [lr, iter], { axis: 0 });
  const ctx = newContext(body, plan, 'training', state, opts, stepSeed(body, plan, stepI));
  reserveAll(ctx, graph);
  reserveAll(ctx, body);
  const r = emitStep(ctx, plan, { input: x, labels: y, lr: lrI, step: stepI, state });
  const condOut = body.op('Identity', [condIn]);
  body.output(condOut, [], 'bool');
  const bodyOutputs = new Outputs(ctx, body);
  for (const e of carried) bodyOutputs.add(r.updates.get(e.name)!, `loop:new:${e.name}`, e.dims);
  bodyOutputs.add(r.loss, 'loop:loss', [], 'float');
  bodyOutputs.add(r.correct, 'loop:correct', [], 'int64');
  addIouOutputs(bodyOutputs, plan, r.iou, [], 'loop:');

  const perStep = [TRAIN_OUTPUTS.loss, TRAIN_OUTPUTS.correct, ...(r.iou ? [TRAIN_OUTPUTS.intersection, TRAIN_OUTPUTS.union] : [])];
  const outputs = [...carried.map((e) => NEW_PREFIX + e.name), ...perStep];
  graph.node('Loop', [trips, '', ...carried.map((e) => e.name)], { body: body.toGraph() }, { outputs, name: `train_loop (${opts.file ?? 'model'})` });
  for (const e of carried) graph.output(NEW_PREFIX + e.name, dimsOf(plan, e.name));
  graph.output(TRAIN_OUTPUTS.loss, [K], 'float');
  graph.output(TRAIN_OUTPUTS.correct, [K], 'int64');
  if (r.iou) {
    const classes = classesOf(denseOutput(plan.model.output)!.channels, plan.config.loss.kind);
    for (const name of [TRAIN_OUTPUTS.intersection, TRAIN_OUTPUTS.union]) graph.output(name, [K, classes], 'int64');
  }
  return finish(graph, plan, opts, 'train_loop');
}

/**
 * For tests and tools: forward in training mode and the backward pass from a given output
 * gradient. Inputs: parameters and buffers, `input`, `dy` (shaped like the output), `step`
 * (seeds dropout); outputs: `output`, `grad:input` (when `inputGrad`), `grad:NAME` for each
 * trained parameter, and `new:NAME` for updated buffers.
 */
export function emitGradient(plan: TrainPlan, opts: GraphOptions & { inputGrad?: boolean } = {}): Uint8Array {
  const graph = new GraphBuilder(`${plan.model.name}_grad`);
  for (const e of plan.state) if (e.kind !== 'optim') graph.input(e.name, e.dims);
  const input = graph.input(TRAIN_INPUTS.input, ['N', ...plan.model.input]);
  const dy = graph.input('dy', ['N', ...plan.model.output]);
  const step = graph.input(TRAIN_INPUTS.step, [], 'int64');
  const ctx = newContext(graph, plan, 'training', (n) => n, opts, stepSeed(graph, plan, step));
  reserveAll(ctx, graph);
  const root = poolsBeforeActivations(plan.model.root);
  const out = lowerNode(ctx, root, input);
  const inputGrad = opts.inputGrad ?? true;
  const backward = new Backward(ctx, plan, root, inputGrad);
  const dx = backward.run(root, dy);
  const emit = (name: string, value: string, dims: Dim[]) => {
    graph.node('Identity', [value], {}, { outputs: [name], name: `${name} (output)` });
    graph.output(name, dims);
  };
  emit('output', out, ['N', ...plan.model.output]);
  if (inputGrad) emit(`${GRAD_PREFIX}input`, dx ?? dy, ['N', ...plan.model.input]);
  for (const e of plan.state) {
    if (e.kind === 'param' && e.updated) emit(GRAD_PREFIX + e.name, backward.grads.get(e.name)!, e.dims);
    if (e.kind === 'buffer' && e.updated) emit(NEW_PREFIX + e.name, ctx.stateUpdates.get(e.name)!, e.dims);
  }
  return finish(graph, plan, opts, 'gradient');
}

/** All three graphs and the plan, for `cnnc compile --train` and the runner. */
export interface TrainGraphs {
  plan: TrainPlan;
  trainStep: Uint8Array;
  eval: Uint8Array;
  trainLoop?: Uint8Array;
}

export function compileTraining(model: CheckedModel, config: TrainConfig, opts: GraphOptions & { loop?: boolean; loopSteps?: number } = {}): TrainGraphs {
  const plan = trainPlan(model, config);
  if (plan.state.every((e) => !(e.kind === 'param' && e.updated))) {
    throw new UserError(`model ${model.name} has no trainable parameters (all frozen or none); there is nothing to train`);
  }
  return {
    plan,
    trainStep: emitTrainStep(plan, opts),
    eval: emitEval(plan, opts),
    trainLoop: opts.loop ? emitTrainLoop(plan, { ...opts, steps: opts.loopSteps }) : undefined,
  };
}

/** Names of a serialized model's graph inputs and outputs (for tools and tests). */
export function graphSignature(bytes: Uint8Array): { inputs: string[]; outputs: string[] } {
  const m = onnxProto.onnx.ModelProto.decode(bytes);
  return { inputs: (m.graph?.input ?? []).map((i) => i.name ?? ''), outputs: (m.graph?.output ?? []).map((o) => o.name ?? '') };
}

