/**
 * CUDA without a GPU: `cnnc cuda install` on a small fake provider package (made here, installed
 * into a fake onnxruntime-node), the doctor's diagnosis of fake machines (folders of fake .so
 * files, canned ldconfig/python/nvidia-smi output), the decision `--device cuda|auto` makes, and
 * the re-execution with LD_LIBRARY_PATH. The real 179 MB package is never downloaded here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaInstallCommand } from '../src/cli/cuda.ts';
import { UserError } from '../src/errors.ts';
import { diagnose, doctorJson, formatDoctor, type Diagnosis } from '../src/runtime/cuda/diagnose.ts';
import { mustForward, planLaunch, REEXEC_GUARD } from '../src/runtime/cuda/launch.ts';
import { CUDA_LIBRARIES, parseLdconfig } from '../src/runtime/cuda/libraries.ts';
import { probeCuda, type ProbeEnv, type RunResult } from '../src/runtime/cuda/probe.ts';
import {
  installProvider, PINNED, PROVIDER_ORT_VERSION, PROVIDER_SPEC, RECORD_FILE, type OrtInstall, type ProviderPin,
} from '../src/runtime/cuda/provider.ts';

const root = join(import.meta.dirname, '..');
const dirs: string[] = [];
const tempDir = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), `cnnc-cuda-${name}-`));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const NAMES = Object.keys(PINNED.files);

/** A provider package like the registry's, with small fake libraries; its pin is the test's. */
function fakePackage(dir: string, contents: Record<string, string> = {}): { tgz: string; pin: ProviderPin; data: Record<string, string> } {
  const pkg = join(dir, 'pkg');
  const libs = join(pkg, 'package', 'Plugins', 'Linux', 'x64');
  mkdirSync(libs, { recursive: true });
  writeFileSync(join(pkg, 'package', 'README.md'), 'ONNX Runtime 1.29.0\n');
  const data: Record<string, string> = {};
  for (const name of [...NAMES, 'libonnxruntime_providers_tensorrt.so']) {
    data[name] = contents[name] ?? `fake ${name} ${dir}\n`;
    writeFileSync(join(libs, name), data[name], { mode: 0o755 });
  }
  const tgz = join(dir, 'provider.tgz');
  const r = spawnSync('tar', ['-czf', tgz, '-C', pkg, 'package']);
  expect(r.status, r.stderr?.toString()).toBe(0);
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  return { tgz, pin: { integrity, files: Object.fromEntries(NAMES.map((n) => [n, sha256(data[n])])) }, data };
}

/** An onnxruntime-node folder of the given version, with its (empty) binding folder. */
function fakeOrt(dir: string, version = PROVIDER_ORT_VERSION): OrtInstall {
  const ortRoot = join(dir, 'onnxruntime-node');
  const binDir = join(ortRoot, 'bin', 'napi-v6', 'linux', 'x64');
  mkdirSync(binDir, { recursive: true });
  writeFileSync(join(ortRoot, 'package.json'), JSON.stringify({ name: 'onnxruntime-node', version }));
  writeFileSync(join(binDir, 'libonnxruntime.so.1'), 'fake ort\n');
  return { root: ortRoot, version, binDir };
}

const listing = (dir: string) => readdirSync(dir).sort();
const linux = { platform: 'linux', arch: 'x64' };

