/**
 * The long fuzzing run: `npm run fuzz -- --count 100000 --seed 7`. Each input is tried in a worker
 * with a memory limit and a deadline, so an input that hangs or runs out of memory is a failure
 * like any other. Every failure is written, with its input and a minimised reproducer (for hangs
 * and crashes: the input itself), under fuzz-failures/ (or --out DIR); a summary with the time per
 * input is printed. Exit status 1 when anything failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { generator } from '../test/fuzz/generate.ts';
import { minimise, failuresOf, type Found } from '../test/fuzz/run.ts';
import type { Failure } from '../test/fuzz/properties.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'fuzz-failures' },
    slack: { type: 'string', default: '1' },
    'deadline-ms': { type: 'string', default: '4000' },
  },
});
const count = Number(values.count);
const seed = Number(values.seed);
const slack = Number(values.slack);
const deadline = Number(values['deadline-ms']);
if (![count, seed, slack, deadline].every(Number.isFinite) || !Number.isInteger(count) || count < 1) {
  console.error('fuzz: --count must be a positive integer; --seed, --slack and --deadline-ms numbers');
  process.exit(2);
}

class Runner {
  private worker = this.start();

  private start(): Worker {
    // A worker does not inherit `--import tsx`: it registers tsx itself, then loads the TypeScript.
    const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const worker = JSON.stringify(new URL('../test/fuzz/worker.ts', import.meta.url).href);
    return new Worker(`import(${tsx}).then((m) => { m.register(); return import(${worker}); })`, {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: 1024 },
    });
  }

  /** The input's failures, a hang past the deadline, or the worker's death. */
  try(text: string, inputSeed: number, incremental: boolean): Promise<{ failures: Failure[]; ms: number }> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      const done = (result: { failures: Failure[]; ms: number }, restart: boolean) => {
        clearTimeout(timer);
        this.worker.removeAllListeners('message').removeAllListeners('error').removeAllListeners('exit');
        if (restart) {
          void this.worker.terminate();
          this.worker = this.start();
        }
        resolve(result);
      };
      // 12 incremental edits are 26 more checks: an input that takes them gets that much longer.
      const limit = incremental ? 4 * deadline : deadline;
      const timer = setTimeout(() => done({ failures: [{ property: 'hang', detail: `no answer within ${limit} ms` }], ms: limit }, true), limit);
      this.worker.once('message', (m: { failures: Failure[]; ms: number }) => done(m, false));
      const died = (why: string) => done({ failures: [{ property: 'worker died', detail: why }], ms: performance.now() - t0 }, true);
      this.worker.once('error', (e) => died(String(e)));
      this.worker.once('exit', (code) => died(`exit code ${code}`));
      this.worker.postMessage({ text, seed: inputSeed, incremental, slack });
    });
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}

/** Each failure is written when found, so a long run that is stopped keeps what it found. */
function save(f: Found, i: number): void {
  mkdirSync(values.out, { recursive: true });
  const file = path.join(values.out, `${String(i).padStart(4, '0')}-${f.property.replace(/\W+/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ property: f.property, detail: f.detail, how: f.how, minimal: f.minimal, input: f.input }, null, 2) + '\n');
}

const t0 = Date.now();
const gen = generator(seed);
const runner = new Runner();
const found: Found[] = [];
const times: number[] = [];
for (let i = 0; i < count; i++) {
  const { text, how } = gen.next();
  const { failures, ms } = await runner.try(text, seed + i, i % 10 === 0);
  times.push(ms);
  for (const f of failures) {
    // Hangs and crashes are not minimised in this process: trying them again would hang it.
    const inProcess = f.property !== 'hang' && f.property !== 'worker died' && found.filter((x) => x.property === f.property).length < 5;
    const stillFails = (t: string) => failuresOf(t, seed + i, f.property.startsWith('incremental'), slack).some((g) => g.property === f.property);
    const minimal = inProcess ? minimise(text, stillFails) : text;
    const record: Found = { ...f, input: text, how: `${how}; incremental edits seeded ${seed + i}`, minimal };
    found.push(record);
    save(record, found.length - 1);
  }
  if ((i + 1) % 1000 === 0) process.stderr.write(`\r${i + 1}/${count} inputs, ${found.length} failures, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
await runner.close();
process.stderr.write('\n');

const sorted = [...times].sort((a, b) => a - b);
const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(2);
console.log(`${count} inputs, seed ${seed}, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(`time per input (every property; every 10th with 12 incremental edits): median ${at(0.5)} ms, p99 ${at(0.99)} ms, p99.9 ${at(0.999)} ms, max ${at(1)} ms`);
const byProperty = new Map<string, number>();
for (const f of found) byProperty.set(f.property, (byProperty.get(f.property) ?? 0) + 1);
for (const [property, n] of byProperty) console.log(`  ${n} × ${property}`);
if (found.length === 0) console.log('no failures');
else {
  console.log(`failures written to ${values.out}/`);
  process.exitCode = 1;
}
