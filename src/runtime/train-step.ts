/**
 * The training-step abstraction the trainer drives. The trainer owns data order, learning-rate
 * schedule, logging, checkpoints and resuming; a TrainStepRunner owns the model: parameters,
 * buffers (batch-norm statistics) and optimizer state, and how one step is computed.
 *
 * The real runner runs the emitted training and evaluation graphs on onnxruntime; it is created by
 * `createTrainRunner` exported from src/runtime/train-runner.ts (see CreateTrainRunner below).
 */
import type { CheckedModel } from '../compiler/model.ts';
import type { SourceInput } from '../compiler/source.ts';
import type { TrainConfig } from '../compiler/train-config.ts';
import type { Device } from './session.ts';

/** One batch as the runner receives it: `count` samples, NCHW floats already normalised. */
export interface StepBatch {
  /** count * C * H * W floats (augmented for training steps, plain for evaluation). */
  x: Float32Array;
  /**
   * Class indices, count of them (a dense model's masks: count·H·W, one per pixel); int64 unless
   * the runner asks for int32 (labelType).
   */
  y: BigInt64Array | Int32Array;
  count: number;
}

/**
 * K batches of the same size, one after the other, for K steps in one call (runBlock): `count`
 * counts the samples of all K (K times the batch size), batch k's samples come k-th.
 */
export interface StepBlock extends StepBatch {
  /** K, the number of steps (batches) in the block. */
  steps: number;
}

export interface StepResult {
  /** Mean loss over the batch's samples (the trainer weights it by count). */
  loss: number;
  /** Samples (a dense model's pixels) whose prediction equals the label. */
  correct: number;
  /** Dense models: per class, pixels predicted and labelled it, and pixels predicted or labelled it. */
  intersection?: number[];
  union?: number[];
}

export interface TensorData {
  dims: number[];
  data: Float32Array;
}

/**
 * Everything needed to continue training exactly: parameters and buffers under the names the
 * inference emitter gives them (`conv1.weight`, `bn1.running_mean`, ...), so a training checkpoint
 * also loads for inference, and optimizer state under names starting with `optim.`
 * (`optim.conv1.weight.m`, ...), which inference ignores.
 */
export type TrainState = Map<string, TensorData>;

export interface TrainStepRunner {
  /**
   * When true, `run` only accepts batches of exactly the configured batch size (the graph was built
   * with a fixed batch dimension), so the trainer drops the last partial batch of each epoch.
   * `evaluate` must accept any count from 1 to the batch size either way.
   */
  readonly fixedBatch?: boolean;
  /** Label tensor type the graphs take; int64 when omitted. */
  readonly labelType?: 'int32' | 'int64';
  /** The device actually used (after `auto` resolved), for logs and checkpoint metadata. */
  readonly device?: 'cpu' | 'cuda';
  /** A notice to show the user, e.g. why `auto` fell back to CPU. */
  readonly notice?: string;

  /**
   * One optimizer step: forward, backward and update with learning rate `lr`. `step` is the 0-based
   * number of this step over the whole run (it continues across epochs and resumes), for Adam's
   * bias correction: the update uses t = step + 1. Returns the loss and correct count computed by the
   * forward pass before the update.
   */
  run(batch: StepBatch, lr: number, step: number): Promise<StepResult>;
  /**
   * Optional: block.steps steps in one call, with lrs[k] for step number step + k; the same results
   * and final state as that many calls of run. The state then crosses between the host and the
   * device once per block instead of once per step (what makes it worth having on a GPU).
   */
  runBlock?(block: StepBlock, lrs: readonly number[], step: number): Promise<StepResult[]>;
  /** Forward only, in evaluation mode (batch norm uses running statistics, dropout off); no state changes. */
  evaluate(batch: StepBatch): Promise<StepResult>;
  /** A snapshot of the complete state (copies, or arrays the runner will not modify afterwards). */
  state(): TrainState;
  /** Replaces the state with a snapshot from state(); throws on missing names or wrong dims. */
  load(state: TrainState): void;
  /** Releases sessions; optional. */
  dispose?(): Promise<void>;
}

export interface TrainRunnerOptions {
  device: Device;
  /** intraOpNumThreads for the sessions; onnxruntime's default when omitted. */
  threads?: number;
  /** The training batch size (config.batch after CLI overrides). */
  batch: number;
  /** Source file and source (the check's texts, with its imports), for node names in the graphs. */
  file?: string;
  source?: SourceInput;
}

/**
 * What src/runtime/train-runner.ts must export as `createTrainRunner`. It builds the graphs for the
 * model and config (loss, optimizer, frozen layers; parameters initialised from config.seed), creates
 * the sessions and returns a runner in its initial state.
 */
export type CreateTrainRunner = (model: CheckedModel, config: TrainConfig, opts: TrainRunnerOptions) => Promise<TrainStepRunner>;

/** The module path the CLI imports the factory from, relative to src/cli/. */
export const TRAIN_RUNNER_MODULE = '../runtime/train-runner.ts';