describe('cnnc cuda install (a fake provider package)', () => {
  it('installs the libraries from --from beside libonnxruntime.so.1, with a record, leaving nothing else', async () => {
    const dir = tempDir('install');
    const { tgz, pin, data } = fakePackage(dir);
    const ort = fakeOrt(dir);
    const r = await installProvider({ ort, from: tgz, pin, ...linux });
    expect(r.status).toBe('installed');
    expect(listing(ort.binDir)).toEqual([RECORD_FILE, 'libonnxruntime.so.1', ...NAMES].sort());
    for (const name of NAMES) {
      expect(readFileSync(join(ort.binDir, name), 'utf8')).toBe(data[name]);
      expect(statSync(join(ort.binDir, name)).mode & 0o111).not.toBe(0);
    }
    const record = JSON.parse(readFileSync(join(ort.binDir, RECORD_FILE), 'utf8'));
    expect(record).toMatchObject({ package: PROVIDER_SPEC.split('@')[0], onnxruntime: PROVIDER_ORT_VERSION, integrity: pin.integrity });
    expect(record.files[NAMES[1]]).toEqual({ sha256: pin.files[NAMES[1]], size: data[NAMES[1]].length });
  });

  it('a second run finds the same build installed and changes nothing', async () => {
    const dir = tempDir('again');
    const { tgz, pin } = fakePackage(dir);
    const ort = fakeOrt(dir);
    await installProvider({ ort, from: tgz, pin, ...linux });
    const before = NAMES.map((n) => statSync(join(ort.binDir, n)));
    const r = await installProvider({ ort, from: tgz, pin, ...linux });
    expect(r.status).toBe('already installed');
    NAMES.forEach((n, i) => {
      const after = statSync(join(ort.binDir, n));
      expect([after.ino, after.mtimeMs]).toEqual([before[i].ino, before[i].mtimeMs]);
    });
  });

  it('refuses a tarball whose sha512 is not the pinned one, and writes nothing', async () => {
    const dir = tempDir('badsum');
    const { tgz, pin } = fakePackage(dir);
    const ort = fakeOrt(dir);
    const wrong = { ...pin, integrity: PINNED.integrity };
    await expect(installProvider({ ort, from: tgz, pin: wrong, ...linux })).rejects.toThrow(/its sha512 \(sha512-.+\) differs from the pinned sha512-FopIh.+nothing was installed/);
    expect(listing(ort.binDir)).toEqual(['libonnxruntime.so.1']);
  });

  it('refuses a library whose sha256 differs (right tarball, wrong file), and keeps the previous install whole', async () => {
    const dir = tempDir('badfile');
    const old = fakePackage(join(tempDir('old')));
    const ort = fakeOrt(dir);
    await installProvider({ ort, from: old.tgz, pin: old.pin, ...linux });
    const { tgz, pin } = fakePackage(dir);
    const tampered = { ...pin, files: { ...pin.files, [NAMES[1]]: sha256('something else') } };
    await expect(installProvider({ ort, from: tgz, pin: tampered, ...linux })).rejects.toThrow(new RegExp(`${NAMES[1]} in .* has sha256 .*, not the pinned`));
    expect(listing(ort.binDir)).toEqual([RECORD_FILE, 'libonnxruntime.so.1', ...NAMES].sort());
    for (const name of NAMES) expect(readFileSync(join(ort.binDir, name), 'utf8')).toBe(old.data[name]);
    expect((await installProvider({ ort, from: old.tgz, pin: old.pin, ...linux })).status).toBe('already installed');
  });

  it('refuses another onnxruntime-node version and other platforms, naming the fix', async () => {
    const dir = tempDir('version');
    const { tgz, pin } = fakePackage(dir);
    const ort = fakeOrt(dir, '1.30.0');
    await expect(installProvider({ ort, from: tgz, pin, ...linux }))
      .rejects.toThrow(`onnxruntime-node 1.30.0 is installed, but the CUDA provider ${PROVIDER_SPEC} is built for ONNX Runtime 1.29.0 and loads only into that release; fix: npm install onnxruntime-node@1.29.0 --save-exact`);
    await expect(installProvider({ ort: fakeOrt(tempDir('mac')), from: tgz, pin, platform: 'darwin', arch: 'arm64' }))
      .rejects.toThrow(/built for Linux x64 only, and this is darwin arm64; fix: use --device cpu/);
    expect(listing(ort.binDir)).toEqual(['libonnxruntime.so.1']);
  });

  it('downloads with npm pack (the user\'s npm, registry and proxy) and reports the download', async () => {
    const dir = tempDir('npm');
    const { tgz, pin, data } = fakePackage(dir);
    const ort = fakeOrt(dir);
    const npm = join(dir, 'npm');
    const calls = join(dir, 'calls');
    writeFileSync(npm, `#!/bin/sh
echo "$@" >> '${calls}'
if [ "$1" = config ]; then echo https://registry.example.invalid/; exit 0; fi
while [ $# -gt 0 ]; do [ "$1" = --pack-destination ] && dest="$2"; shift; done
cp '${tgz}' "$dest/x.tgz" && echo '[{"filename": "x.tgz"}]'
`, { mode: 0o755 });
    const lines: string[] = [];
    const r = await installProvider({ ort, pin, npm, log: (l) => lines.push(l), ...linux });
    expect(r.status).toBe('installed');
    expect(r.download?.bytes).toBe(statSync(tgz).size);
    expect(readFileSync(join(ort.binDir, NAMES[1]), 'utf8')).toBe(data[NAMES[1]]);
    expect(readFileSync(calls, 'utf8')).toMatch(new RegExp(`^config get registry\npack ${PROVIDER_SPEC} --pack-destination \\S+ --json --ignore-scripts`));
    expect(lines[0]).toBe(`downloading ${PROVIDER_SPEC} (179 MB) from https://registry.example.invalid/`);
    expect(listing(ort.binDir)).toEqual([RECORD_FILE, 'libonnxruntime.so.1', ...NAMES].sort());
  });

  it('a failed download or a missing npm says what to do, including --from', async () => {
    const dir = tempDir('npmfail');
    const { pin } = fakePackage(dir);
    const ort = fakeOrt(dir);
    const npm = join(dir, 'npm');
    writeFileSync(npm, '#!/bin/sh\n[ "$1" = config ] && exit 0\necho "npm error code ENOTFOUND" >&2\necho "npm error network request failed" >&2\nexit 1\n', { mode: 0o755 });
    await expect(installProvider({ ort, pin, npm, ...linux })).rejects.toThrow(/could not download .* \(code ENOTFOUND network request failed\); check `npm config get registry`.*npm pack .*--from FILE\.tgz/);
    await expect(installProvider({ ort, pin, npm: join(dir, 'no-such-npm'), ...linux })).rejects.toThrow(/npm was not found .*--from FILE\.tgz/);
    expect(listing(ort.binDir)).toEqual(['libonnxruntime.so.1']);
  });

  it('clears the staging folder a killed install left, and replaces damaged files', async () => {
    const dir = tempDir('stale');
    const { tgz, pin, data } = fakePackage(dir);
    const ort = fakeOrt(dir);
    await installProvider({ ort, from: tgz, pin, ...linux });
    writeFileSync(join(ort.binDir, NAMES[1]), 'damaged');
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!;
    mkdirSync(join(ort.binDir, `.cnnc-cuda-install-${dead}`));
    expect((await installProvider({ ort, from: tgz, pin, ...linux })).status).toBe('installed');
    expect(readFileSync(join(ort.binDir, NAMES[1]), 'utf8')).toBe(data[NAMES[1]]);
    expect(listing(ort.binDir)).toEqual([RECORD_FILE, 'libonnxruntime.so.1', ...NAMES].sort());
  });

  it('--check: status 1 and the fix when missing, 0 once installed', async () => {
    const dir = tempDir('check');
    const { tgz, pin } = fakePackage(dir);
    const ort = fakeOrt(dir);
    const out: string[] = [];
    const deps = { ort, pin, ...linux, print: (l: string) => out.push(l), log: () => {} };
    expect(await cudaInstallCommand({ check: true }, deps)).toBe(1);
    expect(out.pop()).toBe('the CUDA execution provider is not installed; fix: npx cnnc cuda install');
    expect(await cudaInstallCommand({ from: tgz }, deps)).toBe(0);
    expect(await cudaInstallCommand({ check: true }, deps)).toBe(0);
    expect(out.pop()).toMatch(/is installed in .*, intact and matching onnxruntime-node 1\.29\.0/);
  });
});

