/** The long run's worker: tries one input per message, so a hang or a crash costs only the worker. */
import { parentPort } from 'node:worker_threads';
import { failuresOf } from './run.ts';

parentPort!.on('message', (m: { text: string; seed: number; incremental: boolean; slack: number }) => {
  const t0 = performance.now();
  const failures = failuresOf(m.text, m.seed, m.incremental, m.slack);
  parentPort!.postMessage({ failures, ms: performance.now() - t0 });
});
