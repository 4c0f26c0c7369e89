/**
 * Common mistakes with every command, through `node bin/cnnc.js` as users run it: each must end
 * with a non-zero status and one clear line naming the problem, never a Node stack trace, and must
 * leave nothing half-written where the output would have gone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { UserError } from '../src/errors.ts';
import { reportFailure } from '../src/cli/failure.ts';
import { writeIdx } from '../src/runtime/idx.ts';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'cnnc.js');
const resnet = join(root, 'examples', 'zoo', 'resnet50.cnn');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function cnnc(cwd: string, args: string[], stdin?: number): Run {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CNNC_DEBUG: '' }, stdio: [stdin ?? 'pipe', 'pipe', 'pipe'],
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Every file and folder under dir, relative to it. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

/** A temporary folder with a valid model (model.cnn), a folder (dir/) and a plain file (file.txt). */
function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cnnc-mistakes-'));
  writeFileSync(join(dir, 'model.cnn'), 'model Tiny {\n  input 1x4x4\n  flatten -> dense 2\n  train {\n    batch: 2\n    epochs: 1\n  }\n}\n');
  mkdirSync(join(dir, 'dir'));
  writeFileSync(join(dir, 'file.txt'), 'not a folder\n');
  return dir;
}

/** Four 1x4x4 images in two classes, as IDX files (train- and t10k-). */
function tinyData(dir: string): string {
  const data = join(dir, 'data');
  mkdirSync(data);
  const images = Uint8Array.from({ length: 4 * 16 }, (_, i) => (i * 37) % 256);
  for (const split of ['train', 't10k']) {
    writeIdx(join(data, `${split}-images-idx3-ubyte`), [4, 4, 4], images);
    writeIdx(join(data, `${split}-labels-idx1-ubyte`), [4], Uint8Array.from([0, 1, 0, 1]));
  }
  return data;
}

/**
 * A failure as a person should see it: status 1, a stderr naming the problem in a few lines,
 * no stack frames, no `Error:` of an uncaught exception, and nothing new in the workspace.
 */
function expectClearFailure(dir: string, args: string[], problem: RegExp, stdin?: number): Run {
  const before = tree(dir);
  const r = cnnc(dir, args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(1);
  expect(r.err).toMatch(problem);
  expect(r.err).not.toMatch(/^\s{4}at /m);
  expect(r.err).not.toMatch(/\bError:/);
  expect(r.err).not.toMatch(/internal error/);
  expect(r.err.trim().split('\n').length).toBeLessThanOrEqual(3);
  expect(tree(dir)).toEqual(before);
  return r;
}

describe('check', () => {
  it('checks every file after one that cannot be read, names each problem and counts them', () => {
    const dir = workspace();
    const r = expectClearFailure(dir, ['check', 'model.cnn', 'missing.cnn', 'dir', 'model.cnn'], /missing\.cnn: cannot read the file \(ENOENT\)/);
    expect(r.err).toMatch(/dir: is a directory, not a \.cnn file/);
    expect(r.out).toContain('4 files checked: 2 could not be read');
  });
  it('--json gives each unreadable file an error entry', () => {
    const dir = workspace();
    const r = cnnc(dir, ['check', '--json', 'missing.cnn', 'model.cnn']);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.out) as { files: { file: string; error?: string; diagnostics?: unknown[] }[] };
    expect(json.files[0]).toEqual({ file: 'missing.cnn', error: 'missing.cnn: cannot read the file (ENOENT)' });
    expect(json.files[1]).toMatchObject({ file: 'model.cnn', diagnostics: [] });
  });
  it('asks for a file, and rejects unknown flags', () => {
    const dir = workspace();
    expectClearFailure(dir, ['check'], /give at least one \.cnn file/);
    expectClearFailure(dir, ['check', '--frob', 'model.cnn'], /unknown option '--frob'/);
    expectClearFailure(dir, ['frob'], /unknown command 'frob'/);
  });
});

describe('summary', () => {
  it('missing files, folders, bad --batch and --model', () => {
    const dir = workspace();
    expectClearFailure(dir, ['summary', 'missing.cnn'], /missing\.cnn: cannot read the file \(ENOENT\)/);
    expectClearFailure(dir, ['summary', 'dir'], /dir: is a directory/);
    expectClearFailure(dir, ['summary', 'model.cnn', '--batch', '0'], /--batch 0: expected a positive whole number/);
    expectClearFailure(dir, ['summary', 'model.cnn', '--batch', 'abc'], /--batch abc: expected a positive whole number/);
    expectClearFailure(dir, ['summary', 'model.cnn', '--model', 'Nope'], /has no model "Nope" \(models: Tiny\)/);
  });
});

