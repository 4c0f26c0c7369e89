/**
 * Language-server latency and memory: `node --import tsx bench/lsp-bench.ts`.
 *
 * Starts the real server (`node bin/cnnc.js lsp --stdio`), opens a document, and sends edits one
 * at a time in the middle of the file, alternating between two texts; for each edit it measures
 * the time from sending didChange to receiving the publishDiagnostics for that version, and the
 * server's CPU time per edit (which, unlike those latencies, other work on the machine does not
 * inflate much). Kinds of edit: a renamed layer (`relu` <-> `gelu`: shapes unchanged), a name being
 * typed (`relu` <-> `relux`: an unknown layer, the steps after it lose their shapes), a width that breaks the model
 * after it (`conv 32 1x1` <-> `conv 48 1x1`), a syntax error that stays inside the edited steps
 * (`-> relu` <-> `-> -> relu`), a stray `{` that does not (the rest of the file is parsed again,
 * the steps before the edit kept), and an unclosed `residual {` (its body ends with its line, CNN1006).
 * Files: a generated 1,000-line model and
 * examples/zoo/resnet50.cnn, with the default debounce. Then many edits on the 1,000-line file, with the server's resident
 * set size before and after. Prints Markdown.
 *
 * Environment: LSP_BENCH_EDITS (default 200), LSP_BENCH_RSS_EDITS (default 1000), LSP_BENCH_PAUSE_MS
 * (default 150: the pause before each timed edit, as between keystrokes).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  createMessageConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
  type Position,
} from 'vscode-languageserver-protocol/node';
import { layers } from '../src/compiler/model.ts';
import { check } from '../src/index.ts';

const EDITS = Number(process.env.LSP_BENCH_EDITS ?? 200);
const RSS_EDITS = Number(process.env.LSP_BENCH_RSS_EDITS ?? 1000);
/** Pause before each timed edit (ms); 0 sends edits back to back, a burst that the debounce holds back. */
const PAUSE_MS = Number(process.env.LSP_BENCH_PAUSE_MS ?? 150);
const root = fileURLToPath(new URL('..', import.meta.url));

/** A 1,000-line model: blocks, residual stages, a concat head; about 2,500 layers. */
function generated(lines = 1000): string {
  const out = [
    '# generated for bench/lsp-bench.ts',
    'block cbr(c) {',
    '  conv c 3x3 pad=same bias=off -> bn -> relu',
    '}',
    '',
    'model Generated {',
    '  input 3x64x64',
    '  conv 32 3x3 pad=same bias=off -> bn -> relu',
  ];
  let i = 0;
  while (out.length < lines - 3) {
    out.push(i % 5 === 4 ? '  -> concat { cbr(16) | conv 16 1x1 -> relu } -> conv 32 1x1 -> relu' : '  -> residual { conv 32 3x3 pad=same bias=off -> bn -> relu -> cbr(32) } -> relu');
    i++;
  }
  out.push('  -> globalavgpool -> flatten -> dense 10', '}', '');
  return out.join('\n');
}

interface Server {
  conn: MessageConnection;
  pid: number;
  waitFor(uri: string, version: number): Promise<void>;
  close(): Promise<void>;
}

async function startServer(debounceMs: number | undefined): Promise<Server> {
  const proc = spawn(process.execPath, ['bin/cnnc.js', 'lsp', '--stdio'], { cwd: root, stdio: 'pipe' });
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  const waiting = new Map<string, () => void>();
  conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
    const k = `${p.uri}@${p.version}`;
    waiting.get(k)?.();
    waiting.delete(k);
  });
  conn.listen();
  await conn.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: debounceMs === undefined ? {} : { debounceMs },
  });
  await conn.sendNotification(InitializedNotification.type, {});
  return {
    conn,
    pid: proc.pid!,
    waitFor: (uri, version) => new Promise<void>((resolve) => waiting.set(`${uri}@${version}`, resolve)),
    close: async () => {
      await conn.sendRequest(ShutdownRequest.type);
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      await conn.sendNotification(ExitNotification.type);
      await exited;
      conn.dispose();
    },
  };
}

/** A process's CPU time so far (user + system, all threads) in milliseconds; Linux's clock tick is 10 ms. */
function cpuMs(pid: number): number {
  // The fields after the command name (in parentheses, and it may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

function positionOf(text: string, offset: number): Position {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length - 1, character: before[before.length - 1].length };
}

interface EditKind {
  name: string;
  /** Where the edit goes (first match after the middle of the file) and the two texts it alternates between. */
  find: string;
  texts: [string, string];
}

