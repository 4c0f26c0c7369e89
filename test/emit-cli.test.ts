/** `cnnc compile` end to end through bin/cnnc.js. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readInitializers } from '../src/compiler/onnx/builder.ts';
import { saveCheckpoint } from '../src/runtime/checkpoint.ts';

const repo = path.resolve(import.meta.dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cnnc(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin', 'cnnc.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tutorials = path.join(repo, 'examples', 'tutorials');
const example = existsSync(tutorials) ? readdirSync(tutorials).filter((f) => f.endsWith('.cnn')).sort().map((f) => path.join('examples', 'tutorials', f))[0] : undefined;

const small = `model Small {\n  input 1x8x8\n  conv 4 3x3 -> relu -> flatten -> dense 3\n}\n`;

describe('cnnc compile', () => {
  it.skipIf(!example)('compiles an example to a .onnx file and prints a summary line', () => {
    const out = path.join(dir, 'example.onnx');
    const r = cnnc('compile', example!, '-o', out);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ops, [\d,]+ trainable \+ [\d,]+ non-trainable params, [\d.]+ [KM]?B \(opset 17/);
    expect(readInitializers(readFileSync(out)).size).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('counts trainable parameters and batch-norm buffers apart, as summary does', () => {
    const src = path.join(dir, 'bn.cnn');
    writeFileSync(src, `model Bn {\n  input 1x8x8\n  conv 4 3x3 -> bn -> relu -> flatten -> dense 3\n}\n`);
    const r = cnnc('compile', src, '-o', path.join(dir, 'bn.onnx'));
    expect(r.status).toBe(0);
    // conv 4·1·3·3 + 4, bn's weight and bias (4 + 4), dense (4·6·6)·3 + 3; bn's running mean and variance.
    const [trainable, buffers] = [4 * 9 + 4 + 8 + 144 * 3 + 3, 8];
    expect(r.stdout).toContain(`, ${trainable} trainable + ${buffers} non-trainable params, `);
    const summary = cnnc('summary', src).stdout;
    expect(summary).toMatch(new RegExp(`Trainable params: +${trainable}\\b`));
    expect(summary).toMatch(new RegExp(`Non-trainable params: +${buffers}\\b`));
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const src = path.join(dir, 'small.cnn');
    writeFileSync(src, small);
    const outs = ['a', 'b', 'c'].map((n) => path.join(dir, `${n}.onnx`));
    expect(cnnc('compile', src, '-o', outs[0], '--seed', '5').status).toBe(0);
    expect(cnnc('compile', src, '-o', outs[1], '--seed', '5').status).toBe(0);
    expect(cnnc('compile', src, '-o', outs[2], '--seed', '6').status).toBe(0);
    const [a, b, c] = outs.map((o) => readFileSync(o));
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });

  it('refuses a file with errors: diagnostics, exit 1, no output file', () => {
    const src = path.join(dir, 'bad.cnn');
    writeFileSync(src, `model Bad {\n  input 3x8x8\n  conv 4 3x3 -> dense 10\n}\n`);
    const out = path.join(dir, 'bad.onnx');
    const r = cnnc('compile', src, '-o', out);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bad\.cnn:3:\d+: error/);
    expect(r.stderr).toMatch(/nothing written/);
    expect(existsSync(out)).toBe(false);
  });

  it('--weights with a mismatched shape fails naming the tensor and both shapes', async () => {
    const src = path.join(dir, 'small.cnn');
    writeFileSync(src, small);
    const ckpt = path.join(dir, 'wrong.ckpt');
    await saveCheckpoint(ckpt, { model: 'Small', tensors: new Map([['conv1.weight', { dims: [4, 1, 5, 5], data: new Float32Array(100) }]]) });
    const out = path.join(dir, 'w.onnx');
    const r = cnnc('compile', src, '-o', out, '--weights', ckpt);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cnnc: error: tensor conv1\.weight has shape 4×1×5×5 in .*wrong\.ckpt, but layer conv1 \(conv 4 3x3\) needs 4×1×3×3/);
    expect(existsSync(out)).toBe(false);
  });

  it('asks for -o and rejects a bad seed', () => {
    const src = path.join(dir, 'small.cnn');
    writeFileSync(src, small);
    expect(cnnc('compile', src).stderr).toMatch(/-o/);
    expect(cnnc('compile', src, '-o', path.join(dir, 'x.onnx'), '--seed', 'x').status).not.toBe(0);
  });
});