// ---------------------------------------------------------------------------------------------
// Fake machines for the doctor

interface Machine {
  dir: string;
  /** Canned output per command line ("nvidia-smi", "ldconfig -p", "python3"); absent: not installed. */
  commands: Record<string, Partial<RunResult>>;
  env: NodeJS.ProcessEnv;
  ort?: OrtInstall;
}

/** A fake .so file for each soname, in dir. */
function libs(dir: string, sonames: readonly string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const s of sonames) writeFileSync(join(dir, s), 'ELF?');
  return dir;
}

const REQUIRED = CUDA_LIBRARIES.filter((l) => !l.optional && l.pip).map((l) => l.soname);
const CU13 = REQUIRED.filter((s) => s !== 'libcudnn.so.9');

function machine(name: string): Machine {
  const dir = tempDir(name);
  mkdirSync(join(dir, 'proc'));
  return { dir, commands: { 'nvidia-smi': { stdout: 'NVIDIA H200, 143771 MiB, 580.95.05\n' } }, env: {} };
}

/** A Python whose nvidia wheels are in DIR/site/nvidia: CUDA 13's in cu13/lib, cuDNN's in cudnn/lib. */
function withWheels(m: Machine, sonames = REQUIRED): string {
  const nvidia = join(m.dir, 'site', 'nvidia');
  libs(join(nvidia, 'cu13', 'lib'), sonames.filter((s) => s !== 'libcudnn.so.9'));
  libs(join(nvidia, 'cudnn', 'lib'), sonames.filter((s) => s === 'libcudnn.so.9'));
  mkdirSync(join(nvidia, 'no_libs_here'), { recursive: true });
  m.commands.python3 = { stdout: JSON.stringify({ executable: '/venv/bin/python3', prefix: '/venv', nvidia: [nvidia] }) };
  return nvidia;
}

