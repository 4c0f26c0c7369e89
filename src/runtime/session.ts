/**
 * Creating onnxruntime-node inference sessions on CPU or CUDA.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { findOnnxruntime } from './cuda/provider.ts';

export type InferenceSession = ort.InferenceSession;
export type Device = 'cpu' | 'cuda' | 'auto';
export type Optimization = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  device?: Device;
  /** intraOpNumThreads; ORT picks a default when omitted. */
  threads?: number;
  optimization?: Optimization;
  /**
   * Whether idle intra-op threads spin waiting for work (onnxruntime's default, true). Training
   * turns it off: between steps the JavaScript thread prepares the next batch on the same cores.
   */
  spinning?: boolean;
}

export interface CreatedSession {
  session: InferenceSession;
  device: 'cpu' | 'cuda';
  /** Set when `auto` fell back to CPU, saying why. */
  notice?: string;
}

/** How to get the CUDA provider, and where to look when it is there but does not load. */
export const CUDA_INSTALL_HINT =
  'the CUDA execution provider is not installed; fix: `npx cnnc cuda install` (it fetches the provider of onnxruntime-node\'s ' +
  'ONNX Runtime from the npm registry); `npx cnnc doctor` then checks CUDA 13, cuDNN 9 and the GPU';

/**
 * Checking the files first avoids asking ORT, which logs a red native error to stderr even when the
 * failure is then handled (as under `auto`).
 */
function cudaProviderMissing(): boolean {
  const ort = findOnnxruntime();
  return ort !== undefined && existsSync(ort.binDir) && !existsSync(path.join(ort.binDir, 'libonnxruntime_providers_cuda.so'));
}

/** Whether the CUDA provider library appears to be installed (CUDA itself may still be unusable). */
export const cudaProviderInstalled = (): boolean => !cudaProviderMissing();

/** Errors that mean "CUDA EP cannot be loaded here", as opposed to a bad model. */
function isCudaLoadError(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /shared library|providers_cuda|providers_shared|cuda|cudnn|libcu/i.test(msg);
}

async function create(model: Uint8Array | string, device: 'cpu' | 'cuda', opts: SessionOptions): Promise<InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: opts.optimization ?? 'all',
    ...(opts.threads !== undefined && { intraOpNumThreads: opts.threads }),
    ...(opts.spinning === false && { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

async function createCuda(model: Uint8Array | string, opts: SessionOptions): Promise<InferenceSession> {
  if (cudaProviderMissing()) throw new UserError(`--device cuda: ${CUDA_INSTALL_HINT}`);
  try {
    return await create(model, 'cuda', opts);
  } catch (e) {
    if (!isCudaLoadError(e)) throw e;
    const why = (e as Error).message.split('\n')[0];
    throw new UserError(`--device cuda: could not load the CUDA execution provider (${why}); ONNX Runtime's log line above names the library ` +
      'that failed, and `npx cnnc doctor` shows where each one was found and how to fix what is missing');
  }
}

/** Creates a session. `cuda` never falls back silently; `auto` tries CUDA, then CPU with a notice. */
export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<CreatedSession> {
  const device = opts.device ?? 'cpu';
  if (device === 'cpu') return { session: await create(model, 'cpu', opts), device: 'cpu' };
  if (device === 'cuda') return { session: await createCuda(model, opts), device: 'cuda' };
  try {
    return { session: await createCuda(model, opts), device: 'cuda' };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    const notice = `CUDA is not available, running on CPU: ${e.message.replace(/^--device cuda: /, '')}`;
    return { session: await create(model, 'cpu', opts), device: 'cpu', notice };
  }
}

export type Feeds = Record<string, ort.Tensor>;

/** A float32 tensor for a feed. */
export const floatTensor = (data: Float32Array, dims: readonly number[]): ort.Tensor => new ort.Tensor('float32', data, dims);

/** Runs a session and returns the outputs as {data, dims} with plain arrays of dims. */
export async function runSession(session: InferenceSession, feeds: Feeds): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const results = await session.run(feeds);
  const out: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const [name, t] of Object.entries(results)) out[name] = { data: t.data as Float32Array, dims: [...t.dims] };
  return out;
}
