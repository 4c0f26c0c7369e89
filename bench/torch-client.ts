/**
 * Talks to bench/torch_bench.py: a long-lived /usr/bin/python3 process with PyTorch that answers
 * one JSON command per line, so benchmarks can interleave cnnc and PyTorch runs.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
export const TORCH_INSTALL_HINT = 'install Debian\'s PyTorch with: sudo apt-get install python3-torch libopenblas0-pthread';

/** Whether PYTHON can import torch; the reason when it cannot. */
export function torchAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return { ok: false, reason: `${PYTHON} cannot be run (${r.error.message})` };
  if (r.status !== 0) return { ok: false, reason: `${PYTHON} cannot import torch (${(r.stderr.trim().split('\n').pop() ?? '').trim()})` };
  return { ok: true };
}

export interface TorchInfo {
  python: string;
  torch: string;
  threads: number;
  interop_threads: number;
  openblas: boolean;
  blas_libraries: string[];
  mkldnn: boolean;
  config: string;
}

type Reply = { ok: true; [k: string]: unknown } | { ok: false; error: string; check?: boolean };

/**
 * The other end of a JsonProcess, for a worker written in TypeScript: answers each JSON command
 * line on stdin with one JSON line, until `quit` or the end of stdin. `describe` words a failure.
 */
export async function serveJsonLines(
  handle: (msg: Record<string, unknown>) => Promise<Record<string, unknown>>,
  describe: (e: Error) => string = (e) => e.message,
): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (msg.cmd === 'quit') break;
    let reply: Record<string, unknown>;
    try {
      reply = { ok: true, ...(await handle(msg)) };
    } catch (e) {
      reply = { ok: false, error: describe(e as Error) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
}

/** A child process that answers one JSON line per JSON command line ({ok: true, ...} or {ok: false, error}). */
export class JsonProcess {
  private proc: ChildProcessWithoutNullStreams;
  private pending: ((r: Reply) => void)[] = [];
  private stderr = '';
  private exited: string | null = null;

  constructor(readonly label: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const resolve = this.pending.shift();
      if (resolve) resolve(JSON.parse(line) as Reply);
    });
    this.proc.stderr.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.proc.on('exit', (code, signal) => {
      this.exited = `exited with ${signal ?? code}`;
      for (const r of this.pending.splice(0)) r({ ok: false, error: `${this.label} ${this.exited}: ${this.stderr.slice(-2000)}` });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** What the process has written to stderr so far (onnxruntime's log lines, for instance). */
  get errorOutput(): string {
    return this.stderr;
  }

  /** Sends a command; throws (loudly) on any error the Python side reports. */
  async send<T = Record<string, unknown>>(msg: Record<string, unknown>): Promise<T> {
    if (this.exited) throw new Error(`${this.label} ${this.exited}: ${this.stderr.slice(-2000)}`);
    const reply = new Promise<Reply>((resolve) => this.pending.push(resolve));
    this.proc.stdin.write(JSON.stringify(msg) + '\n');
    const r = await reply;
    if (!r.ok) throw new Error(`${this.label} ${String(msg.cmd)}${msg.id ? ` ${String(msg.id)}` : ''}: ${r.error}`);
    return r as unknown as T;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.proc.on('exit', () => resolve()));
    this.proc.stdin.write(JSON.stringify({ cmd: 'quit' }) + '\n');
    this.proc.stdin.end();
    await done;
  }
}

/** bench/torch_bench.py under /usr/bin/python3 with `threads` intra-op threads. */
export class TorchProcess extends JsonProcess {
  constructor(threads = 2) {
    const script = fileURLToPath(new URL('./torch_bench.py', import.meta.url));
    super('PyTorch', PYTHON, [script], { BENCH_THREADS: String(threads), OMP_NUM_THREADS: String(threads) });
  }

  info(): Promise<TorchInfo> {
    return this.send<TorchInfo>({ cmd: 'info' });
  }
}
