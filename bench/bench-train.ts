/**
 * `npm run bench:train`: CPU training throughput (images/s, 2 threads) of cnnc's training runner
 * (src/runtime/train-runner.ts: the emitted training-step graph on onnxruntime-node) against
 * PyTorch eager on the same architecture, optimizer, loss and batch size, and the peak memory
 * (RSS) of each. Each side runs in its own long-lived worker process per model (this file with
 * `--worker` for cnnc, bench/torch_bench.py for PyTorch), so their peak RSS is theirs alone and
 * the rounds can be interleaved (A B A B ...). Writes the tables between
 * `<!-- bench:train:start -->` and `<!-- bench:train:end -->` in BENCHMARKS.md.
 *
 * Environment: BENCH_ROUNDS (default 8), BENCH_SECONDS (target seconds per measurement, default 1),
 * BENCH_NO_WRITE=1 (print only), BENCH_TRAIN_MODELS=file.cnn,... (default: the two below).
 */
import { fileURLToPath } from 'node:url';
import { TRAIN_RUNNER_MODULE, type CreateTrainRunner, type StepBatch, type TrainStepRunner } from '../src/runtime/train-step.ts';
import { loadModel, torchModel } from './models.ts';
import { JsonProcess, serveJsonLines, TorchProcess, torchAvailable, TORCH_INSTALL_HINT, type TorchInfo } from './torch-client.ts';
import { fmt, fmtRatio, machineInfo, mb, median, range, sleep, stats, updateSection, withLoad } from './util.ts';

const THREADS = 2;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const QUIET = 0.25;
const COMMAND = 'npm run bench:train';
const MODELS = process.env.BENCH_TRAIN_MODELS?.split(',') ?? ['examples/tutorials/004_fashion_mnist.cnn', 'bench/models/mnist_bn.cnn'];

// ---------------------------------------------------------------------------------------------
// The cnnc worker: one model, one runner, a fixed batch.

async function worker(): Promise<void> {
  let runner: TrainStepRunner | undefined;
  let batch: StepBatch | undefined;
  let lr = 0;
  let step = 0;
  const rss = () => ({ peak: process.resourceUsage().maxRSS * 1024, current: process.memoryUsage().rss });
  const handle = async (msg: Record<string, unknown>): Promise<Record<string, unknown>> => {
    switch (msg.cmd) {
      case 'rss': return rss();
      case 'load': {
        let factory: CreateTrainRunner;
        try {
          const url = new URL(TRAIN_RUNNER_MODULE, new URL('../src/cli/', import.meta.url));
          factory = (await import(url.href) as { createTrainRunner: CreateTrainRunner }).createTrainRunner;
        } catch (e) {
          throw new Error(`the cnnc training runner (src/runtime/train-runner.ts) is not available: ${(e as Error).message}`);
        }
        if (typeof factory !== 'function') throw new Error('src/runtime/train-runner.ts does not export createTrainRunner');
        const model = loadModel(msg.file as string);
        const size = msg.batch as number;
        const config = { ...model.train, batch: size };
        runner = await factory(model, config, { device: 'cpu', threads: msg.threads as number, batch: size });
        const per = model.input!.reduce((a, b) => a * b, 1);
        const x = new Float32Array(size * per);
        for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 12.9898) * 0.8;
        const classes = model.output![0];
        const y = BigInt64Array.from({ length: size }, (_, i) => BigInt((i * 7) % classes));
        batch = { x, y, count: size };
        lr = config.optimizer.lr;
        const state = runner.state();
        let params = 0;
        for (const [name, t] of state) if (!name.startsWith('optim.') && !/running_(mean|var)$/.test(name)) params += t.data.length;
        return { params, trainable: model.totals.trainable, device: runner.device ?? 'cpu' };
      }
      case 'train': {
        if (!runner || !batch) throw new Error('no model loaded');
        const times: number[] = [];
        let loss = NaN;
        for (let i = 0; i < (msg.iters as number); i++) {
          const t = performance.now();
          loss = (await runner.run(batch, lr, step++)).loss;
          times.push((performance.now() - t) / 1000);
        }
        return { times, loss };
      }
      default:
        throw new Error(`unknown command ${String(msg.cmd)}`);
    }
  };
  await serveJsonLines(handle, (e) => e.stack ?? String(e));
  await runner?.dispose?.();
  process.exit(0);
}

