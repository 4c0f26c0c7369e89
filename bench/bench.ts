/**
 * `npm run bench`: (a) parse + check times, (b) compile time and ONNX size of every example,
 * (c) CPU inference throughput of cnnc (onnxruntime-node) against PyTorch eager, interleaved round
 * by round (A B A B ...) with PyTorch as a long-lived subprocess (bench/torch_bench.py). Prints
 * Markdown and writes it into BENCHMARKS.md between `<!-- bench:inference:start -->` and
 * `<!-- bench:inference:end -->`, leaving the rest of the file alone.
 *
 * Environment: BENCH_ROUNDS (default 10), BENCH_SECONDS (target seconds per measurement, default 0.8),
 * BENCH_ONLY=inference|compile|parse (one part), BENCH_ROWS=003,004,resnet18,resnet50 (a subset),
 * BENCH_NO_WRITE=1 (do not touch BENCHMARKS.md), BENCH_ORT_SPINNING=0 (intra-op threads do not spin).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { check } from '../src/index.ts';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { parseBench } from './parse.ts';
import { ortOptions, THREADS } from './bench-options.ts';
import { loadModel, torchModel } from './models.ts';
import { checkEquivalence } from './equivalence.ts';
import { TorchProcess, torchAvailable, TORCH_INSTALL_HINT, type TorchInfo } from './torch-client.ts';
import { machineInfo, median, range, sleep, stats, updateSection, fmt, fmtRatio, withLoad } from './util.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 0.8);
const ONLY = process.env.BENCH_ONLY;
const TARGET = 1.3;
/** A round is quiet when other processes used less than this many cores while either side ran. */
const QUIET = 0.25;
const COMMAND = 'npm run bench';

const out: string[] = [];
const emit = (s = '') => {
  console.log(s);
  out.push(s);
};

// ---------------------------------------------------------------------------------------------
// (b) compile time and model size

function exampleFiles(): string[] {
  const list = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.cnn')).sort().map((f) => `${dir}/${f}`);
  return [...list('examples/tutorials'), ...list('examples/zoo')];
}

