/** The CLI as users run it: exit codes, output formats, the summary table. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript (bin/ runs before any build), without type declarations
import { staleReason } from '../bin/build-state.js';
import { expectGolden } from './helpers/golden.ts';

const root = join(import.meta.dirname, '..');
const fixtures = join(root, 'test', 'fixtures');

function cnnc(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'cnnc.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('cnnc check', () => {
  it('prints file:line:col, the source line and a caret underline; exit 1 on errors', () => {
    const r = cnnc('check', 'test/fixtures/diagnostics/dense_not_flat.cnn');
    expect(r.code).toBe(1);
    expect(r.out).toContain('test/fixtures/diagnostics/dense_not_flat.cnn:3:39: error CNN3002: dense needs a flat vector but gets a 32×13×13 tensor');
    expect(r.out).toContain('   3 |   conv 32 3x3 -> relu -> maxpool 2 -> dense 10');
    expect(r.out).toMatch(/\| {39}\^{8}/);
    expect(r.out).toContain('hint: insert flatten before dense');
    expect(r.out).not.toContain('\x1b['); // no colours when not a TTY
  });
  it('exit 0 for warnings only and clean files', () => {
    expect(cnnc('check', 'test/fixtures/diagnostics/drops_rows.cnn').code).toBe(0);
    expect(cnnc('check', 'test/fixtures/summary/branches.cnn').code).toBe(0);
  });
  it('checks several files and prints JSON', () => {
    const r = cnnc('check', '--json', 'test/fixtures/diagnostics/groups.cnn', 'test/fixtures/summary/branches.cnn');
    expect(r.code).toBe(1);
    const json = JSON.parse(r.out);
    expect(json.files).toHaveLength(2);
    expect(json.files[0].diagnostics[0]).toMatchObject({ code: 'CNN3006', severity: 'error', range: { start: { line: 3, column: 15 } } });
    expect(json.files[1].diagnostics).toEqual([]);
  });
  it('a missing file is a clear error, not a stack trace', () => {
    const r = cnnc('check', 'no/such/file.cnn');
    expect(r.code).toBe(1);
    expect(r.err).toContain('no/such/file.cnn: cannot read the file (ENOENT)');
    expect(r.err).not.toContain('    at ');
  });
  it('binary junk ends with diagnostics', () => {
    const r = cnnc('check', 'test/fixtures/diagnostics/junk.cnn');
    expect(r.code).toBe(1);
    expect(r.out).toContain('CNN1001');
  });
});

describe('cnnc summary', () => {
  for (const f of readdirSync(join(fixtures, 'summary')).filter((x) => x.endsWith('.cnn'))) {
    it(`table for ${f}`, () => {
      const r = cnnc('summary', `test/fixtures/summary/${f}`);
      expectGolden(join(fixtures, 'summary', f.replace(/\.cnn$/, '.summary.txt')), r.out);
    });
  }
  it('marks the failing row and still shows every row before it', () => {
    const r = cnnc('summary', 'test/fixtures/summary/partial.cnn');
    expect(r.code).toBe(1);
    const lines = r.out.split('\n');
    const failing = lines.findIndex((l) => l.startsWith('dense 10'));
    expect(lines[failing + 1]).toContain('✗ CNN3002');
    expect(lines.slice(0, failing).some((l) => l.startsWith('conv 8 3x3') && l.includes('8×5×5'))).toBe(true);
    expect(r.out).toContain('2 more rows not inferred after the error');
  });
  it('JSON has models with params, macs and layers', () => {
    const r = cnnc('summary', '--json', 'examples/zoo/resnet18.cnn');
    expect(r.code).toBe(0);
    const m = JSON.parse(r.out).models[0];
    expect(m).toMatchObject({ name: 'ResNet18', input: [3, 224, 224], output: [1000], params: { trainable: 11_689_512, nonTrainable: 9_600 } });
    expect(m.macs / 1e9).toBeCloseTo(1.81, 2);
    expect(m.layers.length).toBeGreaterThan(50);
    expect(m.layers[0]).toMatchObject({ layer: 'conv 64 7x7 stride=2 pad=3 bias=off', output: [64, 112, 112], params: 9408, rf: { size: [7, 7], jump: [2, 2], global: false } });
  });
  it('--model picks a model and names the choices when it is missing', () => {
    const r = cnnc('summary', 'test/fixtures/diagnostics/overflow.cnn', '--model', 'nope');
    expect(r.code).toBe(1);
    expect(r.err).toContain('has no model "nope" (models: huge_tensor, huge_params)');
  });
});

describe('cnnc compile', () => {
  it('creates the output folder when it does not exist yet', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'cnnc-cli-')), 'new', 'dir', 'model.onnx');
    const r = cnnc('compile', 'test/fixtures/summary/branches.cnn', '-o', out);
    expect(r.code).toBe(0);
    expect(existsSync(out)).toBe(true);
  });
});

describe('help and version', () => {
  it('--version', () => {
    expect(cnnc('--version').out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
  it('--help lists the verbs', () => {
    const out = cnnc('--help').out;
    for (const verb of ['check', 'summary']) expect(out).toContain(verb);
  });
});

describe('start-up', () => {
  /** The packages (node_modules/NAME) that `cnnc ...args` loaded through require, CommonJS or from ESM. */
  function packagesLoaded(args: string[], status = 0): string[] {
    const dir = mkdtempSync(join(tmpdir(), 'cnnc-load-'));
    const hook = join(dir, 'hook.cjs');
    const log = join(dir, 'loaded.txt');
    // onnxruntime-node, sharp and vscode-languageserver are CommonJS, so Module._load sees them.
    writeFileSync(hook, `const M = require('node:module'); const fs = require('node:fs'); const seen = new Set();
const load = M._load; M._load = function (request, ...rest) { seen.add(request); return load.call(this, request, ...rest); };
process.on('exit', () => fs.writeFileSync(${JSON.stringify(log)}, [...seen].join('\\n')));\n`);
    const r = spawnSync(process.execPath, ['--require', hook, join(root, 'bin', 'cnnc.js'), ...args], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(status);
    return readFileSync(log, 'utf8').split('\n');
  }
  it('check and summary load neither ONNX Runtime, sharp nor the language server', () => {
    for (const args of [['check', 'examples/zoo/resnet50.cnn'], ['summary', 'examples/zoo/resnet50.cnn'], ['--version']]) {
      const loaded = packagesLoaded(args).join(' ');
      expect(loaded).not.toMatch(/onnxruntime|sharp|vscode-languageserver/);
    }
  });
  it('the hook sees them where they are used', () => {
    // stdin ends at once: the server exits 1, as without a shutdown request.
    expect(packagesLoaded(['lsp', '--stdio'], 1).join(' ')).toMatch(/vscode-languageserver/);
  });
});

describe('dist/ freshness (bin/build-state.js)', () => {
  function fakeRoot(): string {
    const dir = mkdtempSync(join(tmpdir(), 'cnnc-stale-'));
    mkdirSync(join(dir, 'src', 'cli'), { recursive: true });
    mkdirSync(join(dir, 'dist'));
    for (const f of ['src/cli/main.ts', 'tsconfig.json', 'tsconfig.build.json']) writeFileSync(join(dir, f), '');
    const old = new Date(Date.now() - 60_000);
    for (const f of ['src/cli/main.ts', 'tsconfig.json', 'tsconfig.build.json']) utimesSync(join(dir, f), old, old);
    return dir;
  }
  it('a missing build, a source newer than the build, and a current build', () => {
    const dir = fakeRoot();
    expect(staleReason(dir)).toBe('dist/ has not been built');
    writeFileSync(join(dir, 'dist', '.build-stamp'), '');
    expect(staleReason(dir)).toBeUndefined();
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'src', 'cli', 'main.ts'), later, later);
    expect(staleReason(dir)).toBe('src/cli/main.ts changed after dist/ was built');
  });
});