class CnncWorker extends JsonProcess {
  constructor() {
    super('cnnc', process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker']);
  }
}

// ---------------------------------------------------------------------------------------------
// The harness.

interface Rss { peak: number; current: number }

interface ModelResult {
  file: string;
  name: string;
  params: number;
  optimizer: string;
  iters: number;
  ours: number[];
  theirs: number[];
  ratios: number[];
  quiet: number[];
  loads: number[];
  rssOurs: { before: Rss; after: Rss };
  rssTheirs?: { before: Rss; after: Rss };
  error?: string;
}

async function benchModel(file: string, withTorch: boolean): Promise<ModelResult> {
  const model = loadModel(file);
  const cfg = model.train;
  const batch = 64;
  const opt = cfg.optimizer;
  const optimizer = opt.kind === 'sgd' ? `sgd lr=${opt.lr} momentum=${opt.momentum}` : `${opt.kind} lr=${opt.lr}`;
  const ours = new CnncWorker();
  const torch = withTorch ? new TorchProcess(THREADS) : null;
  try {
    const rssOursBefore = await ours.send<Rss>({ cmd: 'rss' });
    const loaded = await ours.send<{ params: number; trainable: number }>({ cmd: 'load', file, batch, threads: THREADS });
    if (loaded.params !== model.totals.trainable) throw new Error(`${file}: the cnnc runner holds ${loaded.params} parameters, the checker counts ${model.totals.trainable}`);
    let rssTheirsBefore: Rss | undefined;
    if (torch) {
      rssTheirsBefore = await torch.send<Rss>({ cmd: 'rss' });
      const { params } = await torch.send<{ params: number }>({ cmd: 'load', id: 'm', ...torchModel(file, model), batch, train: { optimizer: opt, loss: cfg.loss } });
      if (params !== model.totals.trainable) throw new Error(`${file}: PyTorch has ${params} parameters, cnnc ${model.totals.trainable}`);
    }
    // Warm-up (not counted); iteration count from the faster side's warm-up.
    const warm = await ours.send<{ times: number[] }>({ cmd: 'train', iters: 5 });
    if (torch) await torch.send({ cmd: 'train', id: 'm', iters: 5 });
    const iters = Math.max(5, Math.round(SECONDS / median(warm.times)));
    const r: ModelResult = {
      file, name: model.name, params: model.totals.trainable, optimizer, iters, ours: [], theirs: [], ratios: [], quiet: [], loads: [],
      rssOurs: { before: rssOursBefore, after: rssOursBefore },
    };
    const pids = [ours.pid, torch?.pid];
    for (let round = 0; round < ROUNDS; round++) {
      let a = NaN;
      let b = NaN;
      let load = 0;
      for (const side of round % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']) {
        await sleep(100);
        if (side === 'ours') {
          const m = await withLoad(pids, () => ours.send<{ times: number[] }>({ cmd: 'train', iters }));
          a = batch / median(m.value.times);
          load = Math.max(load, m.others);
        } else if (torch) {
          const m = await withLoad(pids, () => torch.send<{ times: number[] }>({ cmd: 'train', id: 'm', iters }));
          b = batch / median(m.value.times);
          load = Math.max(load, m.others);
        }
      }
      r.ours.push(a);
      r.theirs.push(b);
      r.ratios.push(a / b);
      r.loads.push(load);
      if (load < QUIET) r.quiet.push(a / b);
      process.stderr.write(`${model.name} round ${round + 1}/${ROUNDS}: cnnc ${fmt(a)} / PyTorch ${fmt(b)} images/s = ${fmtRatio(a / b)} (others' load ${load.toFixed(2)})\n`);
    }
    r.rssOurs.after = await ours.send<Rss>({ cmd: 'rss' });
    if (torch && rssTheirsBefore) r.rssTheirs = { before: rssTheirsBefore, after: await torch.send<Rss>({ cmd: 'rss' }) };
    return r;
  } finally {
    await ours.close();
    await torch?.close();
  }
}

async function main(): Promise<void> {
  const avail = torchAvailable();
  let info: TorchInfo | null = null;
  if (avail.ok) {
    const t = new TorchProcess(THREADS);
    info = await t.info();
    await t.close();
  } else {
    console.error(`\n*** PyTorch is missing: ${avail.reason}.\n*** The comparison columns stay empty; ${TORCH_INSTALL_HINT}\n`);
  }
  const out: string[] = [];
  const emit = (s = '') => {
    console.log(s);
    out.push(s);
  };
  emit('## Training benchmarks');
  emit();
  emit(`Command: \`${COMMAND}\` (bench/bench-train.ts; ${ROUNDS} rounds). ${new Date().toISOString().slice(0, 10)}.`);
  emit();
  emit(machineInfo(info, THREADS));
  emit();
  if (!avail.ok) emit(`**PyTorch was not available** (${avail.reason}); ${TORCH_INSTALL_HINT}.\n`);
  emit('Training steps on CPU with 2 threads, batch 64, cross-entropy, each model\'s own optimizer from its train section (both Adam, lr 1e-3), on one fixed random batch (no data loading, no augmentation). ' +
    'cnnc: `createTrainRunner` from src/runtime/train-runner.ts (the emitted training-step graph on onnxruntime-node, intraOpNumThreads 2), one `run()` per step as `cnnc train` does. ' +
    'PyTorch: the same architecture (the model.py `cnnc export --torch` writes, parameter counts and the output shape checked), eager, `torch.set_num_threads(2)`, `model.train()`, zero_grad / forward / `F.cross_entropy` / backward / `optimizer.step()` / `loss.item()` per step. ' +
    'Each side runs in its own worker process per model; rounds alternate which side goes first, after 5 warm-up steps. A round\'s throughput is 64 / median step time; ratios are per round. ' +
    `"Others' load": CPU used by other processes during the round, in cores; quiet rounds stayed under ${QUIET}. ` +
    'Peak RSS is each worker process\'s maximum resident memory (ru_maxrss) at the end, including its runtime (Node + onnxruntime, or Python + PyTorch); "idle" is its RSS before loading the model.');
  emit();
  const results: ModelResult[] = [];
  for (const file of MODELS) {
    try {
      results.push(await benchModel(file, avail.ok));
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      console.error(`${file}: ${(e as Error).message}`);
      results.push({ file, name: file, params: 0, optimizer: '', iters: 0, ours: [], theirs: [], ratios: [], quiet: [], loads: [], rssOurs: { before: { peak: 0, current: 0 }, after: { peak: 0, current: 0 } }, error: msg });
    }
  }
  emit('| model | parameters | optimizer | steps/round | cnnc images/s median (range) | PyTorch images/s median (range) | cnnc/PyTorch: median of per-round ratios (range) | quiet rounds: median ratio (n) | cnnc peak RSS (idle) | PyTorch peak RSS (idle) |');
  emit('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    if (r.error) {
      emit(`| ${r.name} | — | — | — | not measured: ${r.error} | | | | | |`);
      continue;
    }
    const o = stats(r.ours);
    const rssO = `${mb(r.rssOurs.after.peak)} (${mb(r.rssOurs.before.current)})`;
    if (r.rssTheirs) {
      const t = stats(r.theirs);
      const q = stats(r.ratios);
      const quiet = r.quiet.length ? `${fmtRatio(median(r.quiet))} (${r.quiet.length})` : '— (0)';
      emit(`| ${r.name} (${r.file.split('/').pop()}) | ${r.params.toLocaleString('en-US')} | ${r.optimizer} | ${r.iters} | ${fmt(o.median)} (${range(o)}) | ${fmt(t.median)} (${range(t)}) | **${fmtRatio(q.median)}** (${fmtRatio(q.min)} – ${fmtRatio(q.max)}) | ${quiet} | ${rssO} | ${mb(r.rssTheirs.after.peak)} (${mb(r.rssTheirs.before.current)}) |`);
    } else {
      emit(`| ${r.name} (${r.file.split('/').pop()}) | ${r.params.toLocaleString('en-US')} | ${r.optimizer} | ${r.iters} | ${fmt(o.median)} (${range(o)}) | — | — | — | ${rssO} | — |`);
    }
  }
  emit();
  const measured = results.filter((r) => !r.error);
  if (measured.length) {
    emit('Per round (images/s): cnnc / PyTorch = ratio (others\' load)');
    emit();
    emit(`| round | ${measured.map((r) => r.name).join(' | ')} |`);
    emit(`|---|${measured.map(() => '---:').join('|')}|`);
    for (let i = 0; i < ROUNDS; i++) {
      emit(`| ${i + 1} | ${measured.map((r) => `${fmt(r.ours[i])} / ${fmt(r.theirs[i])} = ${fmtRatio(r.ratios[i])} (${r.loads[i].toFixed(2)})`).join(' | ')} |`);
    }
    emit();
  }
  if (!process.env.BENCH_NO_WRITE) {
    updateSection('BENCHMARKS.md', 'bench:train', out.join('\n'));
    console.error('BENCHMARKS.md updated (bench:train section)');
  }
}

if (process.argv[2] === '--worker') await worker();
else await main();
