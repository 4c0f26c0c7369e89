/**
 * The GPU benchmark's plumbing, on the CPU: cutting streams into load folders (bench/gpu/pack.ts),
 * joining and unpacking them with Python alone (bench/gpu/unpack.py), and reading onnxruntime's
 * node placement log (bench/bench-gpu.ts). The whole benchmark on the CPU
 * (`bash bench/gpu/run.sh OUT --device cpu --quick --tiny`, after `npm run bench:gpu:pack -- --no-cuda`)
 * takes about half a minute and two cores; BENCHMARKS.md describes that check.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePlacement } from '../bench/bench-gpu.ts';
import { planParts, writeLoads } from '../bench/gpu/pack.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cnnc-gpu-pack-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const unpack = (pack: string) => spawnSync('/usr/bin/python3', ['bench/gpu/unpack.py', pack], { encoding: 'utf8' });

describe('packing for the GPU machine', () => {
  it('cuts streams into parts that fill load folders in order, none over the limit', () => {
    const parts = planParts([{ name: 'base', bytes: 25 }, { name: 'lib', bytes: 30 }], 10);
    expect(parts.map((p) => [p.stream, p.load, p.offset, p.bytes])).toEqual([
      ['base', 1, 0, 10], ['base', 2, 10, 10], ['base', 3, 20, 5], ['lib', 3, 0, 5], ['lib', 4, 5, 10], ['lib', 5, 15, 10], ['lib', 6, 25, 5],
    ]);
  });

  it('unpack.py joins the parts, checks them, extracts the tar and decompresses the library; once', async () => {
    const src = tempDir(), out = join(tempDir(), 'gpu-pack');
    mkdirSync(join(src, 'app', 'lib'), { recursive: true });
    writeFileSync(join(src, 'node'), '#!/bin/sh\necho fake node\n');
    writeFileSync(join(src, 'app', 'data.bin'), randomBytes(300_000)); // incompressible: the streams stay large
    writeFileSync(join(src, 'provider.so'), randomBytes(200_000));
    for (const [cmd, args] of [['tar', ['-C', src, '-cJf', join(src, 'base.tar.xz'), 'node', 'app']], ['xz', ['-k', join(src, 'provider.so')]]] as const) {
      expect(spawnSync(cmd, args).status).toBe(0);
    }
    // Load folders of 0.2 MiB: both streams are cut, the library's first part shares a folder with the tar's last.
    const manifest = await writeLoads({ out, partMib: 0.2, cuda: true, level: 1 }, [
      { name: 'base.tar.xz', file: join(src, 'base.tar.xz'), what: 'tar.xz' },
      { name: 'provider.so.xz', file: join(src, 'provider.so.xz'), what: 'xz', into: 'app/lib/provider.so' },
    ], { format: 'cnnc-gpu-pack/1', created: 'now', node: 'v0', onnxruntime: '0', provider: 'test', commit: 'test' });
    expect(manifest.streams.map((s) => s.parts.length).every((n) => n >= 2)).toBe(true);
    for (const l of manifest.loads) {
      const bytes = readdirSync(join(out, l.dir)).reduce((a, f) => a + statSync(join(out, l.dir, f)).size, 0);
      expect(bytes).toBeLessThanOrEqual(0.2 * 2 ** 20);
      expect(readFileSync(join(out, l.dir, 'manifest.json'), 'utf8')).toBe(JSON.stringify(manifest, null, 1) + '\n');
    }

    const r = unpack(out);
    expect(r.stderr).toBe('');
    const run = r.stdout.trim();
    expect(run).toBe(join(out, 'run'));
    expect(readFileSync(join(run, 'app', 'data.bin')).equals(readFileSync(join(src, 'app', 'data.bin')))).toBe(true);
    expect(readFileSync(join(run, 'app', 'lib', 'provider.so')).equals(readFileSync(join(src, 'provider.so')))).toBe(true);
    expect(statSync(join(run, 'node')).mode & 0o111).toBeTruthy();
    // Unpacked from the same manifest: left alone.
    writeFileSync(join(run, 'app', 'mark'), 'kept');
    expect(unpack(out).status).toBe(0);
    expect(readFileSync(join(run, 'app', 'mark'), 'utf8')).toBe('kept');

    // A damaged part, and a missing load folder: one line each, naming what to bring again.
    rmSync(run, { recursive: true });
    const part = manifest.streams[1].parts[1];
    const file = join(out, part.load, part.name);
    const good = readFileSync(file);
    writeFileSync(file, Buffer.concat([good.subarray(0, 10), Buffer.from('x'), good.subarray(11)]));
    expect(unpack(out)).toMatchObject({ status: 1, stderr: `unpack: ${file} is damaged: its sha256 differs from the manifest (copy it again)\n` });
    writeFileSync(file, good);
    rmSync(join(out, part.load), { recursive: true });
    const missing = manifest.streams[1].parts.filter((p) => p.load === part.load).map((p) => p.name).join(', ');
    expect(unpack(out)).toMatchObject({ status: 1, stderr: `unpack: ${missing.split(', ').length} part(s) of provider.so.xz missing: ${missing} (bring ${part.load})\n` });
  });
});

describe("onnxruntime's placement log", () => {
  it('counts nodes per provider and lists the ops without a CUDA kernel', () => {
    const log = [
      '2026-12-03 [V:onnxruntime:, cuda_execution_provider.cc:2517 GetCapability] CUDA kernel not found in registries for Op type: MaxUnpool node name: pool1/grad',
      '2026-12-03 [V:onnxruntime:, cuda_execution_provider.cc:2517 GetCapability] CUDA kernel not found in registries for Op type: MaxUnpool node name: pool2/grad',
      '2026-12-03 [V:onnxruntime:, session_state.cc:1275 VerifyEachNodeIsAssignedToAnEp] Node placements',
      '2026-12-03 [V:onnxruntime:, session_state.cc:1278 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 412',
      '2026-12-03 [V:onnxruntime:, session_state.cc:1278 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 7',
    ].join('\n');
    expect(parsePlacement(log)).toEqual({ providers: { CUDAExecutionProvider: 412, CPUExecutionProvider: 7 }, missingKernels: ['MaxUnpool'] });
  });
});