const EDIT_KINDS: EditKind[] = [
  { name: 'rename a layer (relu <-> gelu)', find: 'relu', texts: ['gelu', 'relu'] },
  { name: 'type into a name (relu <-> relux)', find: 'relu', texts: ['relux', 'relu'] },
  { name: 'change a width (32 <-> 48 channels)', find: 'conv 32 1x1', texts: ['conv 48 1x1', 'conv 32 1x1'] },
  { name: 'syntax error (-> relu <-> -> -> relu)', find: '-> relu', texts: ['-> -> relu', '-> relu'] },
  { name: 'stray brace (-> relu <-> -> relu {)', find: '-> relu', texts: ['-> relu {', '-> relu'] },
  // Without an editor's auto-closing `}`: the body ends with its line (parser.ts, closeOpenBodies).
  { name: 'unclosed residual (-> relu <-> -> residual { relu)', find: '-> relu', texts: ['-> residual { relu', '-> relu'] },
];

/**
 * Opens `text`, then makes `edits` edits of one kind; returns the latency of each in milliseconds
 * and the server's CPU time per edit (its mean over the edits: /proc counts in 10 ms ticks).
 */
async function run(server: Server, uri: string, text: string, edits: number, kind: EditKind): Promise<{ times: number[]; cpuPerEdit: number }> {
  const at = text.indexOf(kind.find, Math.floor(text.length / 2));
  if (at < 0) throw new Error(`${uri}: no ${kind.find} to edit`);
  const start = positionOf(text, at);
  const opened = server.waitFor(uri, 1);
  await server.conn.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'cnn', version: 1, text } });
  await opened;
  const times: number[] = [];
  const cpuBefore = cpuMs(server.pid);
  let current = kind.find;
  for (let v = 2; v < edits + 2; v++) {
    // A person's edits come apart in time: pause as between keystrokes before the next one.
    if (PAUSE_MS > 0) await new Promise((r) => setTimeout(r, PAUSE_MS));
    const published = server.waitFor(uri, v);
    const range = { start, end: { line: start.line, character: start.character + current.length } };
    current = kind.texts[v % 2];
    const t0 = performance.now();
    await server.conn.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: v },
      contentChanges: [{ range, text: current }],
    });
    await published;
    times.push(performance.now() - t0);
  }
  return { times, cpuPerEdit: (cpuMs(server.pid) - cpuBefore) / edits };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function checkTime(text: string): number {
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    check(text);
    times.push(performance.now() - t0);
  }
  return percentile(times, 50);
}

async function main(): Promise<void> {
  const files = [
    { name: 'generated 1,000 lines', uri: 'file:///bench/generated.cnn', text: generated() },
    { name: 'examples/zoo/resnet50.cnn', uri: 'file:///bench/resnet50.cnn', text: readFileSync(new URL('../examples/zoo/resnet50.cnn', import.meta.url), 'utf8') },
  ];
  const out: string[] = [];
  out.push(`Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} threads, Node ${process.version}. ${EDITS} edits per row, ${PAUSE_MS} ms apart, default debounce (75 ms after a burst; an edit after a pause is checked at once).`, '');
  out.push('| file | lines | layers | edit | didChange → publishDiagnostics p50 | p95 | max | server CPU per edit (mean) | full check() p50 in-process |');
  out.push('|---|---:|---:|---|---:|---:|---:|---:|---:|');
  for (const f of files) {
    const result = check(f.text);
    const layerCount = result.models.reduce((n, m) => n + [...layers(m.root)].length, 0);
    const inProcess = checkTime(f.text);
    const lines = f.text.split('\n').length - (f.text.endsWith('\n') ? 1 : 0);
    for (const kind of EDIT_KINDS) {
      if (!f.text.includes(kind.find, Math.floor(f.text.length / 2))) continue;
      const server = await startServer(undefined);
      const { times, cpuPerEdit } = await run(server, f.uri, f.text, EDITS, kind);
      await server.close();
      out.push(`| ${f.name} | ${lines} | ${layerCount} | ${kind.name} | ${percentile(times, 50).toFixed(1)} ms | ${percentile(times, 95).toFixed(1)} ms | ${Math.max(...times).toFixed(1)} ms | ${cpuPerEdit.toFixed(1)} ms | ${inProcess.toFixed(1)} ms |`);
    }
  }
  // memory: many edits on the big file, debounce 0 so that every version is checked
  const server = await startServer(0);
  const big = files[0];
  await run(server, big.uri, big.text, 1, EDIT_KINDS[0]);
  const before = rssMiB(server.pid);
  await run(server, big.uri + '.rss', big.text, RSS_EDITS, EDIT_KINDS[1]);
  const after = rssMiB(server.pid);
  await server.close();
  out.push('', '| server RSS | MiB |', '|---|---:|', `| after opening the 1,000-line file | ${before.toFixed(1)} |`, `| after ${RSS_EDITS.toLocaleString('en-US')} more edits (a second document) | ${after.toFixed(1)} |`);
  console.log(out.join('\n'));
}

await main();
