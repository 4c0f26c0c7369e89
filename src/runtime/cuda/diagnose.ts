/**
 * Judging a probe of the machine (probe.ts): can `--device cuda` run here, and if not, what is
 * wrong and which command fixes each problem. Pure functions of the probe, so every branch is
 * tested on fake machines; `cnnc doctor` prints the result, `--device cuda` acts on it.
 */
import { CUDA_LIBRARIES, onLoaderPath, type CudaLibrary, type Place } from './libraries.ts';
import type { CudaProbe, GpuProbe, Hit } from './probe.ts';
import { installRefusal, PINNED, PROVIDER_ORT_VERSION, PROVIDER_SPEC, providerProblem } from './provider.ts';

/** CUDA 13 needs an NVIDIA driver of the 580 series or newer. */
export const MIN_DRIVER = 580;

export interface Problem {
  what: string;
  /** The command (or step) that fixes it. */
  fix: string;
}

export interface LibraryFinding {
  lib: CudaLibrary;
  /** Where the run loads it from (see findLibraries), if found. */
  hit?: Hit;
  /** Found where the loader looks as the process stands; false: in a folder the run adds to LD_LIBRARY_PATH. */
  loadable: boolean;
}

export interface Diagnosis {
  usable: boolean;
  problems: Problem[];
  /** Optional libraries that are missing, and what that costs. */
  notes: string[];
  libraries: LibraryFinding[];
  /** Folders of libraries found off the loader path, appended to LD_LIBRARY_PATH in this order. */
  addToLibraryPath: string[];
}

export const INSTALL_PROVIDER = 'npx cnnc cuda install';
const DRIVER_FIX = `install the NVIDIA driver (${MIN_DRIVER} or newer); in a container, start it with GPU access (docker run --gpus all)`;

export function diagnose(p: CudaProbe): Diagnosis {
  const refusal = installRefusal(p.ort, p.platform, p.arch);
  const problems: Problem[] = [];
  if (refusal) problems.push(refusal);
  if (p.ort && p.provider && p.platform === 'linux' && p.arch === 'x64') {
    const what = providerProblem(p.provider, p.ort.version, PINNED);
    if (what) problems.push({ what, fix: p.ort.version === PROVIDER_ORT_VERSION ? INSTALL_PROVIDER : `after that, ${INSTALL_PROVIDER}` });
  }
  const { libraries, addToLibraryPath } = findLibraries(p);
  problems.push(...gpuProblems(p.gpu), ...libraryProblems(libraries));
  const notes = libraries.filter((f) => !f.hit && f.lib.optional).map((f) => `${f.lib.soname} (${f.lib.role}) not found: ${f.lib.optional}`);
  return { usable: problems.length === 0, problems, notes, libraries, addToLibraryPath };
}

/**
 * Which folders a run must add to LD_LIBRARY_PATH (those of libraries the loader does not find as
 * it stands, in search order), and where each library then loads from. The folders go after the
 * user's own LD_LIBRARY_PATH but before the loader's cache, so they may also shadow a copy there:
 * the finding says where the run will really load it from.
 */
function findLibraries(p: CudaProbe): { libraries: LibraryFinding[]; addToLibraryPath: string[] } {
  const rank = (place: Place) => p.places.findIndex((x) => x.dir === place.dir);
  const offPath = CUDA_LIBRARIES.map((lib) => p.hits.filter((h) => h.soname === lib.soname))
    .filter((mine) => mine.length > 0 && !mine.some((h) => onLoaderPath(h.place)))
    .map((mine) => mine[0].place);
  const addToLibraryPath = [...new Set(offPath.sort((a, b) => rank(a) - rank(b)).map((place) => place.dir))];
  // The run's search order: LD_LIBRARY_PATH as given and the added folders, the cache, the built-in folders.
  const runPath = [...p.places.filter((x) => x.kind === 'LD_LIBRARY_PATH').map((x) => x.dir), ...addToLibraryPath];
  const order = (h: Hit) => {
    if (h.place.kind === 'LD_LIBRARY_PATH' || addToLibraryPath.includes(h.place.dir)) return runPath.indexOf(h.place.dir);
    return h.place.kind === 'ldconfig' ? runPath.length : h.place.kind === 'system' ? runPath.length + 1 : Infinity;
  };
  const libraries = CUDA_LIBRARIES.map((lib): LibraryFinding => {
    const mine = p.hits.filter((h) => h.soname === lib.soname && order(h) < Infinity);
    // Array.prototype.sort is stable: among equals the search order of the probe stays.
    const hit = mine.sort((a, b) => order(a) - order(b))[0];
    return { lib, hit, loadable: hit !== undefined && onLoaderPath(hit.place) };
  });
  return { libraries, addToLibraryPath };
}

