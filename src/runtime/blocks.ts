/**
 * Training in blocks of K steps per call (the runner's runBlock, the K-step Loop graph): how many
 * steps a call takes, the blocks an epoch's batches make, and what a device out of memory tells
 * the user.
 *
 * Why blocks: one training-step call feeds every parameter and optimizer tensor in and gets the new
 * ones out. On CUDA, onnxruntime-node hands every output back in host memory (its binding can bind
 * outputs to WebGPU buffers only, not to CUDA memory), so single steps copy the whole state to the
 * device and back each step (about 300 MB each way for ResNet-50 with Adam). A block copies it once
 * per K steps; only the K batches are new data.
 */
import { UserError } from '../errors.ts';
import type { Batch } from './dataset.ts';
import type { StepBlock } from './train-step.ts';

/** What --steps-per-call asks for: a number of steps, or `auto` (chosen from memory). */
export type StepsPerCall = number | 'auto';

/** `auto` never takes more steps per call, so the progress line and Ctrl-C stay responsive. */
export const AUTO_MAX_STEPS = 32;
/** The input budget of a block when the device's free memory is unknown. */
export const FALLBACK_BLOCK_BYTES = 256 * 2 ** 20;
/** A block is built in host memory (with the next one prefetched beside it): it stays under this. */
export const MAX_BLOCK_BYTES = 2 ** 30;

export interface BlockChoice {
  /** Steps per call; 1 means single steps (run), more means blocks (runBlock). */
  steps: number;
  /** Why, for the run's header line (absent for single steps nobody asked to change). */
  reason?: string;
}

export interface BlockInputs {
  /** --steps-per-call; undefined: auto on CUDA, single steps on the CPU. */
  requested?: StepsPerCall;
  device: 'cpu' | 'cuda';
  /** Bytes one training batch takes as input (images and labels). */
  batchBytes: number;
  /** Free device memory in bytes, when known (nvidia-smi). */
  freeDeviceBytes?: number;
  /** Whether the runner can run blocks at all. */
  canBlock: boolean;
}

const mb = (bytes: number) => (bytes >= 2 ** 20 ? `${Math.round(bytes / 2 ** 20)} MB` : `${Math.max(1, Math.round(bytes / 1024))} kB`);

/**
 * Steps per call. `auto` fills an input budget: 1/8 of the device's free memory when known, else
 * 256 MB, and never more than 1 GB (the block lives in host memory too), capped at 32 steps.
 */
export function chooseStepsPerCall(x: BlockInputs): BlockChoice {
  const requested = x.requested ?? (x.device === 'cuda' ? 'auto' : 1);
  if (!x.canBlock) return { steps: 1, reason: requested === 1 ? undefined : 'single steps: this runner has no block mode' };
  if (requested !== 'auto') return { steps: requested, reason: requested === 1 ? undefined : `${requested} steps per call (--steps-per-call)` };
  const budget = Math.min(MAX_BLOCK_BYTES, x.freeDeviceBytes !== undefined ? x.freeDeviceBytes / 8 : FALLBACK_BLOCK_BYTES);
  const steps = Math.max(1, Math.min(AUTO_MAX_STEPS, Math.floor(budget / x.batchBytes)));
  const from = x.freeDeviceBytes !== undefined ? `1/8 of the ${mb(x.freeDeviceBytes)} free on the GPU, at most ${mb(MAX_BLOCK_BYTES)}` : `${mb(FALLBACK_BLOCK_BYTES)}, the GPU's free memory being unknown`;
  return { steps, reason: `${steps} steps per call (input blocks of ${mb(steps * x.batchBytes)}; budget ${from})` };
}

/** Bytes of one batch of `count` samples of `perSample` floats and their int64 (or int32) labels. */
export const batchBytes = (count: number, perSample: number, labelBytes: number): number => count * (perSample * 4 + labelBytes);

