/**
 * The real TrainStepRunner: runs the emitted training-step and evaluation graphs (plain ONNX, see
 * src/compiler/emit/train.ts) on onnxruntime-node sessions. Parameters, buffers and optimizer state
 * stay ORT tensors between steps: each step's `new:NAME` outputs are fed back as the next step's
 * inputs, without copies on the JavaScript side.
 */
import * as ort from 'onnxruntime-node';
import { formatShape } from '../compiler/layers/types.ts';
import type { CheckedModel } from '../compiler/model.ts';
import type { TrainConfig } from '../compiler/train-config.ts';
import {
  emitEval, emitTrainLoop, emitTrainStep, initialState, labelDims, NEW_PREFIX, trainPlan, TRAIN_INPUTS, TRAIN_OUTPUTS, type GraphOptions, type TrainPlan,
} from '../compiler/emit/train.ts';
import { UserError } from '../errors.ts';
import { createSession, type SessionOptions } from './session.ts';
import type { CreateTrainRunner, StepBatch, StepBlock, StepResult, TensorData, TrainRunnerOptions, TrainState, TrainStepRunner } from './train-step.ts';

const scalarFloat = (v: number) => new ort.Tensor('float32', Float32Array.of(v), []);
const scalarInt = (v: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(v)), []);
const toNumber = (v: number | bigint) => Number(v);

function labelsTensor(y: StepBatch['y'], dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', y instanceof BigInt64Array ? y : BigInt64Array.from(y, (v) => BigInt(v)), dims);
}

/** Step k's loss and correct count, and a dense model's IoU counts, from outputs holding `steps` steps. */
function results(out: ort.InferenceSession.OnnxValueMapType, steps: number): StepResult[] {
  const loss = out[TRAIN_OUTPUTS.loss].data as Float32Array, correct = out[TRAIN_OUTPUTS.correct].data as BigInt64Array;
  const counts = (name: string, k: number) => {
    const t = out[name];
    if (!t) return undefined;
    const per = (t.data as BigInt64Array).length / steps;
    return Array.from((t.data as BigInt64Array).subarray(k * per, (k + 1) * per), toNumber);
  };
  return Array.from({ length: steps }, (_, k) => ({
    loss: loss[k], correct: toNumber(correct[k]),
    ...(out[TRAIN_OUTPUTS.intersection] && { intersection: counts(TRAIN_OUTPUTS.intersection, k), union: counts(TRAIN_OUTPUTS.union, k) }),
  }));
}

export interface OrtRunnerOptions extends TrainRunnerOptions {
  /** Initial values by name (a pretrained file); the rest initialised as `cnnc compile` does. */
  init?: ReadonlyMap<string, TensorData>;
  /** Build the K-step Loop graph (for runBlock) now rather than on runBlock's first call. */
  loop?: boolean;
  /** Let idle onnxruntime threads spin (default false: the trainer prepares batches meanwhile). */
  spinning?: boolean;
}

export class OrtTrainRunner implements TrainStepRunner {
  readonly fixedBatch = false;
  readonly labelType = 'int64' as const;
  private readonly values = new Map<string, ort.Tensor>();
  /** Names fed back after each step (`new:NAME` -> NAME). */
  private readonly updated: string[];
  /** The labels' dimensions after the batch (a dense model's mask). */
  private readonly labelDims: number[];

  private constructor(
    readonly plan: TrainPlan,
    private readonly step: ort.InferenceSession,
    private readonly evalSession: ort.InferenceSession,
    private loop: ort.InferenceSession | undefined,
    readonly device: 'cpu' | 'cuda',
    readonly notice: string | undefined,
    /** For the Loop session made on runBlock's first call. */
    private readonly graphOpts: GraphOptions,
    private readonly sessionOpts: SessionOptions,
  ) {
    this.updated = plan.state.filter((e) => e.updated).map((e) => e.name);
    this.labelDims = labelDims(plan.model);
  }

  static async create(model: CheckedModel, config: TrainConfig, opts: OrtRunnerOptions): Promise<OrtTrainRunner> {
    const plan = trainPlan(model, config);
    if (!plan.state.some((e) => e.kind === 'param' && e.updated)) {
      throw new UserError(`model ${model.name} has no trainable parameters (all frozen or none); there is nothing to train`);
    }
    const graphOpts = { file: opts.file, source: opts.source };
    const sessionOpts = { device: opts.device, threads: opts.threads, spinning: opts.spinning ?? false };
    const step = await createSession(emitTrainStep(plan, graphOpts), sessionOpts);
    // The evaluation and loop sessions run where the step session runs (auto resolved once).
    const resolved = { ...sessionOpts, device: step.device };
    const evalSession = await createSession(emitEval(plan, graphOpts), resolved);
    const loop = opts.loop ? await createSession(emitTrainLoop(plan, graphOpts), resolved) : undefined;
    const runner = new OrtTrainRunner(plan, step.session, evalSession.session, loop?.session, step.device, step.notice, graphOpts, resolved);
    const state = initialState(plan);
    if (opts.init) for (const [name, t] of opts.init) if (state.has(name)) state.set(name, t);
    runner.load(state);
    return runner;
  }

