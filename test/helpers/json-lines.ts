/** A child process that answers one JSON line per JSON command line (test/helpers/torch_export.py). */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export type Reply = { ok: true; [key: string]: unknown } | { ok: false; error: string };

export class JsonLines {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly pending: ((r: Reply) => void)[] = [];
  private stderr = '';

  constructor(command: string, args: string[]) {
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.pending.shift()?.(JSON.parse(line) as Reply));
    this.proc.stderr.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.proc.on('exit', (code, signal) => {
      for (const resolve of this.pending.splice(0)) resolve({ ok: false, error: `${command} exited with ${signal ?? code}: ${this.stderr.slice(-2000)}` });
    });
  }

  /** Sends one command and waits for its reply. */
  send(msg: Record<string, unknown>): Promise<Reply> {
    const reply = new Promise<Reply>((resolve) => this.pending.push(resolve));
    this.proc.stdin.write(JSON.stringify(msg) + '\n');
    return reply;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      this.proc.stdin.end();
    });
  }
}
