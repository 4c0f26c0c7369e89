/**
 * Start-up time of the command line: `npm run bench:cli` (builds dist/ first, then runs
 * `node --import tsx bench/cli-bench.ts`).
 *
 * Each round runs, in an order that rotates from round to round: `node bin/cnnc.js --version`,
 * `node bin/cnnc.js check examples/zoo/resnet50.cnn`, `node node_modules/typescript/bin/tsc
 * --version` (the yardstick: a Node CLI that loads one large file), and the language server
 * (`node bin/cnnc.js lsp --stdio`): the time from spawning it, with `initialize` written at once,
 * to the first publishDiagnostics after didOpen of resnet50.cnn. Times are wall-clock, spawn to
 * exit, as a user waits for them. One warm-up round is not counted. Prints Markdown: medians,
 * min–max ranges and the ratio of each median to tsc's.
 *
 * Environment: CLI_BENCH_ROUNDS (default 15). `--write` also replaces the "CLI start-up" section of
 * BENCHMARKS.md (between its bench:cli markers).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  createMessageConnection,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node';
import { fmt, fmtRatio, range, stats, updateSection, type Stats } from './util.ts';

const ROUNDS = Number(process.env.CLI_BENCH_ROUNDS ?? 15);
const root = fileURLToPath(new URL('..', import.meta.url));
const RESNET = 'examples/zoo/resnet50.cnn';

/** Milliseconds from spawning `node ...args` to its exit; a failure stops the benchmark. */
function timeProcess(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status}: ${r.stderr.trim()}`);
  return ms;
}

/** Milliseconds from spawning the server (initialize sent at once) to resnet50.cnn's first diagnostics. */
async function timeLsp(): Promise<number> {
  const text = readFileSync(new URL(`../${RESNET}`, import.meta.url), 'utf8');
  const uri = 'file:///bench/resnet50.cnn';
  const t0 = performance.now();
  const proc = spawn(process.execPath, ['bin/cnnc.js', 'lsp', '--stdio'], { cwd: root, stdio: 'pipe' });
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  const published = new Promise<number>((resolve) => {
    conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
      if (p.uri === uri) resolve(performance.now() - t0);
    });
  });
  conn.listen();
  await conn.sendRequest(InitializeRequest.type, { processId: process.pid, rootUri: null, capabilities: {} });
  await conn.sendNotification(InitializedNotification.type, {});
  await conn.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'cnn', version: 1, text } });
  const ms = await published;
  await conn.sendRequest(ShutdownRequest.type);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await conn.sendNotification(ExitNotification.type);
  await exited;
  conn.dispose();
  return ms;
}

/** CPU seconds the whole machine has been busy, and this process with its waited-for children (Linux). */
function cpuSeconds(): { machine: number; ours: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const self = readFileSync('/proc/self/stat', 'utf8');
    const g = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number);
    // user nice system _ _ irq softirq steal; utime stime cutime cstime
    return { machine: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100, ours: (g[11] + g[12] + g[13] + g[14]) / 100 };
  } catch {
    return { machine: NaN, ours: NaN };
  }
}

interface Case {
  name: string;
  run: () => number | Promise<number>;
}

const CASES: Case[] = [
  { name: '`cnnc --version`', run: () => timeProcess(['bin/cnnc.js', '--version']) },
  { name: `\`cnnc check ${RESNET}\``, run: () => timeProcess(['bin/cnnc.js', 'check', RESNET]) },
  { name: '`tsc --version` (yardstick)', run: () => timeProcess(['node_modules/typescript/bin/tsc', '--version']) },
  { name: '`cnnc lsp --stdio`: spawn + initialize → first publishDiagnostics (resnet50.cnn)', run: timeLsp },
];

/**
 * ROUNDS rounds (plus one warm-up), each case once per round, the order rotating. Also returns the
 * CPU that other processes used meanwhile, in cores (0: the machine was ours).
 */
async function measure(): Promise<{ times: number[][]; others: number }> {
  const times = CASES.map(() => [] as number[]);
  let start = cpuSeconds();
  let t0 = performance.now();
  for (let round = -1; round < ROUNDS; round++) {
    if (round === 0) [start, t0] = [cpuSeconds(), performance.now()];
    for (let k = 0; k < CASES.length; k++) {
      const i = (k + Math.max(round, 0)) % CASES.length;
      const ms = await CASES[i].run();
      if (round >= 0) times[i].push(ms);
    }
  }
  const end = cpuSeconds();
  const wall = (performance.now() - t0) / 1000;
  return { times, others: Math.max(0, (end.machine - start.machine - (end.ours - start.ours)) / wall) };
}

function table(all: Stats[]): string[] {
  const tsc = all[2].median;
  return [
    '| command | median ms | range ms | median ÷ tsc --version |',
    '|---|---:|---:|---:|',
    ...CASES.map((c, i) => `| ${c.name} | ${fmt(all[i].median)} | ${range(all[i])} | ${fmtRatio(all[i].median / tsc)} |`),
  ];
}

async function main(): Promise<void> {
  const { times, others } = await measure();
  const all = times.map(stats);
  const [, check, tsc, lsp] = all;
  const out = [
    '## CLI start-up',
    '',
    `Command: \`npm run bench:cli\` (bench/cli-bench.ts; ${ROUNDS} interleaved rounds after one warm-up; wall-clock time from spawn to exit). ` +
      `${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} cores; other processes used ${fmt(others, 2)} cores on average meanwhile.`,
    '',
    ...table(all),
    '',
    `Targets: \`cnnc check\` of ResNet-50 no slower than \`tsc --version\` (median ${fmt(check.median, 2)} ms vs ${fmt(tsc.median, 2)} ms: ` +
      `${check.median <= tsc.median ? 'met' : 'not met'}); the language server's first diagnostics within 300 ms of \`initialize\` ` +
      `(median ${fmt(lsp.median)} ms, spawn included: ${lsp.median <= 300 ? 'met' : 'not met'}).`,
  ];
  console.log(out.join('\n'));
  if (process.argv.includes('--write')) {
    updateSection('BENCHMARKS.md', 'bench:cli', out.join('\n'));
    console.error('BENCHMARKS.md updated (bench:cli section)');
  }
}

await main();