function compileBench(): string {
  const rows: string[] = [];
  for (const file of exampleFiles()) {
    const text = readFileSync(file, 'utf8');
    const compileOnce = () => {
      const t0 = performance.now();
      const model = check(text, file).models[0];
      const t1 = performance.now();
      const c = compileInference(model, { file, source: text, seed: model.train.seed ?? 0 });
      return { check: t1 - t0, total: performance.now() - t0, c, model };
    };
    const first = compileOnce(); // warm-up (JIT), not counted
    const runs = first.total > 2000 ? 3 : first.total > 300 ? 5 : 9;
    const samples = Array.from({ length: runs }, compileOnce);
    const total = stats(samples.map((s) => s.total));
    const checkMs = median(samples.map((s) => s.check));
    const { c, model } = first;
    rows.push(`| ${file} | ${model.name} | ${model.totals.trainable.toLocaleString('en-US')} | ${c.ops} | ${fmt(checkMs, 1)} | ${fmt(total.median, 1)} | ${fmt(total.min, 1)} – ${fmt(total.max, 1)} | ${runs} | ${(c.bytes.byteLength / 1e6).toFixed(2)} MB (${c.bytes.byteLength.toLocaleString('en-US')} B) |`);
  }
  return [
    '| file | model | parameters | ONNX nodes | check ms | compile ms (median) | range ms | runs | .onnx size |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// (c) inference

interface Row {
  key: string;
  file: string;
  batch: number;
}

const ALL_ROWS: Row[] = [
  { key: '003', file: 'examples/tutorials/003_mnist.cnn', batch: 256 },
  { key: '004', file: 'examples/tutorials/004_fashion_mnist.cnn', batch: 256 },
  { key: 'resnet18', file: 'examples/zoo/resnet18.cnn', batch: 8 },
  { key: 'resnet50', file: 'examples/zoo/resnet50.cnn', batch: 8 },
];

interface Prepared {
  row: Row;
  name: string;
  session: ort.InferenceSession;
  feeds: Record<string, ort.Tensor>;
  iters: number;
  torchId?: string;
}

async function timeOrt(p: Prepared, iters: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    await p.session.run(p.feeds);
    times.push((performance.now() - t) / 1000);
  }
  return times;
}

async function inferenceBench(torch: TorchProcess | null): Promise<{ table: string; rounds: string; ratios: number[]; equivalence: string[] }> {
  const equivalence: string[] = [];
  const keys = process.env.BENCH_ROWS?.split(',');
  const rows = ALL_ROWS.filter((r) => !keys || keys.includes(r.key));
  const prepared: Prepared[] = [];
  for (const row of rows) {
    const model = loadModel(row.file);
    const compiled = compileInference(model, { seed: 0 });
    const session = await ort.InferenceSession.create(compiled.bytes, ortOptions());
    const dims = [row.batch, ...model.input!];
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 0.5;
    const feeds = { input: new ort.Tensor('float32', data, dims) };
    const y = (await session.run(feeds)).logits;
    if (y.dims.join() !== [row.batch, ...model.output!].join()) throw new Error(`${row.file}: cnnc output ${y.dims.join('x')}`);
    const p: Prepared = { row, name: model.name, session, feeds, iters: 1 };
    if (torch) {
      // Same weights in both, same outputs (throws otherwise); then the benchmark copy.
      const eq = await checkEquivalence(torch, row.file, model, 2);
      equivalence.push(`${model.name}: max |diff| ${eq.maxAbsDiff.toExponential(1)} (relative ${eq.relative.toExponential(1)})`);
      p.torchId = row.key;
      const { params } = await torch.send<{ params: number }>({ cmd: 'load', id: row.key, ...torchModel(row.file, model), batch: row.batch });
      if (params !== model.totals.trainable) throw new Error(`${row.file}: PyTorch has ${params} parameters, cnnc ${model.totals.trainable}`);
    }
    // Warm-up (not counted), and an iteration count aiming at SECONDS per measurement.
    const warm = await timeOrt(p, 3);
    if (torch) await torch.send({ cmd: 'infer', id: p.torchId, iters: 3 });
    p.iters = Math.max(5, Math.round(SECONDS / Math.min(...warm)));
    prepared.push(p);
  }

  const results = new Map<string, { ours: number[]; theirs: number[]; ratios: number[]; quiet: number[] }>();
  for (const p of prepared) results.set(p.row.key, { ours: [], theirs: [], ratios: [], quiet: [] });
  const roundLines: string[] = [];
  const pids = [torch?.pid];
  for (let round = 0; round < ROUNDS; round++) {
    const cells: string[] = [];
    for (const p of prepared) {
      const r = results.get(p.row.key)!;
      // Alternate which side goes first, so neither always follows the other.
      const order = round % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours'];
      let ours = NaN;
      let theirs = NaN;
      let load = 0;
      for (const side of order) {
        await sleep(100); // lets the other side's spinning threads go idle
        if (side === 'ours') {
          const m = await withLoad(pids, () => timeOrt(p, p.iters));
          ours = p.row.batch / median(m.value);
          load = Math.max(load, m.others);
        } else if (torch) {
          const m = await withLoad(pids, () => torch.send<{ times: number[] }>({ cmd: 'infer', id: p.torchId, iters: p.iters }));
          theirs = p.row.batch / median(m.value.times);
          load = Math.max(load, m.others);
        }
      }
      r.ours.push(ours);
      if (torch) {
        r.theirs.push(theirs);
        r.ratios.push(ours / theirs);
        if (load < QUIET) r.quiet.push(ours / theirs);
      }
      cells.push(torch ? `${fmt(ours, 1)} / ${fmt(theirs, 1)} = ${fmtRatio(ours / theirs)} (${load.toFixed(2)})` : `${fmt(ours, 1)} (${load.toFixed(2)})`);
    }
    roundLines.push(`| ${round + 1} | ${cells.join(' | ')} |`);
    process.stderr.write(`round ${round + 1}/${ROUNDS}: ${cells.join('; ')}\n`);
  }

  const lines = [
    '| model | input × batch | iters/round | cnnc images/s median (range) | PyTorch images/s median (range) | cnnc/PyTorch: median of per-round ratios (range) | quiet rounds: median ratio (n) | ≥ 1.3x |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  const allRatios: number[] = [];
  for (const p of prepared) {
    const r = results.get(p.row.key)!;
    const o = stats(r.ours);
    const shape = `${(p.feeds.input.dims.slice(1) as number[]).join('×')} × ${p.row.batch}`;
    const name = `${p.name} (${p.row.file.split('/').pop()})`;
    if (torch) {
      const t = stats(r.theirs);
      const q = stats(r.ratios);
      const quiet = r.quiet.length ? `${fmtRatio(median(r.quiet))} (${r.quiet.length})` : '— (0)';
      allRatios.push(q.median);
      lines.push(`| ${name} | ${shape} | ${p.iters} | ${fmt(o.median, 1)} (${range(o, 1)}) | ${fmt(t.median, 1)} (${range(t, 1)}) | **${fmtRatio(q.median)}** (${fmtRatio(q.min)} – ${fmtRatio(q.max)}) | ${quiet} | ${q.median >= TARGET ? 'yes' : 'no'} |`);
    } else {
      lines.push(`| ${name} | ${shape} | ${p.iters} | ${fmt(o.median, 1)} (${range(o, 1)}) | — | — | — | — |`);
    }
  }
  const header = `| round | ${prepared.map((p) => `${p.name} b${p.row.batch}: cnnc / PyTorch = ratio (others' load)`).join(' | ')} |`;
  const rounds = [header, `|---|${prepared.map(() => '---:').join('|')}|`, ...roundLines].join('\n');
  for (const p of prepared) await p.session.release();
  return { table: lines.join('\n'), rounds, ratios: allRatios, equivalence };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const avail = torchAvailable();
  let torch: TorchProcess | null = null;
  let info: TorchInfo | null = null;
  if (avail.ok) {
    torch = new TorchProcess(THREADS);
    info = await torch.info();
  } else {
    console.error(`\n*** PyTorch is missing: ${avail.reason}.\n*** The comparison columns stay empty; ${TORCH_INSTALL_HINT}\n`);
  }

  emit('## Inference benchmarks');
  emit();
  emit(`Command: \`${COMMAND}\` (bench/bench.ts; ${ROUNDS} rounds). ${new Date().toISOString().slice(0, 10)}.`);
  emit();
  emit(machineInfo(info, THREADS));
  emit();
  if (!torch) emit(`**PyTorch was not available** (${avail.ok ? '' : avail.reason}); ${TORCH_INSTALL_HINT}.\n`);

  if (!ONLY || ONLY === 'parse') {
    emit('### Parse + check');
    emit();
    emit('`check()` on warm code (parse, expand, shapes, counts, receptive fields); bench/parse.ts.');
    emit();
    emit(parseBench());
    emit();
  }
  if (!ONLY || ONLY === 'compile') {
    emit('### Compile time and model size');
    emit();
    emit('Check + ONNX emission in memory (`compileInference`, which `cnnc compile` then writes to disk), after one warm-up run. Most of the time of the large models is drawing their initial weights; the .onnx size is the file `cnnc compile` writes.');
    emit();
    emit(compileBench());
    emit();
  }
  if (!ONLY || ONLY === 'inference') {
    emit('### Inference throughput on CPU (2 threads)');
    emit();
    emit('cnnc: the compiled ONNX model on onnxruntime-node (intraOpNumThreads 2, interOpNumThreads 1, sequential, graph optimisation `all`). ' +
      'PyTorch: the same architecture, the model.py `cnnc export --torch` writes (parameter counts and the output shape checked against cnnc, outputs checked equal with shared weights by bench/equivalence.ts), eager, `torch.set_num_threads(2)`, `model.eval()`, `torch.inference_mode()`. ' +
      'Each round times cnnc then PyTorch (the order alternates per round) on the same fixed random batch, the same number of iterations each, after 3 warm-up runs; a round\'s throughput is batch / median iteration time. ' +
      'Ratio = cnnc images/s ÷ PyTorch images/s, computed per round; the medians and ranges are over rounds. ' +
      `"Others' load" is the CPU time other processes on the machine used while the round ran, in cores (from /proc/stat, minus both benchmark processes); a round is *quiet* when it stayed under ${QUIET} on both sides. ` +
      'PyTorch (OpenMP) loses far more than onnxruntime when another process takes a core, so the ratio over quiet rounds is the fairer comparison.');
    emit();
    const r = await inferenceBench(torch);
    emit(r.table);
    emit();
    if (r.equivalence.length) {
      emit(`Equivalence with shared random weights and batch-norm statistics, batch 2, checked before timing: ${r.equivalence.join('; ')}.`);
      emit();
    }
    emit('Per round (images/s):');
    emit();
    emit(r.rounds);
    emit();
  }
  if (torch) await torch.close();
  if (!process.env.BENCH_NO_WRITE) {
    updateSection('BENCHMARKS.md', 'bench:inference', out.join('\n'));
    console.error('BENCHMARKS.md updated (bench:inference section)');
  }
}

await main();
