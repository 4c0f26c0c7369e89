/** onnxruntime session options shared by the benchmarks: the settings compared against PyTorch. */
import type * as ort from 'onnxruntime-node';

export const THREADS = 2;

/** 2 intra-op threads, 1 inter-op, sequential, all graph optimisations; BENCH_ORT_SPINNING=0 stops intra-op spinning. */
export function ortOptions(): ort.InferenceSession.SessionOptions {
  const spinning = process.env.BENCH_ORT_SPINNING ?? '1';
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: spinning } } },
  };
}
