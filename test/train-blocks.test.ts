/**
 * Training in blocks of K steps per call (src/runtime/blocks.ts, the runner's runBlock over the
 * K-step Loop graph): on the CPU a blocked run ends bit-identical to the same run in single steps,
 * across epoch boundaries, a partial last batch, a warm-up schedule, evaluation and checkpoints,
 * resumed mid-run and stopped by Ctrl-C; a device out of memory is one line. The real
 * onnxruntime runner on a small conv net with batch norm and dropout.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import type { CheckedModel } from '../src/compiler/model.ts';
import { UserError } from '../src/errors.ts';
import { chooseStepsPerCall, epochBlocks, outOfMemoryError } from '../src/runtime/blocks.ts';
import { loadCheckpoint } from '../src/runtime/checkpoint.ts';
import { freeGpuBytes } from '../src/runtime/cuda/probe.ts';
import { batches, seededRandom, type Dataset } from '../src/runtime/dataset.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import type { TrainStepRunner } from '../src/runtime/train-step.ts';
import { train, type LogRecord, type ProgressOutput, type TrainOptions } from '../src/runtime/trainer.ts';
import { stepsPerCall } from '../src/cli/options.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cnnc-blocks-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

// 50 samples in batches of 8: 7 steps an epoch, the last of 2 samples. Warm-up over the first epoch.
const MODEL = `model Tiny {
  input 1x4x4
  conv 4 3x3 pad=1 -> bn -> relu -> flatten -> dropout 0.2 -> dense 3
  train {
    optimizer: adam lr=0.02
    schedule: cosine warmup=1
    augment: flip=on crop=1
    batch: 8
    epochs: 3
    seed: 3
  }
}
`;

function tinyModel(): CheckedModel {
  const r = check(MODEL, 'tiny.cnn');
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map((d) => d.message).join('\n'));
  return r.models[0];
}

/** Class c lights up row c of a 4x4 image, plus noise. */
function synthetic(size: number, seed: number): Dataset {
  const rand = seededRandom(seed);
  const images = new Uint8Array(size * 16), labels = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    labels[i] = i % 3;
    for (let p = 0; p < 16; p++) images[i * 16 + p] = Math.floor(rand() * 100) + (Math.floor(p / 4) === i % 3 ? 120 : 0);
  }
  return { source: `synthetic-${seed}`, size, shape: [1, 4, 4], classes: ['a', 'b', 'c'], images, labels };
}

function sink(): ProgressOutput & { text: string } {
  const out = { text: '', isTTY: false, write(s: string) { out.text += s; return true; } };
  return out;
}

/** The real runner, with every call recorded (`run 3`, `block 7+4`) and a hook before each block. */
async function recordingRunner(model: CheckedModel, before?: (step: number, steps: number) => void) {
  const runner = await OrtTrainRunner.create(model, model.train, { device: 'cpu', threads: 1, batch: model.train.batch });
  const calls: string[] = [];
  const run = runner.run.bind(runner), runBlock = runner.runBlock.bind(runner);
  runner.run = (b, lr, step) => { calls.push(`run ${step}`); return run(b, lr, step); };
  runner.runBlock = (b, lrs, step) => {
    calls.push(`block ${step}+${b.steps}`);
    before?.(step, b.steps);
    return runBlock(b, lrs, step);
  };
  return { runner, calls };
}

async function runTraining(outDir: string, runner: TrainStepRunner, extra: Partial<TrainOptions> = {}) {
  const model = tinyModel(), log = sink();
  const result = await train({
    model, config: model.train, runner, trainSet: synthetic(50, 1), testSet: synthetic(21, 2), outDir, log, logEvery: 3, ...extra,
  });
  return { result, log };
}

