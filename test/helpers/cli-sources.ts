/**
 * Runs the CLI from the sources (what is under test, whatever the state of dist/), at most two
 * commands at a time per test file: CI machines have 2 cores.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
let running = 0;
const waiting: (() => void)[] = [];

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 2) await new Promise<void>((r) => waiting.push(r));
  running++;
  try { return await fn(); } finally { running--; waiting.shift()?.(); }
}

export function cnncFromSources(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return slot(() => new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 },
      (error, stdout, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
  }));
}