describe('compile', () => {
  it('-o must name a file that can be written, checked before any work', () => {
    const dir = workspace();
    expectClearFailure(dir, ['compile', 'model.cnn'], /give the output file with -o FILE\.onnx/);
    expectClearFailure(dir, ['compile', 'model.cnn', '-o', 'dir'], /dir: is a folder; -o takes a file name, e\.g\. -o dir\/model\.onnx/);
    expectClearFailure(dir, ['compile', 'model.cnn', '-o', 'new/'], /new\/: ends with \/, so it names a folder/);
    expectClearFailure(dir, ['compile', 'model.cnn', '-o', 'file.txt/model.onnx'], /file\.txt\/model\.onnx: cannot be created: file\.txt is a file, not a folder/);
    expectClearFailure(dir, ['compile', 'missing.cnn', '-o', 'm.onnx'], /missing\.cnn: cannot read the file/);
    expectClearFailure(dir, ['compile', 'model.cnn', '-o', 'm.onnx', '--seed', '-1'], /--seed -1: expected a whole number from 0 to 4294967295/);
  });
  it('--loop-steps needs --train and a positive count', () => {
    const dir = workspace();
    expectClearFailure(dir, ['compile', 'model.cnn', '-o', 'm.onnx', '--loop-steps', '4'], /--loop-steps only applies with --train/);
    expectClearFailure(dir, ['compile', 'model.cnn', '--train', '-o', 'out', '--loop-steps', '0'], /--loop-steps 0: expected a positive whole number/);
  });
  it('--train asks for a folder, and an existing file is not one', () => {
    const dir = workspace();
    expectClearFailure(dir, ['compile', 'model.cnn', '--train'], /compile --train: give the folder for the training graphs with -o DIR/);
    expectClearFailure(dir, ['compile', 'model.cnn', '--train', '-o', 'file.txt'], /file\.txt: is a file, not a folder; -o names the folder for the training graphs/);
  });
  it('still writes where it should (the checks do not refuse good paths)', () => {
    const dir = workspace();
    const r = cnnc(dir, ['compile', 'model.cnn', '-o', 'dir/sub/m.onnx']);
    expect(r.code, r.err).toBe(0);
    expect(statSync(join(dir, 'dir', 'sub', 'm.onnx')).size).toBeGreaterThan(0);
  });
});

describe('train', () => {
  it('--out that is a file, or holds a run, fails before the data loads (the data path is not even read)', () => {
    const dir = workspace();
    expectClearFailure(dir, ['train', 'model.cnn', '--data', 'no-such-data', '--out', 'file.txt'], /file\.txt: is a file, not a folder; --out names the folder/);
    mkdirSync(join(dir, 'run'));
    writeFileSync(join(dir, 'run', 'last.ckpt'), '');
    expectClearFailure(dir, ['train', 'model.cnn', '--data', 'no-such-data', '--out', 'run'], /run: already holds a training run \(last\.ckpt\); pass --resume/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', 'no-such-data', '--out', 'dir', '--resume'], /dir: --resume: no last\.ckpt to resume from/);
  });
  it('bad numbers and devices are named with their flag', () => {
    const dir = workspace();
    const data = relative(dir, tinyData(dir));
    expectClearFailure(dir, ['train', 'model.cnn', '--data', data, '--out', 'run', '--epochs', 'abc'], /--epochs abc: .*is not an integer/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', data, '--out', 'run', '--epochs', '0'], /--epochs 0: .*must be ≥ 1/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', data, '--out', 'run', '--threads', '-1'], /--threads -1: expected a positive whole number/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', data, '--out', 'run', '--limit-train', '2.5'], /--limit-train 2\.5: expected a positive whole number/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', data, '--out', 'run', '--device', 'gpu'], /--device gpu: expected cpu, cuda or auto/);
  });
  it('missing data, or a file given as the data folder', () => {
    const dir = workspace();
    expectClearFailure(dir, ['train', 'model.cnn', '--out', 'run'], /required option '--data <dir>' not specified/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', 'nope', '--out', 'run'], /nope: data directory does not exist/);
    expectClearFailure(dir, ['train', 'model.cnn', '--data', 'file.txt', '--out', 'run'], /file\.txt: .*not a directory/);
  });
});

