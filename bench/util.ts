/** Shared helpers of the benchmarks: statistics, formatting, machine description, BENCHMARKS.md sections. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { execSync } from 'node:child_process';
import type { TorchInfo } from './torch-client.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
}

export const stats = (xs: readonly number[]): Stats => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

export const fmt = (x: number, digits = 1) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';
export const fmtRatio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '—');
export const range = (s: Stats, digits = 1) => `${fmt(s.min, digits)} – ${fmt(s.max, digits)}`;
export const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

function cpuModel(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.*)$/m.exec(info);
    // A virtual machine's model name can be as short as "AMD EPYC"; family and model tell the generation.
    const family = /^cpu family\s*:\s*(\d+)$/m.exec(info), model = /^model\s*:\s*(\d+)$/m.exec(info);
    if (m) return m[1].trim() + (family && model ? ` (family ${family[1]}, model ${model[1]})` : '');
  } catch { /* not Linux */ }
  return cpus()[0]?.model ?? 'unknown';
}

/**
 * The CPU's vector extensions from /proc/cpuinfo (SSE4.2 and up: AVX, AVX2, FMA, AVX-512's
 * subsets, VNNI, AMX), which decide the kernels onnxruntime (MLAS) and PyTorch (oneDNN) run.
 */
function vectorExtensions(): string {
  try {
    const m = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    const ext = (m?.[1] ?? '').split(/\s+/).filter((f) => /^(sse4_2|avx\w*|fma|amx\w*)$/.test(f));
    return ext.length ? ext.join(' ') : 'none of AVX, FMA, AMX';
  } catch {
    return 'unknown (no /proc/cpuinfo)';
  }
}

function nproc(): string {
  try {
    return execSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    return String(cpus().length);
  }
}

