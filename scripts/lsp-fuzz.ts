/**
 * The long language-server fuzzing run: `npm run fuzz:lsp -- --count 20000 --seed 7`. Prints the
 * report (answers by kind, memory, answer times per method) as JSON; exit status 1 when anything
 * failed. The short run is test/lsp-fuzz.test.ts.
 */
import { parseArgs } from 'node:util';
import { runLspFuzz } from './lsp-fuzz-driver.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '20000' },
  },
});
const count = Number(values.count);
const seed = Number(values.seed);
const requestTimeoutMs = Number(values.timeout);
if (!Number.isInteger(count) || count < 0 || !Number.isInteger(seed) || !(requestTimeoutMs > 0)) {
  console.error('fuzz:lsp: --count must be a non-negative integer, --seed an integer, --timeout a positive number of ms');
  process.exit(2);
}

const t0 = Date.now();
const report = await runLspFuzz({
  count, seed, requestTimeoutMs,
  onScenario: (name) => process.stderr.write(`${name}\n`),
  onProgress: (done) => {
    if (done % 250 === 0) process.stderr.write(`\r${done}/${count} actions, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  },
});
process.stderr.write('\n');
console.log(JSON.stringify(report, null, 2));
process.exit(report.failures.length ? 1 : 0);