  private feeds(kinds: ReadonlySet<string>): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const e of this.plan.state) if (kinds.has(e.kind)) feeds[e.name] = this.values.get(e.name)!;
    return feeds;
  }

  private inputTensor(x: Float32Array, lead: number[]): ort.Tensor {
    return new ort.Tensor('float32', x, [...lead, ...this.plan.model.input]);
  }

  async run(batch: StepBatch, lr: number, step: number): Promise<StepResult> {
    const feeds = this.feeds(ALL);
    feeds[TRAIN_INPUTS.input] = this.inputTensor(batch.x, [batch.count]);
    feeds[TRAIN_INPUTS.labels] = labelsTensor(batch.y, [batch.count, ...this.labelDims]);
    feeds[TRAIN_INPUTS.lr] = scalarFloat(lr);
    feeds[TRAIN_INPUTS.step] = scalarInt(step);
    const out = await this.step.run(feeds);
    for (const name of this.updated) this.values.set(name, out[NEW_PREFIX + name]);
    return results(out, 1)[0];
  }

  /**
   * K steps in one call of the Loop graph (K = block.steps): lrs[k] and step numbers step,
   * step + 1, ...; the same result as K calls of run. The Loop session is made on the first call
   * unless the runner was created with `loop`.
   */
  async runBlock(block: StepBlock, lrs: readonly number[], step: number): Promise<StepResult[]> {
    const k = block.steps, count = block.count / k;
    if (!Number.isInteger(count) || lrs.length !== k) throw new Error('runBlock: a block of K equal batches and one lr per batch');
    this.loop ??= (await createSession(emitTrainLoop(this.plan, this.graphOpts), this.sessionOpts)).session;
    const feeds = this.feeds(ALL);
    feeds[TRAIN_INPUTS.input] = this.inputTensor(block.x, [k, count]);
    feeds[TRAIN_INPUTS.labels] = labelsTensor(block.y, [k, count, ...this.labelDims]);
    feeds[TRAIN_INPUTS.lr] = new ort.Tensor('float32', Float32Array.from(lrs), [k]);
    feeds[TRAIN_INPUTS.step] = scalarInt(step);
    const out = await this.loop.run(feeds);
    for (const name of this.updated) this.values.set(name, out[NEW_PREFIX + name]);
    return results(out, k);
  }

  async evaluate(batch: StepBatch): Promise<StepResult> {
    const { logits: _, ...r } = await this.evaluateWithLogits(batch);
    return r;
  }

  /** evaluate, with the model's outputs. */
  async evaluateWithLogits(batch: StepBatch): Promise<StepResult & { logits: Float32Array }> {
    const feeds = this.feeds(MODEL);
    feeds[TRAIN_INPUTS.input] = this.inputTensor(batch.x, [batch.count]);
    feeds[TRAIN_INPUTS.labels] = labelsTensor(batch.y, [batch.count, ...this.labelDims]);
    const out = await this.evalSession.run(feeds);
    return { ...results(out, 1)[0], logits: out[TRAIN_OUTPUTS.logits].data as Float32Array };
  }

  state(): TrainState {
    const out: TrainState = new Map();
    for (const e of this.plan.state) out.set(e.name, { dims: [...e.dims], data: (this.values.get(e.name)!.data as Float32Array).slice() });
    return out;
  }

  load(state: TrainState): void {
    const next = new Map<string, ort.Tensor>();
    for (const e of this.plan.state) {
      const t = state.get(e.name);
      if (!t) throw new UserError(`the state has no tensor ${e.name} (${formatShape(e.dims)})`);
      if (t.dims.length !== e.dims.length || t.dims.some((d, i) => d !== e.dims[i])) {
        throw new UserError(`tensor ${e.name} has shape ${formatShape(t.dims)}, but the model needs ${formatShape(e.dims)}`);
      }
      next.set(e.name, new ort.Tensor('float32', t.data.slice(), e.dims));
    }
    for (const [k, v] of next) this.values.set(k, v);
  }

  async dispose(): Promise<void> {
    await this.step.release();
    await this.evalSession.release();
    await this.loop?.release();
  }
}

const ALL: ReadonlySet<string> = new Set(['param', 'buffer', 'optim']);
const MODEL: ReadonlySet<string> = new Set(['param', 'buffer']);

/** The factory the trainer and `cnnc train` use (see train-step.ts). */
export const createTrainRunner: CreateTrainRunner = (model, config, opts) => OrtTrainRunner.create(model, config, opts);