function ortVersion(): string {
  try {
    return (JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The BLAS/LAPACK/MKL-DNN/OpenMP settings from torch.__config__.show(). */
function configFlags(config: string): string {
  const flags = [...config.matchAll(/\b(BLAS_INFO|LAPACK_INFO|USE_MKLDNN|USE_OPENMP|USE_MKL)=([^,\s]+)/g)].map((m) => `${m[1]}=${m[2]}`);
  const cpu = /CPU capability usage: (\S+)/.exec(config);
  return [...flags, ...(cpu ? [`CPU capability ${cpu[1]}`] : [])].join(', ');
}

/** One Markdown paragraph describing the machine and the versions. */
export function machineInfo(torch: TorchInfo | null, threads: number): string {
  const lines = [
    `Machine: ${cpuModel()}, vector extensions: ${vectorExtensions()}; nproc ${nproc()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}; ` +
      `shared with other work, so throughput can swing (runs are interleaved for that reason).`,
    `Versions: Node ${process.version}, onnxruntime-node ${ortVersion()}` +
      (torch ? `, Python ${torch.python}, PyTorch ${torch.torch} (Debian python3-torch; ${threads} threads, ` +
        `BLAS: ${torch.openblas ? 'OpenBLAS' : 'not OpenBLAS'}${torch.blas_libraries.length ? ` — ${torch.blas_libraries.map((p) => p.split('/').pop()).join(', ')}` : ''}; ` +
        `oneDNN (mkldnn) ${torch.mkldnn ? 'available' : 'not available'}; torch.__config__.show(): ${configFlags(torch.config)})` : ', PyTorch not available') + '.',
  ];
  return lines.join('\n');
}

/** Replaces the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` (appending the markers if absent). */
export function updateSection(file: string, name: string, body: string): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

/** Busy CPU time of the whole machine (all cores), in seconds, from /proc/stat; NaN off Linux. */
function machineBusy(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) of a process and its threads, from /proc/PID/stat. */
function processCpu(pid: number | 'self'): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * Measures how much CPU everything else on the machine used while `fn` ran, in cores (0 = the
 * machine was ours, 1 = another process kept one core busy), so noisy rounds can be told apart.
 */
export async function withLoad<T>(pids: (number | undefined)[], fn: () => Promise<T>): Promise<{ value: T; others: number }> {
  const ids = [...pids.filter((p): p is number => p !== undefined), 'self' as const];
  const b0 = machineBusy();
  const c0 = ids.map(processCpu);
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const ours = ids.map(processCpu).reduce((a, c, i) => a + (c - c0[i]), 0);
  const others = Math.max(0, (machineBusy() - b0 - ours) / wall);
  return { value, others };
}

interface ProfileEvent { cat: string; name: string; dur: number; args?: { op_name?: string; thread_scheduling_stats?: { main_thread?: { block_size?: number[] } } } }

const nodeEvents = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[])
  .filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'))
  .map((e) => ({ ...e, node: e.name.replace(/_kernel_time$/, '').replace(/ \(.*\)$/, '') }));

/**
 * Kernel time by layer: each node's median over the profiled runs, so that a run in which another
 * process held the core counts once rather than in full, summed per part: a layer's forward
 * (`conv2`), its backward (`conv2/grad`), the loss, the optimizer update (`optim`). Also the nodes
 * that hand the intra-op threads more than one parallel section per run (ConvTranspose: one per
 * image), each of which wakes the sleeping threads when spinning is off.
 */
export function profileByLayer(file: string): string[] {
  const events = nodeEvents(file);
  const times = new Map<string, number[]>(), sections = new Map<string, number>();
  for (const e of events) {
    times.set(e.node, [...(times.get(e.node) ?? []), e.dur]);
    sections.set(e.node, e.args?.thread_scheduling_stats?.main_thread?.block_size?.length ?? 0);
  }
  const part = (n: string) => (n.startsWith('optim') ? 'optim' : n.startsWith('loss') ? 'loss' : n.includes('/grad') ? `${n.split('/')[0]}/grad` : n.split('/')[0]);
  const parts = new Map<string, number>();
  let total = 0;
  for (const [n, ts] of times) {
    const us = median(ts);
    parts.set(part(n), (parts.get(part(n)) ?? 0) + us);
    total += us;
  }
  const fmtMs = (us: number) => (us / 1000).toFixed(2).padStart(7);
  const many = [...sections].filter(([, k]) => k > 1).sort((a, b) => b[1] - a[1]);
  return [`kernel time by layer (sum of per-node medians: ${fmtMs(total).trim()} ms per run):`]
    .concat([...parts].sort((a, b) => b[1] - a[1]).map(([p, us]) => `  ${p.padEnd(24)} ${fmtMs(us)} ms  ${((100 * us) / total).toFixed(1).padStart(5)}%`))
    .concat(many.length ? ['nodes with several parallel sections per run:', ...many.map(([n, k]) => `  ${String(k).padStart(4)}  ${n}`)] : []);
}

/** ORT's profile JSON summed by op type: lines "Op  ms-per-run  share". */
export function summariseProfile(file: string, runs: number): string[] {
  const events = nodeEvents(file);
  const byOp = new Map<string, number>();
  let total = 0;
  for (const e of events) {
    const op = e.args?.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    total += e.dur;
  }
  const lines = [...byOp].sort((a, b) => b[1] - a[1])
    .map(([op, us]) => `  ${op.padEnd(24)} ${(us / 1000 / runs).toFixed(2).padStart(9)} ms  ${((100 * us) / total).toFixed(1).padStart(5)}%`)
    .concat(`  ${'all kernels'.padEnd(24)} ${(total / 1000 / runs).toFixed(2).padStart(9)} ms`);
  if (!process.env.PROFILE_NODES) return lines;
  // PROFILE_NODES=N: also the N slowest nodes, by name.
  const byNode = new Map<string, number>();
  for (const e of events) byNode.set(e.name, (byNode.get(e.name) ?? 0) + e.dur);
  const top = [...byNode].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_NODES));
  return lines.concat('slowest nodes:', ...top.map(([n, us]) => `  ${(us / 1000 / runs).toFixed(2).padStart(7)} ms  ${n.replace(/_kernel_time$/, '')}`));
}