function libraryProblems(found: readonly LibraryFinding[]): Problem[] {
  const missing = found.filter((f) => !f.hit && !f.lib.optional);
  const problems: Problem[] = [];
  if (missing.some((f) => !f.lib.pip)) problems.push({ what: 'libcuda.so.1, the NVIDIA driver\'s CUDA library, is not found', fix: DRIVER_FIX });
  const wheels = missing.filter((f) => f.lib.pip);
  if (wheels.length > 0) {
    const packages = [...new Set(wheels.map((f) => `'${f.lib.pip}'`))].join(' ');
    problems.push({
      what: `${wheels.map((f) => `${f.lib.soname} (${f.lib.role})`).join(', ')} not found`,
      fix: `pip install ${packages} (or NVIDIA's CUDA 13 toolkit and cuDNN 9; see docs/cuda.md)`,
    });
  }
  return problems;
}

function gpuProblems(gpu: GpuProbe): Problem[] {
  const fix = 'check the NVIDIA driver (`nvidia-smi` should list the GPU); in a container, start it with GPU access (docker run --gpus all)';
  if (gpu.source === 'none') return [{ what: 'no NVIDIA GPU is visible (nvidia-smi is not installed and /proc/driver/nvidia lists no GPU)', fix }];
  if (gpu.error) return [{ what: `nvidia-smi fails: ${gpu.error}`, fix }];
  if (gpu.gpus.length === 0) return [{ what: 'nvidia-smi lists no GPU', fix }];
  const major = Number(gpu.driver?.split('.')[0]);
  if (Number.isFinite(major) && major < MIN_DRIVER) {
    return [{ what: `the NVIDIA driver is ${gpu.driver}, older than the ${MIN_DRIVER} that CUDA 13 needs`, fix: `update the NVIDIA driver to ${MIN_DRIVER} or newer` }];
  }
  return [];
}

/** The one line `--device cuda` stops with: the first problem, its fix, and how many more the doctor lists. */
export function refusalLine(d: Diagnosis): string {
  const [first] = d.problems;
  const more = d.problems.length > 1 ? `; \`npx cnnc doctor\` lists ${d.problems.length - 1} more` : '; `npx cnnc doctor` checks everything';
  return `${first.what}; fix: ${first.fix}${more}`;
}

// ---------------------------------------------------------------------------------------------
// The doctor's screen and JSON

const pad = (s: string, n: number) => s.padEnd(n);

export function formatDoctor(p: CudaProbe, d: Diagnosis): string {
  const lines = [
    `node           ${p.node} on ${p.platform} ${p.arch}`,
    `onnxruntime    ${p.ort ? `onnxruntime-node ${p.ort.version} in ${p.ort.root} (the CPU provider is built in)` : 'onnxruntime-node not found'}`,
    `CUDA provider  ${PROVIDER_SPEC}, for ONNX Runtime ${PROVIDER_ORT_VERSION}${p.provider ? `, in ${p.provider.binDir}` : ''}`,
    ...providerLines(p),
    'libraries      (the loader\'s path first; the others cnnc adds to LD_LIBRARY_PATH when it runs)',
    ...d.libraries.map(libraryLine),
    ...searchedLines(p),
    `GPUs           ${gpuLine(p.gpu)}`,
    '',
    d.usable ? `--device cuda: usable (${p.gpu.gpus.join('; ')})` : '--device cuda: not usable here (--device auto runs on the CPU)',
    ...d.problems.flatMap((x) => [`  - ${x.what}`, `    fix: ${x.fix}`]),
    ...d.notes.map((n) => `  note: ${n}`),
  ];
  return lines.join('\n') + '\n';
}

