/**
 * Looking at the machine for CUDA: the provider files, every place a CUDA or cuDNN library may be,
 * and the GPUs. Everything it reads or runs comes through ProbeEnv, so tests build fake machines
 * (folders of fake .so files, canned command output); diagnose.ts then judges the result.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import path from 'node:path';
import { CUDA_LIBRARIES, parseLdconfig, SYSTEM_DIRS, splitPath, type Place } from './libraries.ts';
import { readProviderState, type OrtInstall, type ProviderState } from './provider.ts';

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The command does not exist. */
  missing: boolean;
}

export type Runner = (command: string, args: string[]) => RunResult;

/** Runs a probing command; a hung one (a wedged driver can hang nvidia-smi) is given up after 20 s. */
export const runCommand: Runner = (command, args) => {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : ''), missing };
};

export interface ProbeEnv {
  env: NodeJS.ProcessEnv;
  run: Runner;
  ort: OrtInstall | undefined;
  /** Hash the provider files (the doctor) or compare sizes only (before a run). */
  hash: boolean;
  platform: string;
  arch: string;
  /** The Pythons asked for their nvidia wheels. */
  pythons: readonly string[];
  systemDirs: readonly string[];
  /** Where NVIDIA's installers put toolkits (cuda, cuda-13.x). */
  toolkitRoot: string;
  /** The kernel driver's /proc folder, read when nvidia-smi is missing. */
  procNvidia: string;
}

export const realProbeEnv = (ort: OrtInstall | undefined, hash: boolean): ProbeEnv => ({
  env: process.env, run: runCommand, ort, hash, platform: process.platform, arch: process.arch,
  pythons: ['python3', 'python', '/usr/bin/python3'], systemDirs: SYSTEM_DIRS, toolkitRoot: '/usr/local', procNvidia: '/proc/driver/nvidia',
});

export interface PythonProbe {
  command: string;
  executable?: string;
  /** The folders of its `nvidia` namespace package (empty without nvidia wheels). */
  nvidia: string[];
  /** Why it could not be asked (not installed, failed). */
  error?: string;
}

export interface GpuProbe {
  source: 'nvidia-smi' | 'proc' | 'none';
  /** One line per GPU: name and memory. */
  gpus: string[];
  driver?: string;
  /** nvidia-smi's own complaint when it ran and failed. */
  error?: string;
}

export interface Hit {
  soname: string;
  path: string;
  place: Place;
}

export interface CudaProbe {
  platform: string;
  arch: string;
  node: string;
  ort?: OrtInstall;
  provider?: ProviderState;
  ldLibraryPath: string[];
  /** Whether `ldconfig -p` could be read; its entries show up among the hits. */
  ldconfig: boolean;
  pythons: PythonProbe[];
  /** Every folder searched, in the order searched. */
  places: Place[];
  /** Every CUDA library found, in search order (a library may be found in several places). */
  hits: Hit[];
  gpu: GpuProbe;
}

export async function probeCuda(pe: ProbeEnv): Promise<CudaProbe> {
  const ldLibraryPath = splitPath(pe.env.LD_LIBRARY_PATH);
  const cache = readLdconfig(pe.run);
  const pythons = askPythons(pe);
  const places = dedupe([
    ...ldLibraryPath.map((dir): Place => ({ dir, kind: 'LD_LIBRARY_PATH' })),
    ...pe.systemDirs.map((dir): Place => ({ dir, kind: 'system' })),
    ...pythons.flatMap((p) => p.nvidia.flatMap((n) => libSubdirs(n).map((dir): Place => ({ dir, kind: 'pip', python: p.executable ?? p.command })))),
    ...(pe.env.CONDA_PREFIX ? [{ dir: path.join(pe.env.CONDA_PREFIX, 'lib'), kind: 'conda' } as Place] : []),
    ...(['CUDA_HOME', 'CUDA_PATH'] as const).flatMap((v) => (pe.env[v] ? [{ dir: path.join(pe.env[v]!, 'lib64'), kind: v } as Place] : [])),
    ...toolkitDirs(pe.toolkitRoot).map((dir): Place => ({ dir, kind: 'CUDA toolkit' })),
  ]);
  return {
    platform: pe.platform, arch: pe.arch, node: process.version, ort: pe.ort,
    provider: pe.ort ? await readProviderState(pe.ort.binDir, { hash: pe.hash }) : undefined,
    ldLibraryPath, ldconfig: cache !== undefined, pythons, places, hits: findLibraries(places, cache), gpu: probeGpus(pe),
  };
}

/** The ldconfig cache; ldconfig lives in /sbin, which a user's PATH may lack. */
function readLdconfig(run: Runner): Record<string, string> | undefined {
  for (const cmd of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    const r = run(cmd, ['-p']);
    if (!r.missing && r.status === 0) return parseLdconfig(r.stdout);
  }
  return undefined;
}