const readLog = (dir: string): LogRecord[] =>
  readFileSync(join(dir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogRecord);
const withoutTiming = (records: LogRecord[]) => records.map(({ images_per_s: _i, elapsed: _e, ...rest }) => rest);

async function expectSameTensors(a: string, b: string) {
  const ca = await loadCheckpoint(a), cb = await loadCheckpoint(b);
  expect([...cb.tensors.keys()]).toEqual([...ca.tensors.keys()]);
  for (const [name, t] of ca.tensors) {
    const u = cb.tensors.get(name)!;
    expect(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${name} differs`).toBe(true);
  }
  expect((cb.meta as { lossTrace: unknown }).lossTrace).toEqual((ca.meta as { lossTrace: unknown }).lossTrace);
}

/** The uninterrupted single-step run every blocked run is compared with. */
let straight: Promise<string> | undefined;
function straightRun(): Promise<string> {
  straight ??= (async () => {
    const dir = tempDir();
    const { runner, calls } = await recordingRunner(tinyModel());
    await runTraining(dir, runner);
    expect(calls).toEqual(Array.from({ length: 21 }, (_, i) => `run ${i}`));
    await runner.dispose();
    return dir;
  })();
  return straight;
}

describe('blocked training on the CPU', () => {
  it('blocks of 4 and auto blocks end bit-identical to single steps: state, best checkpoint, log and curve', async () => {
    const single = await straightRun();
    for (const [k, expected] of [
      [4, ['block 0+4', 'block 4+2', 'block 6+1', 'block 7+4', 'block 11+2', 'block 13+1', 'block 14+4', 'block 18+2', 'block 20+1']],
      ['auto', ['block 0+6', 'block 6+1', 'block 7+6', 'block 13+1', 'block 14+6', 'block 20+1']],
    ] as const) {
      const dir = tempDir();
      const { runner, calls } = await recordingRunner(tinyModel());
      const { result, log } = await runTraining(dir, runner, { stepsPerCall: k });
      // Blocks end at each epoch's end; the partial last batch (2 samples) is a block of its own.
      expect(calls, String(k)).toEqual(expected);
      expect(result.steps).toBe(21);
      expect(log.text).toMatch(k === 4 ? /; 4 steps per call \(--steps-per-call\)\n/ : /; 32 steps per call \(input blocks of 18 kB; budget 256 MB/);
      await expectSameTensors(join(single, 'last.ckpt'), join(dir, 'last.ckpt'));
      await expectSameTensors(join(single, 'best.ckpt'), join(dir, 'best.ckpt'));
      expect(withoutTiming(readLog(dir))).toEqual(withoutTiming(readLog(single)));
      await runner.dispose();
    }
  }, 60_000);

  it('Ctrl-C stops after the running block with a mid-epoch checkpoint; --resume with another K ends bit-identical', async () => {
    const single = await straightRun();
    const dir = tempDir();
    const others = process.listeners('SIGINT'); // the test runner's, set aside while a synthetic SIGINT is emitted
    for (const l of others) process.off('SIGINT', l);
    try {
      const { runner, calls } = await recordingRunner(tinyModel(), (step) => { if (step === 7) process.emit('SIGINT'); });
      const { result, log } = await runTraining(dir, runner, { stepsPerCall: 4, handleSigint: true });
      expect(calls).toEqual(['block 0+4', 'block 4+2', 'block 6+1', 'block 7+4']);
      expect(result.interrupted).toBe(true);
      expect(result.steps).toBe(11); // the whole block 7-10 ran
      expect(log.text).toContain('stopping after this block of steps and saving a checkpoint (Ctrl-C again to abort)');
      expect(log.text).toMatch(/stopped at epoch 2, step 11; checkpoint .*last\.ckpt/);
      const meta = (await loadCheckpoint(join(dir, 'last.ckpt'))).meta as { epoch: number; batch: number; step: number };
      expect(meta).toMatchObject({ epoch: 1, batch: 4, step: 11 });
      await runner.dispose();
    } finally {
      for (const l of others) process.on('SIGINT', l);
    }
    const { runner, calls } = await recordingRunner(tinyModel());
    const { result } = await runTraining(dir, runner, { stepsPerCall: 3, resume: true });
    expect(calls).toEqual(['block 11+2', 'block 13+1', 'block 14+3', 'block 17+3', 'block 20+1']);
    expect(result.interrupted).toBe(false);
    await expectSameTensors(join(single, 'last.ckpt'), join(dir, 'last.ckpt'));
    await expectSameTensors(join(single, 'best.ckpt'), join(dir, 'best.ckpt'));
    expect(withoutTiming(readLog(dir))).toEqual(withoutTiming(readLog(single)));
    await runner.dispose();
  }, 60_000);
});

// What ONNX Runtime's CUDA provider says when its arena cannot grow (the form of bfc_arena.cc's message).
const ORT_OOM = "Non-zero status code returned while running Conv node. Name:'conv1 (tiny.cnn:3:3)' Status Message: " +
  '/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:359 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool) ' +
  'Failed to allocate memory for requested buffer of size 411041792\n';

describe('a device out of memory', () => {
  it('is one line saying what to try, and the last checkpoint stays as it was', async () => {
    const dir = tempDir();
    const real = await OrtTrainRunner.create(tinyModel(), tinyModel().train, { device: 'cpu', threads: 1, batch: 8 });
    let before: Buffer | undefined;
    // A runner that says it runs on CUDA and fails in the second epoch's first block.
    const gpu: TrainStepRunner = {
      device: 'cuda', labelType: 'int64',
      run: (b, lr, step) => real.run(b, lr, step),
      runBlock: async (b, lrs, step) => {
        if (step === 7) {
          before = readFileSync(join(dir, 'last.ckpt'));
          throw new Error(ORT_OOM);
        }
        return real.runBlock(b, lrs, step);
      },
      evaluate: (b) => real.evaluate(b), state: () => real.state(), load: (s) => real.load(s),
    };
    const log = sink();
    const failed = runTraining(dir, gpu, { log, freeDeviceBytes: () => 4 * 2 ** 30 });
    await expect(failed).rejects.toThrow(UserError);
    const message = await failed.then(() => '', (e: Error) => e.message);
    expect(message).toBe(
      "the GPU ran out of memory in training steps 8-13 (ONNX Runtime: Failed to allocate memory (392 MB requested) in Conv node 'conv1 (tiny.cnn:3:3)'); " +
      `try a smaller --batch than 8 or fewer steps per call (--steps-per-call 3; it was 6); ${join(dir, 'last.ckpt')} is intact (continue with --resume)`);
    expect(log.text).toContain('device cuda; 32 steps per call (input blocks of 18 kB; budget 1/8 of the 4096 MB free on the GPU, at most 1024 MB)');
    expect(readFileSync(join(dir, 'last.ckpt')).equals(before!)).toBe(true);
    expect((await loadCheckpoint(join(dir, 'last.ckpt'))).meta).toMatchObject({ epoch: 1, batch: 0, step: 7 });
    await real.dispose();
  }, 30_000);

  it('recognises CUDA, cuBLAS and cuDNN allocation failures, in training and evaluation; other errors pass', () => {
    const c = { device: 'cuda' as const, where: 'evaluation', batch: 64, stepsPerCall: 1 };
    expect(outOfMemoryError(new Error('CUDA failure 2: out of memory ; GPU=0 ; hostname=x ; file=cuda_allocator.cc ; line=47 ; expr=cudaMalloc((void**)&p, size);'), c)?.message)
      .toBe('the GPU ran out of memory in evaluation (ONNX Runtime: out of memory); try a smaller --batch than 64; no checkpoint had been written yet');
    expect(outOfMemoryError(new Error('CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED ; GPU=0'), c)?.message).toContain('(ONNX Runtime: CUBLAS_STATUS_ALLOC_FAILED)');
    expect(outOfMemoryError(new Error('CUDNN failure 4001: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED'), c)?.message).toContain('CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED');
    expect(outOfMemoryError(new Error('CUDNN_STATUS_ALLOC_FAILED'), { ...c, device: 'cpu' })?.message).toMatch(/^memory ran out in evaluation/);
    expect(outOfMemoryError(new Error('CUDNN failure 5000: CUDNN_STATUS_EXECUTION_FAILED'), c)).toBeUndefined();
    expect(outOfMemoryError(new Error('Got invalid dimensions for input: input'), c)).toBeUndefined();
  });
});

describe('steps per call', () => {
  const mib = 2 ** 20;
  it('single steps on the CPU unless asked; auto on CUDA from the free memory, bounded', () => {
    const base = { batchBytes: 40 * mib, canBlock: true };
    expect(chooseStepsPerCall({ ...base, device: 'cpu' })).toEqual({ steps: 1 });
    expect(chooseStepsPerCall({ ...base, device: 'cpu', requested: 5 }).steps).toBe(5);
    expect(chooseStepsPerCall({ ...base, device: 'cpu', requested: 'auto' }).steps).toBe(6); // 256 MB / 40 MB
    expect(chooseStepsPerCall({ ...base, device: 'cuda' }).steps).toBe(6); // free memory unknown: 256 MB
    expect(chooseStepsPerCall({ ...base, device: 'cuda', freeDeviceBytes: 960 * mib }).steps).toBe(3); // 120 MB
    expect(chooseStepsPerCall({ ...base, device: 'cuda', freeDeviceBytes: 140_000 * mib }).steps).toBe(25); // 1 GB cap
    expect(chooseStepsPerCall({ ...base, batchBytes: mib, device: 'cuda', freeDeviceBytes: 140_000 * mib }).steps).toBe(32);
    expect(chooseStepsPerCall({ ...base, batchBytes: 600 * mib, device: 'cuda', freeDeviceBytes: 8000 * mib }).steps).toBe(1);
    expect(chooseStepsPerCall({ ...base, canBlock: false, device: 'cuda', requested: 8 })).toEqual({ steps: 1, reason: 'single steps: this runner has no block mode' });
  });

  it('--steps-per-call takes a positive whole number or auto', () => {
    expect(stepsPerCall('--steps-per-call', 'auto')).toBe('auto');
    expect(stepsPerCall('--steps-per-call', '12')).toBe(12);
    for (const bad of ['0', '-3', '2.5', 'many']) {
      expect(() => stepsPerCall('--steps-per-call', bad)).toThrow(`--steps-per-call ${bad}: expected a positive whole number of steps, or auto`);
    }
  });

  it('an epoch from a mid-epoch start: blocks of up to K equal batches, the partial batch alone', () => {
    const ds = synthetic(50, 1);
    const blocks = [...epochBlocks(batches(ds, { batchSize: 8, startBatch: 1 }), 4)];
    expect(blocks.map((b) => [b.first, b.steps, b.perStep])).toEqual([[1, 4, 8], [5, 1, 8], [6, 1, 2]]);
    const whole = [...batches(ds, { batchSize: 8, startBatch: 1 })];
    expect([...blocks[0].x]).toEqual(whole.slice(0, 4).flatMap((b) => [...b.x]));
    expect([...blocks[0].y]).toEqual(whole.slice(0, 4).flatMap((b) => [...b.y]));
  });

  it('reads the free memory of CUDA device 0 from nvidia-smi', () => {
    const asked: string[][] = [];
    const run = (command: string, args: string[]) => {
      asked.push([command, ...args]);
      return { status: 0, stdout: '81234\n', stderr: '', missing: false };
    };
    expect(freeGpuBytes(run, {})).toBe(81234 * 2 ** 20);
    expect(freeGpuBytes(run, { CUDA_VISIBLE_DEVICES: '3,1' })).toBe(81234 * 2 ** 20);
    expect(asked[1]).toEqual(['nvidia-smi', '--query-gpu=memory.free', '--format=csv,noheader,nounits', '-i', '3']);
    expect(freeGpuBytes(() => ({ status: null, stdout: '', stderr: '', missing: true }), {})).toBeUndefined();
  });
});