/** The driver's libcuda.so.1 in the ldconfig cache, as the NVIDIA driver installs it. */
function withDriver(m: Machine): void {
  const sys = libs(join(m.dir, 'usr-lib'), ['libcuda.so.1']);
  m.commands['ldconfig -p'] = { stdout: `2 libs found in cache \`/etc/ld.so.cache'\n\tlibcuda.so.1 (libc6,x86-64) => ${sys}/libcuda.so.1\n\tlibcuda.so.1 (libc6) => /usr/lib32/libcuda.so.1\n` };
}

async function withProvider(m: Machine): Promise<void> {
  const { tgz, pin } = fakePackage(m.dir);
  m.ort = fakeOrt(m.dir);
  await installProvider({ ort: m.ort, from: tgz, pin, ...linux });
  // The doctor compares with the real pin: record the fake files as that build's.
  const record = JSON.parse(readFileSync(join(m.ort.binDir, RECORD_FILE), 'utf8'));
  record.integrity = PINNED.integrity;
  for (const n of NAMES) record.files[n].sha256 = PINNED.files[n];
  writeFileSync(join(m.ort.binDir, RECORD_FILE), JSON.stringify(record));
}

function probeEnv(m: Machine): ProbeEnv {
  return {
    env: m.env,
    run: (command, args) => {
      const key = [command.replace(/^\/(usr\/)?sbin\//, ''), ...args].filter((a) => !a.startsWith('--') && !a.includes('\n') && a !== '-c').join(' ');
      const canned = m.commands[key];
      return canned ? { status: 0, stdout: '', stderr: '', missing: false, ...canned } : { status: null, stdout: '', stderr: '', missing: true };
    },
    ort: m.ort, hash: false, ...linux,
    pythons: ['python3', 'python'], systemDirs: [join(m.dir, 'system')], toolkitRoot: join(m.dir, 'usr-local'), procNvidia: join(m.dir, 'proc'),
  };
}

async function doctor(m: Machine): Promise<{ d: Diagnosis; text: string; json: ReturnType<typeof doctorJson> }> {
  const p = await probeCuda(probeEnv(m));
  const d = diagnose(p);
  return { d, text: formatDoctor(p, d), json: doctorJson(p, d) };
}

/** A machine where everything is in place: provider, driver, GPU, pip wheels. */
async function goodMachine(name: string): Promise<{ m: Machine; nvidia: string }> {
  const m = machine(name);
  await withProvider(m);
  withDriver(m);
  return { m, nvidia: withWheels(m) };
}

describe('cnnc doctor on fake machines', () => {
  it('CUDA 13 and cuDNN wheels of a Python (both layouts) make CUDA usable, through LD_LIBRARY_PATH', async () => {
    const { m, nvidia } = await goodMachine('wheels');
    m.env.LD_LIBRARY_PATH = '/opt/other';
    const { d, text } = await doctor(m);
    expect(d.problems).toEqual([]);
    expect(d.usable).toBe(true);
    expect(d.addToLibraryPath).toEqual([join(nvidia, 'cu13', 'lib'), join(nvidia, 'cudnn', 'lib')]);
    expect(text).toContain(`${join(nvidia, 'cudnn', 'lib', 'libcudnn.so.9')} (pip, /venv/bin/python3; added to LD_LIBRARY_PATH at run time)`);
    expect(text).toMatch(/libcuda\.so\.1 +NVIDIA driver +\S+usr-lib\/libcuda\.so\.1 \(ldconfig\)/);
    expect(text).toContain('--device cuda: usable (NVIDIA H200, 143771 MiB)');
    expect(planLaunch('cuda', d, m.env)).toEqual({ kind: 'reexec', libraryPath: `/opt/other:${d.addToLibraryPath.join(':')}` });
    expect(planLaunch('auto', d, { [REEXEC_GUARD]: '1' })).toEqual({ kind: 'run' });
  });

  it('libraries already on LD_LIBRARY_PATH need no restart', async () => {
    const m = machine('ldpath');
    await withProvider(m);
    withDriver(m);
    m.env.LD_LIBRARY_PATH = libs(join(m.dir, 'cuda', 'lib64'), REQUIRED);
    const { d } = await doctor(m);
    expect(d.usable).toBe(true);
    expect(d.libraries.filter((f) => !f.lib.optional).every((f) => f.loadable)).toBe(true);
    expect(d.addToLibraryPath).toEqual([]);
    expect(planLaunch('cuda', d, m.env)).toEqual({ kind: 'run' });
  });

  it('conda, CUDA_HOME and /usr/local/cuda-13.x are searched; a folder the run adds shadows the system\'s copy, and the doctor says so', async () => {
    const m = machine('conda');
    await withProvider(m);
    withDriver(m);
    m.env.CONDA_PREFIX = join(m.dir, 'conda');
    libs(join(m.dir, 'conda', 'lib'), ['libcudnn.so.9']);
    m.env.CUDA_HOME = join(m.dir, 'cuda-home');
    libs(join(m.dir, 'cuda-home', 'lib64'), ['libcublas.so.13', 'libcublasLt.so.13']);
    libs(join(m.dir, 'usr-local', 'cuda-13.0', 'lib64'), CU13);
    libs(join(m.dir, 'system'), ['libcurand.so.10']);
    const { d, text } = await doctor(m);
    expect(d.usable).toBe(true);
    const place = (s: string) => d.libraries.find((f) => f.lib.soname === s)!.hit!.place.kind;
    expect([place('libcudnn.so.9'), place('libcublas.so.13'), place('libcudart.so.13'), place('libcuda.so.1')]).toEqual(['conda', 'CUDA_HOME', 'CUDA toolkit', 'ldconfig']);
    // The toolkit's folder is added for libcudart, and comes before the built-in folders.
    expect(place('libcurand.so.10')).toBe('CUDA toolkit');
    expect(d.addToLibraryPath).toEqual([join(m.dir, 'conda', 'lib'), join(m.dir, 'cuda-home', 'lib64'), join(m.dir, 'usr-local', 'cuda-13.0', 'lib64')]);
    expect(text).toContain(`conda: ${join(m.dir, 'conda', 'lib')}`);
  });

  it('a missing cuDNN: the pip command, a one-line refusal for cuda, the CPU with a notice for auto', async () => {
    const m = machine('nocudnn');
    await withProvider(m);
    withDriver(m);
    withWheels(m, CU13);
    const { d, text } = await doctor(m);
    expect(d.usable).toBe(false);
    expect(d.problems).toEqual([{ what: 'libcudnn.so.9 (cuDNN 9) not found', fix: "pip install 'nvidia-cudnn-cu13==9.*' (or NVIDIA's CUDA 13 toolkit and cuDNN 9; see docs/cuda.md)" }]);
    expect(text).toMatch(/libcudnn\.so\.9 +cuDNN 9 +NOT FOUND/);
    const refuse = planLaunch('cuda', d, {});
    expect(refuse).toEqual({ kind: 'refuse', message: "--device cuda: libcudnn.so.9 (cuDNN 9) not found; fix: pip install 'nvidia-cudnn-cu13==9.*' (or NVIDIA's CUDA 13 toolkit and cuDNN 9; see docs/cuda.md); `npx cnnc doctor` checks everything" });
    expect(planLaunch('auto', d, {})).toMatchObject({ kind: 'cpu', notice: expect.stringMatching(/^CUDA is not available, running on CPU: libcudnn\.so\.9/) });
  });

  it('nothing installed: the provider, the driver, each wheel and the GPU, each with its fix', async () => {
    const m = machine('bare');
    m.ort = fakeOrt(m.dir);
    delete m.commands['nvidia-smi'];
    const { d, json } = await doctor(m);
    expect(d.problems.map((p) => p.fix)).toEqual([
      'npx cnnc cuda install',
      'check the NVIDIA driver (`nvidia-smi` should list the GPU); in a container, start it with GPU access (docker run --gpus all)',
      'install the NVIDIA driver (580 or newer); in a container, start it with GPU access (docker run --gpus all)',
      "pip install 'nvidia-cuda-runtime==13.*' 'nvidia-cublas==13.*' 'nvidia-curand==10.*' 'nvidia-cudnn-cu13==9.*' (or NVIDIA's CUDA 13 toolkit and cuDNN 9; see docs/cuda.md)",
    ]);
    expect(d.problems[1].what).toMatch(/no NVIDIA GPU is visible/);
    expect(d.notes).toHaveLength(2);
    expect(planLaunch('cuda', d, {})).toMatchObject({ message: expect.stringMatching(/^--device cuda: the CUDA execution provider is not installed; fix: npx cnnc cuda install; `npx cnnc doctor` lists 3 more$/) });
    expect(json).toMatchObject({ usable: false, onnxruntime: { version: '1.29.0' }, ldconfig: false, gpu: { source: 'none' } });
  });

  it('GPUs: /proc/driver/nvidia without nvidia-smi, a failing nvidia-smi, an old driver', async () => {
    const { m } = await goodMachine('gpus');
    delete m.commands['nvidia-smi'];
    mkdirSync(join(m.dir, 'proc', 'gpus', '0000:01:00.0'), { recursive: true });
    writeFileSync(join(m.dir, 'proc', 'gpus', '0000:01:00.0', 'information'), 'Model: \t\t NVIDIA H200\nIRQ: 42\n');
    writeFileSync(join(m.dir, 'proc', 'version'), 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Tue Sep 23 2026\n');
    let r = await doctor(m);
    expect(r.d.usable).toBe(true);
    expect(r.text).toContain('GPUs           NVIDIA H200, driver 580.95.05 (from /proc/driver/nvidia; nvidia-smi not installed)');

    m.commands['nvidia-smi'] = { status: 9, stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n" };
    r = await doctor(m);
    expect(r.d.problems).toMatchObject([{ what: "nvidia-smi fails: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." }]);

    m.commands['nvidia-smi'] = { stdout: 'NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05\n' };
    r = await doctor(m);
    expect(r.d.problems).toEqual([{ what: 'the NVIDIA driver is 535.104.05, older than the 580 that CUDA 13 needs', fix: 'update the NVIDIA driver to 580 or newer' }]);
  });

  it('the provider: another onnxruntime-node, damaged files, a foreign record', async () => {
    const { m } = await goodMachine('provider');
    writeFileSync(join(m.ort!.binDir, NAMES[1]), 'truncated');
    let r = await doctor(m);
    expect(r.d.problems).toMatchObject([{ what: expect.stringMatching(/libonnxruntime_providers_cuda\.so is damaged or was replaced \(its size differs/), fix: 'npx cnnc cuda install' }]);

    m.ort = { ...m.ort!, version: '1.30.0' };
    r = await doctor(m);
    expect(r.d.problems.map((p) => p.fix)).toEqual(['npm install onnxruntime-node@1.29.0 --save-exact', 'after that, npx cnnc cuda install']);
    expect(r.d.problems[1].what).toBe('the installed CUDA provider is built for ONNX Runtime 1.29.0, but onnxruntime-node is 1.30.0');

    m.ort = { ...m.ort, version: PROVIDER_ORT_VERSION };
    rmSync(join(m.ort.binDir, RECORD_FILE));
    r = await doctor(m);
    expect(r.d.problems[0].what).toMatch(/were not installed by cnnc \(no cnnc-cuda-provider\.json\)/);
  });

  it('python and python3 of one environment count once; a Python that fails is reported', async () => {
    const { m } = await goodMachine('pythons');
    m.commands.python = { ...m.commands.python3 };
    let r = await doctor(m);
    expect(r.json).toMatchObject({ pythons: [{ command: 'python3', executable: '/venv/bin/python3' }] });
    m.commands.python = { status: 1, stdout: '', stderr: 'Traceback ...\nSyntaxError: bad\n' };
    r = await doctor(m);
    expect(r.text).toContain('python (failed: SyntaxError: bad)');
  });
});

describe('the loader path and signals', () => {
  it('ldconfig -p: x86-64 entries only, the first of each name', () => {
    const text = "3 libs found in cache `/etc/ld.so.cache'\n" +
      '\tlibcudart.so.13 (libc6,x86-64) => /usr/local/cuda-13.0/lib/libcudart.so.13\n' +
      '\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1\n' +
      '\tlibcuda.so.1 (libc6,x86-64, OS ABI: Linux 3.2.0) => /usr/lib/x86_64-linux-gnu/libcuda.so.1\n' +
      '\tlibcudart.so.13 (libc6,x86-64) => /elsewhere/libcudart.so.13\n';
    expect(parseLdconfig(text)).toEqual({
      'libcudart.so.13': '/usr/local/cuda-13.0/lib/libcudart.so.13',
      'libcuda.so.1': '/usr/lib/x86_64-linux-gnu/libcuda.so.1',
    });
  });

  it('a terminal\'s Ctrl-C is not passed on to the child (it has it already); other signals and senders are', () => {
    const stat = (pgrp: number, tpgid: number) => `4242 (node (cnnc) x) S 4000 ${pgrp} 4000 34816 ${tpgid} 4194304 120 0 0 0`;
    expect(mustForward('SIGINT', stat(4242, 4242))).toBe(false);
    expect(mustForward('SIGHUP', stat(4242, 4242))).toBe(false);
    expect(mustForward('SIGINT', stat(4242, 5000))).toBe(true);
    expect(mustForward('SIGINT', stat(4242, -1))).toBe(true);
    expect(mustForward('SIGTERM', stat(4242, 4242))).toBe(true);
    expect(mustForward('SIGINT', undefined)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The restart, in real processes

const child = join(root, 'test', 'helpers', 'reexec-child.ts');

describe('re-executing with LD_LIBRARY_PATH', () => {
  it("the child runs once, with the folders after the user's own, the same arguments and the guard; its status is the parent's", () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', child, 'exit', '--x=1'], {
      cwd: root, encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: '/opt/mine', [REEXEC_GUARD]: '' },
    });
    expect(r.status, r.stderr).toBe(7);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toEqual({ libraryPath: '/opt/mine:/fake/cu13/lib:/fake/cudnn/lib', guard: '1', argv: ['exit', '--x=1'], plan: 'run' });
  });

  /**
   * Starts the helper in `signals` mode and resolves once the child says it is ready. Detached: in
   * a session of its own, away from the terminal vitest may run in, a signal comes only from the test.
   */
  function startSignals(command = process.execPath, args = ['--import', 'tsx', child, 'signals']) {
    const proc = spawn(command, args, { cwd: root, env: { ...process.env, [REEXEC_GUARD]: '' }, detached: true });
    let out = '';
    const done = new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => proc.on('close', (code, signal) => resolve({ code, signal, out })));
    const ready = new Promise<void>((resolve) => proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    }));
    return { proc, done, ready };
  }

  it('a SIGINT sent to the parent alone reaches the child exactly once; its exit status comes back', async () => {
    const { proc, done, ready } = startSignals();
    await ready;
    proc.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.out).toContain('{"sigints":1}');
  });

  // `script` (util-linux) runs the helper on a pseudo-terminal, where a Ctrl-C reaches both processes.
  // Were the parent to pass it on too, the child would see two unless the kernel merged them while
  // pending, so this catches that mistake often but not always; mustForward's test above always does.
  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)('a Ctrl-C typed on the terminal reaches the child once, not twice (a second would abort a training run)', async () => {
    const { proc, done, ready } = startSignals('script', ['-qec', `"${process.execPath}" --import tsx "${child}" signals`, '/dev/null']);
    await ready;
    proc.stdin.write('\x03');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.out).toContain('{"sigints":1}');
  });

  it('a SIGTERM reaches the child, and the parent dies of it as the child did', async () => {
    const { proc, done, ready } = startSignals();
    await ready;
    proc.kill('SIGTERM');
    const r = await done;
    expect(r.signal).toBe('SIGTERM');
    expect(r.out).toContain('{"sigterm":true}');
  });
});