/** The loader's order: LD_LIBRARY_PATH, then its cache, then its built-in folders; then the rest. */
function findLibraries(places: Place[], cache: Record<string, string> | undefined): Hit[] {
  const hits: Hit[] = [];
  const look = (place: Place) => {
    for (const { soname } of CUDA_LIBRARIES) {
      const file = path.join(place.dir, soname);
      if (fs.existsSync(file)) hits.push({ soname, path: file, place });
    }
  };
  for (const place of places.filter((p) => p.kind === 'LD_LIBRARY_PATH')) look(place);
  for (const { soname } of CUDA_LIBRARIES) {
    if (cache?.[soname]) hits.push({ soname, path: cache[soname], place: { dir: path.dirname(cache[soname]), kind: 'ldconfig' } });
  }
  for (const place of places.filter((p) => p.kind !== 'LD_LIBRARY_PATH')) look(place);
  return hits;
}

/** A folder reached twice (LD_LIBRARY_PATH already naming /usr/local/cuda/lib64) counts once, where first met. */
function dedupe(places: Place[]): Place[] {
  const seen = new Set<string>();
  return places.filter((p) => {
    const key = realPath(p.dir);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function realPath(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

const PYTHON_CODE = [
  'import json, sys',
  'try:',
  '    import nvidia',
  '    paths = list(nvidia.__path__)',
  'except ImportError:',
  '    paths = []',
  'print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "nvidia": paths}))',
].join('\n');

/**
 * Asks each Python where its nvidia wheels are (importing the namespace package is quick: no torch).
 * `python` and `python3` of one environment share sys.prefix and count once; a venv has its own.
 */
function askPythons(pe: ProbeEnv): PythonProbe[] {
  const out: PythonProbe[] = [];
  const prefixes = new Set<string>();
  for (const command of pe.pythons) {
    const r = pe.run(command, ['-c', PYTHON_CODE]);
    if (r.missing) continue;
    try {
      const { executable, prefix, nvidia } = JSON.parse(r.stdout) as { executable: string; prefix: string; nvidia: string[] };
      if (!prefixes.has(prefix)) out.push({ command, executable, nvidia });
      prefixes.add(prefix);
    } catch {
      out.push({ command, nvidia: [], error: r.stderr.trim().split('\n').at(-1) || `exited with status ${r.status}` });
    }
  }
  return out;
}

/** `nvidia/*\/lib`: one per wheel for CUDA 12 and cuDNN (nvidia/cudnn/lib), one shared for CUDA 13 (nvidia/cu13/lib). */
function libSubdirs(nvidiaDir: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(nvidiaDir).sort();
  } catch {
    return [];
  }
  return entries.map((e) => path.join(nvidiaDir, e, 'lib')).filter((d) => fs.statSync(d, { throwIfNoEntry: false })?.isDirectory());
}

/** /usr/local/cuda/lib64, then each /usr/local/cuda-13.x/lib64, newest first. */
function toolkitDirs(root: string): string[] {
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(root).filter((e) => /^cuda-13(\.|$)/.test(e)).sort().reverse();
  } catch { /* no such folder */ }
  return ['cuda', ...versions].map((e) => path.join(root, e, 'lib64'));
}

/** nvidia-smi's list; without it, the kernel driver's /proc entries. */
function probeGpus(pe: ProbeEnv): GpuProbe {
  const r = pe.run('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader']);
  if (!r.missing) {
    if (r.status !== 0) return { source: 'nvidia-smi', gpus: [], error: (r.stdout + r.stderr).trim().split('\n')[0] || `exited with status ${r.status}` };
    const rows = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(',').map((s) => s.trim()));
    return { source: 'nvidia-smi', gpus: rows.map(([name, memory]) => `${name}, ${memory}`), driver: rows[0]?.[2] };
  }
  const gpus = procGpus(pe.procNvidia);
  if (gpus.length === 0) return { source: 'none', gpus };
  const version = readText(path.join(pe.procNvidia, 'version'));
  return { source: 'proc', gpus, driver: /Kernel Module\s+(\d+(?:\.\d+)*)/.exec(version ?? '')?.[1] };
}

function procGpus(procNvidia: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(path.join(procNvidia, 'gpus')).sort();
  } catch {
    return [];
  }
  return entries.map((e) => /^Model:\s*(.+)$/m.exec(readText(path.join(procNvidia, 'gpus', e, 'information')) ?? '')?.[1]?.trim() ?? `GPU at ${e}`);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Free memory of the GPU that CUDA numbers 0 (the first of CUDA_VISIBLE_DEVICES when set, which
 * nvidia-smi takes by index or UUID), in bytes; undefined when nvidia-smi cannot tell.
 */
export function freeGpuBytes(run: Runner = runCommand, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const visible = env.CUDA_VISIBLE_DEVICES?.split(',')[0]?.trim();
  const select = visible ? ['-i', visible] : [];
  const r = run('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits', ...select]);
  const mib = r.status === 0 ? Number(r.stdout.trim().split('\n')[0]) : NaN;
  return Number.isFinite(mib) && mib > 0 ? mib * 2 ** 20 : undefined;
}
