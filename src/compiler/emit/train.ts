/**
 * Training graphs in plain ONNX (opset 17), assembled here from their parts: the plan of what
 * trains (train-plan.ts), the forward pass in training mode, the backward pass (backward.ts: each
 * layer kind's and combinator's `grad` from the registries), the loss (losses.ts) and the
 * optimizer update (optimizers.ts), all standard ops, so that stock onnxruntime (no training
 * build) runs them.
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
 */
import onnxProto from 'onnx-proto';
import { UserError } from '../../errors.ts';
import type { SourceInput } from '../source.ts';
import type { CheckedModel } from '../model.ts';
import { Backward } from './backward.ts';
import { buildModel, GraphBuilder, type Dim } from '../onnx/builder.ts';
import { classesOf, denseOutput } from '../dense.ts';
import type { TrainConfig } from '../train-config.ts';
import { LowerContext } from './context.ts';
import { IR_VERSION, modelMetadata, OPSET, PRODUCER } from './inference.ts';
import { lowerNode } from './lower.ts';
import { emitLoss, foldedTail, type LossValues } from './losses.ts';
import { emitOptimizer } from './optimizers.ts';
import { poolsBeforeActivations, trainPlan, type TrainPlan } from './train-plan.ts';

export const TRAIN_INPUTS = { input: 'input', labels: 'labels', lr: 'lr', step: 'step' } as const;
export const TRAIN_OUTPUTS = { loss: 'loss', correct: 'correct', logits: 'logits', intersection: 'intersection', union: 'union' } as const;
/** Prefix of the outputs holding updated state: `new:conv1.weight`. */
export const NEW_PREFIX = 'new:';
/** Prefix of the gradient outputs of the gradient graph: `grad:conv1.weight`, `grad:input`. */
export const GRAD_PREFIX = 'grad:';

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