// ---------------------------------------------------------------------------------------------
// Through the CLI, on this machine as it is

function cnnc(cwd: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'cnnc.js'), ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CNNC_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('the CLI on this machine', () => {
  type Found = { usable: boolean; provider: { dir: string }; libraries: { soname: string }[] };
  let report: ReturnType<typeof cnnc>;
  let found: Found;
  beforeAll(() => {
    report = cnnc(root, ['doctor', '--json']);
    expect(report.err).toBe('');
    found = JSON.parse(report.out) as Found;
  });

  it('cnnc doctor --json: every library, and status 0 exactly when CUDA is usable', () => {
    expect(report.code).toBe(found.usable ? 0 : 1);
    expect(found.libraries.map((l) => l.soname)).toEqual(CUDA_LIBRARIES.map((l) => l.soname));
    const text = cnnc(root, ['doctor']);
    expect(text.code).toBe(report.code);
    expect(text.out).toMatch(found.usable ? /--device cuda: usable/ : /--device cuda: not usable here[^]*fix: /);
  });

  it('--device cuda stops with one line and its fix; --device auto runs on the CPU, saying so', (ctx) => {
    if (found.usable) ctx.skip();
    const dir = tempDir('cli');
    writeFileSync(join(dir, 'm.cnn'), 'model M {\n  input 1x4x4\n  flatten -> dense 2\n}\n');
    expect(cnnc(dir, ['compile', 'm.cnn', '-o', 'm.onnx']).code).toBe(0);
    writeFileSync(join(dir, 'x.idx'), Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 4]), Buffer.alloc(16, 7)]));
    const cuda = cnnc(dir, ['predict', 'm.cnn', '--weights', 'm.onnx', 'x.idx', '--device', 'cuda']);
    expect(cuda.code).toBe(1);
    expect(cuda.out).toBe('');
    expect(cuda.err).toMatch(/^cnnc: error: --device cuda: .+; fix: .+\n$/);
    const auto = cnnc(dir, ['predict', 'm.cnn', '--weights', 'm.onnx', 'x.idx', '--device', 'auto']);
    expect(auto.code).toBe(0);
    expect(auto.err).toMatch(/^cnnc: CUDA is not available, running on CPU: .+; fix: /);
    expect(auto.out).toMatch(/^x\.idx\[0\]: /);
  });

  it('cnnc cuda install --from a file that is not the pinned package is refused, touching nothing', () => {
    const dir = tempDir('clifrom');
    const { tgz } = fakePackage(dir);
    const before = existsSync(found.provider.dir) ? listing(found.provider.dir) : [];
    const r = cnnc(dir, ['cuda', 'install', '--from', tgz]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^cnnc: error: ${tgz.replace(/[.]/g, '\\.')}: is not ${PROVIDER_SPEC}: its sha512 .* nothing was installed\\n$`));
    expect(existsSync(found.provider.dir) ? listing(found.provider.dir) : []).toEqual(before);
  });
});

it('UserError is what the installer throws for the user\'s mistakes', async () => {
  const err = await installProvider({ ort: undefined, ...linux }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).toBe('onnxruntime-node is not installed; fix: npm install (or npm ci)');
});