describe('predict', () => {
  it('folders, missing inputs and missing weights are named before anything loads', () => {
    const dir = workspace();
    expectClearFailure(dir, ['predict', 'model.cnn', 'x.png'], /predict needs trained parameters: --weights CKPT/);
    expectClearFailure(dir, ['predict', 'model.cnn', '--weights', 'w.ckpt', 'dir'], /dir: is a directory; give image files \(PNG, JPEG\) or IDX files/);
    expectClearFailure(dir, ['predict', 'model.cnn', '--weights', 'w.ckpt', 'gone.png'], /gone\.png: no such file/);
    expectClearFailure(dir, ['predict', 'model.cnn', '--weights', 'w.ckpt', 'file.txt'], /w\.ckpt: cannot read the weights \(ENOENT\)/);
    expectClearFailure(dir, ['predict', 'model.cnn', '--weights', 'w.ckpt', '--top', '0', 'file.txt'], /--top 0: expected a positive whole number/);
    expectClearFailure(dir, ['predict', 'model.cnn', '--weights', 'w.ckpt', '--device', 'tpu', 'file.txt'], /--device tpu: expected cpu, cuda or auto/);
  });
});

describe('fmt', () => {
  it('missing files and folders are reported, the other files still handled', () => {
    const dir = workspace();
    copyFileSync(join(dir, 'model.cnn'), join(dir, 'b.cnn'));
    const r = expectClearFailure(dir, ['fmt', '--check', 'model.cnn', 'missing.cnn', 'dir', 'b.cnn'], /missing\.cnn: cannot read the file \(ENOENT\)/);
    expect(r.err).toMatch(/dir: is a directory/);
    expectClearFailure(dir, ['fmt', '--write', '--check', 'model.cnn'], /--write and --check cannot be used together/);
  });
  it('a folder as standard input', () => {
    const dir = workspace();
    const fd = openSync(join(dir, 'dir'), 'r');
    try {
      expectClearFailure(dir, ['fmt', '-'], /cannot read standard input \(EISDIR\)/, fd);
    } finally {
      closeSync(fd);
    }
  });
});

/** Runs cnnc with stdout piped and closes the read side, at once or after the first chunk. */
function closedPipe(args: string[], when: 'at once' | 'after the first chunk'): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CNNC_DEBUG: '' } });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    if (when === 'at once') child.stdout.destroy();
    else child.stdout.once('data', () => child.stdout.destroy());
    child.on('close', (code) => resolve({ code, out: '', err }));
  });
}

describe('a closed stdout pipe (cnnc ... | head)', () => {
  it('ends check --list-layers quietly', async () => {
    const r = await closedPipe(['check', '--list-layers'], 'at once');
    expect(r.err).toBe('');
    expect([0, 141]).toContain(r.code);
  });
  it('ends summary --json quietly after the reader has had enough', async () => {
    const r = await closedPipe(['summary', resnet, '--json'], 'after the first chunk');
    expect(r.err).toBe('');
    expect([0, 141]).toContain(r.code);
  });
});

describe('failures that escape a command', () => {
  function printed(e: unknown, debug = false): { status: number; text: string } {
    const saved = process.env.CNNC_DEBUG;
    if (debug) process.env.CNNC_DEBUG = '1';
    else delete process.env.CNNC_DEBUG;
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const status = reportFailure(e);
      return { status, text: write.mock.calls.map((c) => String(c[0])).join('') };
    } finally {
      write.mockRestore();
      if (saved === undefined) delete process.env.CNNC_DEBUG;
      else process.env.CNNC_DEBUG = saved;
    }
  }
  it('a bug prints one line and a request to report it; the stack only with CNNC_DEBUG=1', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'dims')");
    const plain = printed(bug);
    expect(plain.status).toBe(70);
    expect(plain.text).toBe("cnnc: internal error: Cannot read properties of undefined (reading 'dims')\n" +
      'cnnc: this is a bug in cnnc; please report it with the command you ran and its input files (CNNC_DEBUG=1 adds the stack trace)\n');
    const debug = printed(bug, true);
    expect(debug.text).toContain('TypeError: Cannot read properties of undefined');
    expect(debug.text).toMatch(/^\s{4}at /m);
  });
  it('a file system error with a path names the file, in one line', () => {
    const e = Object.assign(new Error("ENOSPC: no space left on device, write '/data/run/last.ckpt'"), { code: 'ENOSPC', path: '/data/run/last.ckpt' });
    expect(printed(e)).toEqual({ status: 1, text: 'cnnc: error: /data/run/last.ckpt: no space left on device (ENOSPC)\n' });
  });
  it('a UserError is its message', () => {
    expect(printed(new UserError('is a directory', 'x'))).toEqual({ status: 1, text: 'cnnc: error: x: is a directory\n' });
  });
});