/** A run of batches as one block; a single batch is passed on as it is, without a copy. */
export function stackBatches(group: readonly Pick<Batch, 'x' | 'y' | 'count'>[]): StepBlock {
  if (group.length === 1) return { x: group[0].x, y: group[0].y, count: group[0].count, steps: 1 };
  const per = group[0].x.length, count = group[0].count, labels = group[0].y.length; // labels: count, or count masks
  const x = new Float32Array(group.length * per);
  const y = group[0].y instanceof BigInt64Array ? new BigInt64Array(group.length * labels) : new Int32Array(group.length * labels);
  group.forEach((b, i) => {
    x.set(b.x, i * per);
    (y as Int32Array).set(b.y as Int32Array, i * labels); // both arrays have the same element type
  });
  return { x, y, count: group.length * count, steps: group.length };
}

/** A block and where it starts in its epoch. */
export interface EpochBlock extends StepBlock {
  /** The epoch's index of the block's first batch. */
  first: number;
  /** Samples per step (all steps of a block have the same). */
  perStep: number;
}

/**
 * The epoch's batches in blocks of up to `steps`: consecutive batches of one size, so the epoch's
 * last, partial batch is a block of its own. An epoch's end is always a block's end: evaluation
 * and checkpoints fall between blocks.
 */
export function* epochBlocks(source: Iterable<Batch>, steps: number): Generator<EpochBlock> {
  let group: Batch[] = [];
  const flush = (): EpochBlock => {
    const block = { ...stackBatches(group), first: group[0].index, perStep: group[0].count };
    group = [];
    return block;
  };
  for (const b of source) {
    if (group.length && (group.length === steps || b.count !== group[0].count)) yield flush();
    group.push(b);
  }
  if (group.length) yield flush();
}

// ---------------------------------------------------------------------------------------------
// Out of memory

/** What ONNX Runtime's CUDA provider, cuDNN and cuBLAS say when an allocation fails. */
const OOM = /out of memory|failed to allocate memory|CU(?:DNN|BLAS)_STATUS_(?:INTERNAL_ERROR_(?:HOST|DEVICE)_)?ALLOC(?:ATION)?_FAILED|cudaErrorMemoryAllocation/i;

export const isOutOfMemory = (e: unknown): boolean => OOM.test(e instanceof Error ? e.message : String(e));

export interface OomContext {
  device: 'cpu' | 'cuda';
  /** 'training step 12' or 'evaluation'. */
  where: string;
  batch: number;
  /** Steps of the call that failed. */
  stepsPerCall: number;
  /** The last checkpoint written, if any; an error leaves it as it was. */
  checkpoint?: string;
}

/** The node ONNX Runtime names and its allocation failure, in a few words. */
function oomDetail(message: string): string {
  const node = /running (\w+) node\. Name:'([^']*)'/.exec(message);
  const what = OOM.exec(message)![0];
  const size = /buffer of size (\d+)/.exec(message);
  const bytes = size ? ` (${mb(Number(size[1]))} requested)` : '';
  return `${what}${bytes}${node ? ` in ${node[1]} node '${node[2]}'` : ''}`;
}

/**
 * A device out of memory as one line: what happened, what to try, and that the last checkpoint
 * is intact; undefined for any other error.
 */
export function outOfMemoryError(e: unknown, c: OomContext): UserError | undefined {
  if (!isOutOfMemory(e)) return undefined;
  const memory = c.device === 'cuda' ? 'the GPU ran out of memory' : 'memory ran out';
  const tries = [`a smaller --batch than ${c.batch}`];
  if (c.stepsPerCall > 1) tries.push(`fewer steps per call (--steps-per-call ${Math.max(1, Math.floor(c.stepsPerCall / 2))}; it was ${c.stepsPerCall})`);
  const kept = c.checkpoint ? `${c.checkpoint} is intact (continue with --resume)` : 'no checkpoint had been written yet';
  return new UserError(`${memory} in ${c.where} (ONNX Runtime: ${oomDetail(e instanceof Error ? e.message : String(e))}); try ${tries.join(' or ')}; ${kept}`);
}