function providerLines(p: CudaProbe): string[] {
  if (!p.provider) return [];
  const width = Math.max(...Object.keys(p.provider.files).map((n) => n.length)) + 2;
  return Object.entries(p.provider.files).map(([name, f]) =>
    `  ${pad(name, width)} ${f ? `present, ${megabytes(f.size)}${f.sha256 ? `, sha256 ${f.sha256 === PINNED.files[name] ? 'matches the pin' : 'DIFFERS from the pin'}` : ''}` : 'missing'}`);
}

const megabytes = (bytes: number) => (bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`);

const placeName = (place: Place) => (place.kind === 'pip' ? `pip, ${place.python}` : place.kind);

function libraryLine(f: LibraryFinding): string {
  const where = !f.hit ? (f.lib.optional ? 'not found (optional)' : 'NOT FOUND')
    : `${f.hit.path} (${placeName(f.hit.place)}${f.loadable ? '' : '; added to LD_LIBRARY_PATH at run time'})`;
  return `  ${pad(f.lib.soname, 19)} ${pad(f.lib.role, 16)} ${where}`;
}

/** Where the search went, grouped by kind, so an empty LD_LIBRARY_PATH or a Python without wheels shows. */
function searchedLines(p: CudaProbe): string[] {
  const dirs = (kind: Place['kind']) => p.places.filter((x) => x.kind === kind).map((x) => x.dir);
  const pythons = p.pythons.map((py) => `${py.executable ?? py.command}${py.error ? ` (failed: ${py.error})` : py.nvidia.length ? '' : ' (no nvidia wheels)'}`);
  const lines = [
    `LD_LIBRARY_PATH: ${p.ldLibraryPath.join(':') || '(not set)'}`,
    `ldconfig cache: ${p.ldconfig ? 'read' : 'could not run ldconfig -p'}`,
    `system folders: ${dirs('system').join(' ')}`,
    `pip wheels (nvidia/*/lib) of: ${pythons.join(', ') || 'no python found'}`,
    ...(['conda', 'CUDA_HOME', 'CUDA_PATH', 'CUDA toolkit'] as const).filter((k) => dirs(k).length).map((k) => `${k}: ${dirs(k).join(' ')}`),
  ];
  return ['  searched:', ...lines.map((l) => `    ${l}`)];
}

function gpuLine(gpu: GpuProbe): string {
  if (gpu.source === 'none') return 'nvidia-smi not installed, and no GPU in /proc/driver/nvidia: no NVIDIA GPU visible';
  if (gpu.error) return `nvidia-smi fails: ${gpu.error}`;
  const via = gpu.source === 'proc' ? ' (from /proc/driver/nvidia; nvidia-smi not installed)' : '';
  return `${gpu.gpus.length ? gpu.gpus.join('; ') : 'none listed'}${gpu.driver ? `, driver ${gpu.driver}` : ''}${via}`;
}

/** The same for tools: stable field names, paths as found. */
export function doctorJson(p: CudaProbe, d: Diagnosis): object {
  return {
    usable: d.usable,
    node: p.node, platform: p.platform, arch: p.arch,
    onnxruntime: p.ort ? { version: p.ort.version, root: p.ort.root } : null,
    provider: {
      package: PROVIDER_SPEC, onnxruntime: PROVIDER_ORT_VERSION, dir: p.provider?.binDir ?? null,
      files: p.provider?.files ?? null, record: p.provider?.record ?? null,
    },
    libraries: d.libraries.map((f) => ({
      soname: f.lib.soname, role: f.lib.role, optional: Boolean(f.lib.optional),
      path: f.hit?.path ?? null, place: f.hit ? placeName(f.hit.place) : null, loadable: f.loadable,
    })),
    searched: p.places, ldconfig: p.ldconfig, pythons: p.pythons,
    gpu: p.gpu,
    problems: d.problems, notes: d.notes, addToLibraryPath: d.addToLibraryPath,
  };
}
