/**
 * `npm run bench:gpu:pack`: everything the GPU benchmark needs on a machine with a GPU but without
 * Node or a network, in gpu-pack/ (git-ignored): this Node binary, dist/ with bin/cnnc.js, the
 * benchmark compiled to JavaScript, the run-time node_modules (onnxruntime-node with its Linux x64
 * binaries only) and the CUDA provider of `cnnc cuda install`. All of it goes into two xz streams
 * (the rest, and the 230 MB provider library), cut into parts, and the parts into load folders of
 * at most --part-mib MiB (60 by default), each small enough to travel on its own; manifest.json, in
 * every load folder, lists each part with its sha256. bench/gpu/unpack.py joins and unpacks them
 * there; bench/gpu/run.sh runs the benchmark.
 *
 * Options: --out DIR (gpu-pack), --part-mib N (60), --cuda-from FILE.tgz (the provider tarball,
 * for a machine without registry access), --no-cuda (no provider: for a check of the packing on
 * a CPU machine), --level N (xz preset, 9).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import {
  findOnnxruntime, installProvider, ortAt, PINNED, PROVIDER_SPEC, providerProblem, readProviderState, RECORD_FILE,
} from '../../src/runtime/cuda/provider.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MIB = 2 ** 20;
/** The provider library, which gets a stream of its own. */
const PROVIDER_LIB = 'libonnxruntime_providers_cuda.so';
/** Where onnxruntime-node keeps its binaries and providers, inside the unpacked app. */
const ORT_BIN = 'app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64';
/** The packages the benchmark and `cnnc doctor` load at run time (with their dependencies). */
const RUNTIME_PACKAGES = ['onnxruntime-node', 'onnx-proto', 'commander'];
/** onnxruntime-node's own dependencies but this one serve only its install script. */
const ORT_RUNTIME_DEPS = ['onnxruntime-common'];

export interface PackOptions {
  out: string;
  partMib: number;
  cudaFrom?: string;
  cuda: boolean;
  level: number;
}

export interface Part { name: string; load: string; bytes: number; sha256: string }
export interface Stream { name: string; what: string; bytes: number; sha256: string; parts: Part[] }
export interface Manifest {
  format: 'cnnc-gpu-pack/1';
  created: string;
  node: string;
  onnxruntime: string;
  /** The commit packed (git rev-parse HEAD), with `+changes` when the working tree differed from it. */
  commit: string;
  /** The CUDA provider packed, or null (--no-cuda). */
  provider: string | null;
  /** base: a tar of node and app/; provider: the library, to be written to `into`. */
  streams: (Stream & { into?: string })[];
  loads: { dir: string; bytes: number }[];
}

function parseArgs(argv: string[]): PackOptions {
  const o: PackOptions = { out: path.join(ROOT, 'gpu-pack'), partMib: 60, cuda: true, level: 9 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    if (a === '--out' && v) (o.out = path.resolve(v), i++);
    else if (a === '--part-mib' && Number(v) > 0) (o.partMib = Number(v), i++);
    else if (a === '--cuda-from' && v) (o.cudaFrom = path.resolve(v), i++);
    else if (a === '--level' && /^[0-9]$/.test(v ?? '')) (o.level = Number(v), i++);
    else if (a === '--no-cuda') o.cuda = false;
    else throw new Error(`pack: unknown or incomplete argument ${a} (see the head of bench/gpu/pack.ts)`);
  }
  return o;
}

const log = (s: string) => process.stderr.write(`pack: ${s}\n`);

function run(command: string, args: string[], opts: { cwd?: string } = {}): void {
  const r = spawnSync(command, args, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error || r.status !== 0) throw new Error(`pack: ${command} ${args.join(' ')} failed (${r.error?.message ?? `status ${r.status ?? r.signal}`})`);
}

// ---------------------------------------------------------------------------------------------
// The app: dist/, bin/, the compiled benchmark, node_modules

/** The benchmark and the bench/ files it imports, as ES modules importing dist/ instead of src/. */
function compileBench(dest: string): void {
  const todo = ['bench/bench-gpu.ts'], done = new Set<string>();
  while (todo.length) {
    const rel = todo.pop()!;
    if (done.has(rel)) continue;
    done.add(rel);
    const text = fs.readFileSync(path.join(ROOT, rel), 'utf8');
    for (const m of text.matchAll(/from '(\.\/[^']+\.ts)'/g)) todo.push(path.posix.join('bench', m[1]));
    const js = ts.transpileModule(text, { fileName: rel, compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
      .replace(/(from\s+|import\s*\(\s*)'(\.\.?\/[^']+)\.ts'/g, "$1'$2.js'")
      .replace(/(from\s+|import\s*\(\s*)'\.\.\/src\//g, "$1'../dist/");
    fs.writeFileSync(path.join(dest, rel.replace(/\.ts$/, '.js')), js);
  }
  for (const py of ['torch_gpu.py', 'torch_bench.py']) fs.copyFileSync(path.join(ROOT, 'bench', py), path.join(dest, 'bench', py));
}

/** A package and what it depends on, found in the project's (flat) node_modules; type packages left out. */
function packageClosure(roots: string[]): string[] {
  const seen = new Set<string>(), todo = [...roots];
  while (todo.length) {
    const name = todo.pop()!;
    if (seen.has(name) || name.startsWith('@types/')) continue;
    seen.add(name);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const deps = Object.keys(pkg.dependencies ?? {});
    todo.push(...(name === 'onnxruntime-node' ? deps.filter((d) => ORT_RUNTIME_DEPS.includes(d)) : deps));
  }
  return [...seen].sort();
}

const within = (file: string, dir: string) => file === dir || file.startsWith(dir + path.sep);

/** node_modules/NAME; onnxruntime-node without its other platforms' binaries (some 240 MB). */
function copyPackage(name: string, modules: string): void {
  const from = path.join(ROOT, 'node_modules', name);
  const binaries = path.join(from, 'bin', 'napi-v6'), linux = path.join(binaries, 'linux', 'x64');
  // Inside bin/napi-v6 only linux/x64 and the folders leading to it are copied.
  const keep = (src: string) => name !== 'onnxruntime-node' || !within(src, binaries) || within(src, linux) || within(linux, src);
  fs.cpSync(from, path.join(modules, name), { recursive: true, dereference: true, filter: keep });
}

function stageApp(stage: string): string[] {
  const app = path.join(stage, 'app');
  fs.mkdirSync(path.join(app, 'bench'), { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, private: true, type: 'module' }, null, 2) + '\n');
  // bin/cnnc.js takes a tree without src/ for an installed package, whose dist/ is current.
  fs.cpSync(path.join(ROOT, 'bin'), path.join(app, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'dist'), path.join(app, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') });
  compileBench(app);
  const packages = packageClosure(RUNTIME_PACKAGES);
  for (const name of packages) copyPackage(name, path.join(app, 'node_modules'));
  fs.copyFileSync(process.execPath, path.join(stage, 'node'));
  return packages;
}

/** The pinned provider in the staged onnxruntime-node: copied when this project has it intact, else installed. */
async function stageProvider(stage: string, from: string | undefined): Promise<void> {
  const target = ortAt(path.join(stage, 'app', 'node_modules', 'onnxruntime-node'))!;
  const here = findOnnxruntime();
  if (here && !from && !providerProblem(await readProviderState(here.binDir, { hash: true }), here.version)) {
    log(`copying the CUDA provider installed in ${here.binDir}`);
    for (const f of [...Object.keys(PINNED.files), RECORD_FILE]) fs.copyFileSync(path.join(here.binDir, f), path.join(target.binDir, f));
    return;
  }
  await installProvider({ ort: target, from, log });
}

/** What was packed, for the results: the commit and whether the working tree had changes. */
function commit(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  const head = git(['rev-parse', 'HEAD']).stdout?.trim() || 'unknown';
  return git(['status', '--porcelain', '--untracked-files=no']).stdout?.trim() ? `${head}+changes` : head;
}

// ---------------------------------------------------------------------------------------------
// Streams, parts and loads

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Cuts the streams into parts filling load folders of at most `limit` bytes, in order. */
export function planParts(streams: { name: string; bytes: number }[], limit: number): { stream: string; load: number; offset: number; bytes: number }[] {
  const parts: { stream: string; load: number; offset: number; bytes: number }[] = [];
  let load = 1, room = limit;
  for (const s of streams) {
    for (let offset = 0; offset < s.bytes;) {
      if (room === 0) (load++, room = limit);
      const bytes = Math.min(room, s.bytes - offset);
      parts.push({ stream: s.name, load, offset, bytes });
      offset += bytes;
      room -= bytes;
    }
  }
  return parts;
}

function copyRange(from: string, to: string, offset: number, bytes: number): void {
  const fd = fs.openSync(from, 'r'), out = fs.openSync(to, 'w');
  try {
    const buf = Buffer.alloc(Math.min(bytes, 8 * MIB));
    for (let done = 0; done < bytes;) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, bytes - done), offset + done);
      // A file that shrank since it was measured would otherwise loop here for ever.
      if (n === 0) throw new Error(`pack: ${from} ended at byte ${offset + done}, before the ${offset + bytes} planned`);
      fs.writeSync(out, buf, 0, n);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
    fs.closeSync(out);
  }
}

export async function writeLoads(o: PackOptions, files: { name: string; file: string; what: string; into?: string }[], meta: Omit<Manifest, 'streams' | 'loads'>): Promise<Manifest> {
  // The manifest (a few kB) goes into every load folder too: a margin keeps each under the limit.
  const limit = Math.floor(o.partMib * MIB) - 64 * 1024;
  if (limit < 1) throw new Error(`pack: --part-mib ${o.partMib} leaves no room beside the manifest`);
  const sized = files.map((f) => ({ ...f, bytes: fs.statSync(f.file).size }));
  const plan = planParts(sized, limit);
  const streams: Manifest['streams'] = [];
  for (const s of sized) {
    const parts: Part[] = [];
    for (const [i, p] of plan.filter((x) => x.stream === s.name).entries()) {
      const load = `load-${p.load}`, name = `${s.name}.part-${String(i).padStart(2, '0')}`;
      fs.mkdirSync(path.join(o.out, load), { recursive: true });
      copyRange(s.file, path.join(o.out, load, name), p.offset, p.bytes);
      parts.push({ name, load, bytes: p.bytes, sha256: await sha256(path.join(o.out, load, name)) });
    }
    streams.push({ name: s.name, what: s.what, bytes: s.bytes, sha256: await sha256(s.file), parts, ...(s.into && { into: s.into }) });
  }
  const loadDirs = [...new Set(plan.map((p) => `load-${p.load}`))];
  const manifest: Manifest = {
    ...meta, streams,
    loads: loadDirs.map((dir) => ({ dir, bytes: plan.filter((p) => `load-${p.load}` === dir).reduce((a, p) => a + p.bytes, 0) })),
  };
  for (const dir of loadDirs) fs.writeFileSync(path.join(o.out, dir, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
  return manifest;
}

export async function pack(o: PackOptions): Promise<Manifest> {
  run(process.execPath, ['bin/build.js']); // current dist/ (a no-op when it is)
  fs.rmSync(o.out, { recursive: true, force: true });
  const stage = path.join(o.out, '.stage');
  fs.mkdirSync(stage, { recursive: true });
  const packages = stageApp(stage);
  log(`staged node ${process.version}, dist/, the benchmark and ${packages.length} packages: ${packages.join(', ')}`);
  const files: { name: string; file: string; what: string; into?: string }[] = [];
  const xz = ['-T0', `-${o.level}`];
  if (o.cuda) {
    await stageProvider(stage, o.cudaFrom);
    const lib = path.join(stage, ORT_BIN, PROVIDER_LIB), xzFile = path.join(o.out, `${PROVIDER_LIB}.xz`);
    log(`compressing ${PROVIDER_LIB} (${(fs.statSync(lib).size / MIB).toFixed(0)} MiB) with xz -${o.level}`);
    run('xz', [...xz, '-k', lib]);
    fs.renameSync(lib + '.xz', xzFile);
    fs.rmSync(lib);
    files.push({ name: `${PROVIDER_LIB}.xz`, file: xzFile, what: 'xz', into: `${ORT_BIN}/${PROVIDER_LIB}` });
  }
  log(`compressing node and app/ with xz -${o.level}`);
  const base = path.join(o.out, 'base.tar.xz');
  run('tar', ['-C', stage, '-I', `xz ${xz.join(' ')}`, '-cf', base, 'node', 'app']);
  files.unshift({ name: 'base.tar.xz', file: base, what: 'tar.xz' });
  const ort = JSON.parse(fs.readFileSync(path.join(stage, 'app/node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string };
  const manifest = await writeLoads(o, files, {
    format: 'cnnc-gpu-pack/1', created: new Date().toISOString(), node: process.version, onnxruntime: ort.version, provider: o.cuda ? PROVIDER_SPEC : null, commit: commit(),
  });
  for (const f of files) fs.rmSync(f.file);
  fs.rmSync(stage, { recursive: true, force: true });
  return manifest;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const o = parseArgs(process.argv.slice(2));
  const m = await pack(o);
  const rel = path.relative(ROOT, o.out) || '.';
  for (const l of m.loads) log(`${rel}/${l.dir}: ${(l.bytes / MIB).toFixed(1)} MiB`);
  log(`done. Each load folder travels on its own (one per call); then, in the repository: bash bench/gpu/run.sh OUT`);
}
