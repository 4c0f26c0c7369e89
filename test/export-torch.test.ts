/**
 * `cnnc export --torch`'s model.py against cnnc itself. For every example (examples/**, bench/models,
 * test/fixtures/export), every model: PyTorch draws random parameters and batch-norm statistics,
 * saves them with model.py's save_checkpoint and runs its eval forward on a random batch; cnnc reads
 * that checkpoint as `--weights`, compiles the inference graph and runs it in onnxruntime; the
 * outputs must agree. Also: state_dict keys are the graph's parameter names, cnnc-written checkpoints
 * load into model.py, load_checkpoint's errors, freezing, the source-line comments, and the CLI.
 * The PyTorch parts run in one Python process (test/helpers/torch_export.py) and skip without torch.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check, type CheckResult } from '../src/index.ts';
import { compileInference, sourceHash } from '../src/compiler/emit/inference.ts';
import { modelPy } from '../src/compiler/emit/torch/model-py.ts';
import { frozenMatcher } from '../src/compiler/emit/train.ts';
import { layers, type CheckedModel } from '../src/compiler/model.ts';
import type { SourceInput } from '../src/compiler/source.ts';
import { readInitializers } from '../src/compiler/onnx/builder.ts';
import { encodeCheckpoint, loadCheckpointSync, type CheckpointTensor } from '../src/runtime/checkpoint.ts';
import { JsonLines, type Reply } from './helpers/json-lines.ts';
import { OrtTrainRunner } from '../src/runtime/train-runner.ts';
import { uniform } from './helpers/random.ts';
import { pythonWith } from './helpers/python.ts';
import { TORCH_PARITY_FILES } from './helpers/layer-cases.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./helpers/torch_export.py', import.meta.url));
const EDGE = 'test/fixtures/export/edge.cnn';
const CHANNELS = 'test/fixtures/export/channels.cnn';

const python = pythonWith('torch');
if (!python) console.warn('export-torch: skipping the comparisons with PyTorch: no python3 with torch (install python3-torch, or set CNNC_PYTHON)');

const FILES = TORCH_PARITY_FILES;

const checked = new Map<string, CheckResult>();
function checkedFile(file: string): CheckResult {
  if (!checked.has(file)) checked.set(file, check(readFileSync(path.join(root, file), 'utf8'), file));
  return checked.get(file)!;
}

const modelText = (file: string, model?: string): string => {
  const r = checkedFile(file);
  return modelPy({ file, source: r.sources, models: r.models, model: r.models.find((m) => m.name === model) ?? r.models[0] });
};

/**
 * Agreement to float32 rounding, relative to the largest output: PyTorch and onnxruntime sum in
 * other orders (and the zoo's deep stacks compound that); 1e-4 is far below what any wrong
 * padding, count, eps or momentum gives (those are off by 1e-2 or more of the output).
 */
const TOL = 1e-4;

/** Large models run one sample (the zoo at 224×224 is seconds per model on two cores). */
const batchOf = (m: CheckedModel) => (m.totals.macs > 3e8 ? 1 : 2);

const floats = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

/** The inference graph with `weights` on `input` ([batch, ...model.input]). */
async function runOnnx(model: CheckedModel, source: SourceInput, weights: Map<string, CheckpointTensor>, input: Float32Array, batch: number): Promise<{ output: Float32Array; names: string[] }> {
  const { bytes } = compileInference(model, { source, init: weights, initFrom: 'the checkpoint' });
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', input, [batch, ...model.input!]) });
    // Parameters are named `path.param`; the graph's own constants `path/hint`.
    const names = [...readInitializers(bytes).keys()].filter((n) => !n.includes('/'));
    return { output: out.logits.data as Float32Array, names };
  } finally {
    await session.release();
  }
}

/** max |a - b| / max |b|. */
function relativeDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

describe('model.py text', () => {
  it.each(FILES)('%s: each layer construction carries its source line', (file) => {
    const r = checkedFile(file);
    const text = modelText(file);
    // A layer of an imported block names its own file (`std/resnet.cnn`), relative to the file's folder.
    for (const model of r.models) {
      for (const layer of layers(model.root)) {
        const { source, position } = r.sources.locate(layer.span.start);
        const at = `${source.label}:${position.line + 1}`;
        expect(text, `${layer.path} (${at})`).toContain(`  # ${at}  `);
      }
    }
    const labels = r.sources.sources.map((s) => s.label.replaceAll('.', '\\.')).join('|');
    // Every line that builds a layer module ends in a comment naming the file and line.
    const builders = text.split('\n').filter((l) => /^ {8,}(self\.|'|self\.add_module).*\b(nn\.(?!Parameter\b)[A-Z]\w*|PaddedConv2d|CroppedConvTranspose2d|AvgPoolNoPad|LayerNorm2d|ChannelShuffle|LayerScale)\(/.test(l));
    expect(builders.length).toBeGreaterThan(0);
    for (const l of builders) expect(l).toMatch(new RegExp(`  # (${labels}):\\d+  \\S`));
  });

  it('names the module tree after cnnc (labels that are Python words, helper names the source takes)', () => {
    const text = modelText(EDGE);
    expect(text).toContain("self.add_module('class', Unit_8())");
    expect(text).toContain("x = self._modules['lambda'](x)");
    expect(text).toContain('class Seq_v2(CnncModel):');
    expect(text).toContain("MODELS = {'Seq': Seq_v2, 'Gated': Gated}");
    expect(text).toContain('class Pad_v2(nn.Module):');
    expect(modelText(EDGE, 'Gated')).toContain("DEFAULT_MODEL = 'Gated'");
  });

  it('refuses, naming the line, a label PyTorch cannot take as a module name', () => {
    const source = 'model M {\n  input 4\n  dense 2\n  -> forward: relu\n}\n';
    const r = check(source, 'm.cnn');
    expect(() => modelPy({ file: 'm.cnn', source, models: r.models, model: r.models[0] }))
      .toThrow('m.cnn:4: cannot export forward: PyTorch cannot name a submodule forward (an nn.Module attribute, or a private name); rename the label');
  });
});

describe.skipIf(!python)('model.py against cnnc', () => {
  let py: JsonLines;
  let tmp: string;
  const dirs = new Map<string, string>();
  /** The exported folder of a file (model.py only: that is what these checks run). */
  const folder = (file: string): string => {
    if (!dirs.has(file)) {
      const dir = path.join(tmp, `pkg${dirs.size}`);
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'model.py'), modelText(file));
      dirs.set(file, dir);
    }
    return dirs.get(file)!;
  };
  const send = async (msg: Record<string, unknown>): Promise<Extract<Reply, { ok: true }>> => {
    const r = await py.send(msg);
    if (!r.ok) throw new Error(`torch_export.py: ${r.error}`);
    return r;
  };
  const worst: { file: string; model: string; relative: number }[] = [];

  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'cnnc-export-'));
    py = new JsonLines(python!, [SCRIPT]);
  });
  afterAll(async () => {
    await py?.close();
    rmSync(tmp, { recursive: true, force: true });
    if (worst.length) console.log(`export-torch: largest relative difference ${Math.max(...worst.map((w) => w.relative)).toExponential(2)} over ${worst.length} models`);
  });

  it.each(FILES)('%s: PyTorch weights through save_checkpoint give the ONNX graph\'s outputs', async (file) => {
    const r = checkedFile(file);
    for (const model of r.models) {
      const batch = batchOf(model);
      const at = (name: string) => path.join(tmp, `${model.name}.${name}`);
      const reply = await send({ cmd: 'parity', dir: folder(file), model: model.name, batch, seed: 11, ckpt: at('ckpt'), input: at('in'), output: at('out') });
      expect(reply.shape).toEqual([batch, ...model.output!]);
      expect(reply.output).toEqual(model.output);
      expect(reply.reloadDiff, 'load_checkpoint of its own save gives the same outputs').toBe(0);
      expect(reply.logitsDiff as number, 'forward(x, logits=True) is the values before the final softmax/sigmoid').toBeLessThan(1e-6);
      expect(reply.meta).toEqual({ test: 'parity' });
      const { output, names } = await runOnnx(model, r.sources, loadCheckpointSync(at('ckpt')).tensors, floats(at('in')), batch);
      expect([...(reply.keys as string[])].sort(), 'state_dict keys are the graph\'s parameter names').toEqual(names.sort());
      const relative = relativeDiff(output, floats(at('out')));
      worst.push({ file, model: model.name, relative });
      expect(relative, `${model.name}: relative difference`).toBeLessThan(TOL);
      for (const f of ['ckpt', 'in', 'out']) rmSync(at(f));
    }
  });

  /**
   * Random tensors for every parameter and buffer of `model`, plus an optimizer slot: weights
   * scaled by their fan-in (so that no layer saturates what follows), scales and variances near 1.
   */
  function cnncTensors(model: CheckedModel, seed: number): Map<string, CheckpointTensor> {
    const out = new Map<string, CheckpointTensor>();
    for (const l of layers(model.root)) {
      for (const p of l.params) {
        const n = p.shape.reduce((a, b) => a * b, 1);
        const bound = Math.sqrt(3 * p.shape[0] / n);
        const data = p.name === 'bias' || p.name === 'running_mean' ? uniform(seed++, n, -0.1, 0.1)
          : p.shape.length === 1 ? uniform(seed++, n, 0.5, 1.5) : uniform(seed++, n, -bound, bound);
        out.set(`${l.path}.${p.name}`, { dims: [...p.shape], data });
      }
    }
    const first = out.keys().next().value!;
    out.set(`optim.${first}.m`, out.get(first)!);
    return out;
  }

  const writeCkpt = (file: string, model: string, tensors: Map<string, CheckpointTensor>, source?: SourceInput) =>
    writeFileSync(file, Buffer.concat(encodeCheckpoint({ model, sourceHash: source && sourceHash(source), tensors })));

  it.each(['bench/models/all_layers.cnn', EDGE])('%s: a checkpoint cnnc writes loads into model.py, with the same outputs', async (file) => {
    const r = checkedFile(file);
    for (const model of r.models) {
      const ckpt = path.join(tmp, `${model.name}.cnnc.ckpt`), input = path.join(tmp, 'x.in'), output = path.join(tmp, 'x.out');
      const tensors = cnncTensors(model, 3);
      writeCkpt(ckpt, model.name, tensors, r.sources);
      const x = uniform(5, 2 * model.input!.reduce((a, b) => a * b, 1), -1, 1);
      writeFileSync(input, x);
      await send({ cmd: 'forward', dir: folder(file), model: model.name, ckpt, input, output, batch: 2 });
      const onnx = await runOnnx(model, r.sources, tensors, x, 2);
      expect(relativeDiff(onnx.output, floats(output))).toBeLessThan(TOL);
    }
  });

  it.each(['Seq', 'Gated'])('%s: a training-mode forward updates batch-norm statistics as cnnc\'s training step', async (name) => {
    const r = checkedFile(EDGE), model = r.models.find((m) => m.name === name)!;
    const ckpt = path.join(tmp, 'bn.ckpt'), out = path.join(tmp, 'bn-after.ckpt'), input = path.join(tmp, 'bn.in');
    const tensors = cnncTensors(model, 9);
    writeCkpt(ckpt, model.name, tensors);
    const batch = 4, x = uniform(8, batch * model.input!.reduce((a, b) => a * b, 1), -1, 1);
    writeFileSync(input, x);
    await send({ cmd: 'train-forward', dir: folder(EDGE), model: name, ckpt, input, out, batch, patterns: model.train.freeze });
    const torchAfter = loadCheckpointSync(out).tensors;
    // cnnc's step at lr 0: only the running statistics move.
    const runner = await OrtTrainRunner.create(model, model.train, { device: 'cpu', threads: 1, batch, init: tensors });
    await runner.run({ x, y: new BigInt64Array(batch), count: batch }, 0, 0);
    const cnncAfter = runner.state();
    await runner.dispose();
    const match = frozenMatcher(model.train.freeze);
    const stats = layers(model.root).flatMap((l) => (l.layer.updates ?? []).map((p) => ({ name: `${l.path}.${p}`, frozen: l.frozen || match(l) })));
    expect(stats.some((s) => !s.frozen)).toBe(true);
    for (const { name: t, frozen } of stats) {
      const before = tensors.get(t)!.data, cnnc = cnncAfter.get(t)!.data, torch = torchAfter.get(t)!.data;
      expect(relativeDiff(torch, cnnc), t).toBeLessThan(1e-5);
      // A frozen bn keeps its statistics; the others move, so agreement says something.
      if (frozen) expect(relativeDiff(torch, before), t).toBe(0);
      else expect(relativeDiff(torch, before), t).toBeGreaterThan(1e-3);
    }
  });

  it('model.py\'s DropPath in train mode zeroes whole samples with probability p and scales the others by 1/(1-p)', async () => {
    const batch = 2000, per = 18, input = path.join(tmp, 'drop.in'), output = path.join(tmp, 'drop.out');
    writeFileSync(input, new Float32Array(batch * per).fill(1));
    await send({ cmd: 'train-output', dir: folder(CHANNELS), model: 'Drop', input, output, batch, seed: 3 });
    const y = floats(output);
    const samples = Array.from({ length: batch }, (_, n) => y.subarray(n * per, (n + 1) * per));
    for (const s of samples) expect(new Set(s).size, 'one draw per sample').toBe(1);
    const kept = samples.filter((s) => s[0] !== 0);
    for (const s of kept) expect(s[0]).toBeCloseTo(1 / 0.7, 5);
    expect(kept.length / batch).toBeGreaterThan(0.66);
    expect(kept.length / batch).toBeLessThan(0.74);
  });

  it('load_checkpoint says which file and which tensor does not fit', async () => {
    const file = EDGE, model = checkedFile(file).models.find((m) => m.name === 'Gated')!;
    const good = cnncTensors(model, 1);
    const variant = async (name: string, tensors: Map<string, CheckpointTensor>, modelName = 'Gated', edit?: (b: Buffer) => Buffer) => {
      const ckpt = path.join(tmp, `${name}.ckpt`);
      writeCkpt(ckpt, modelName, tensors);
      if (edit) writeFileSync(ckpt, edit(readFileSync(ckpt)));
      return { ckpt, error: (await send({ cmd: 'load', dir: folder(file), model: 'Gated', ckpt })).error as string | null };
    };
    const without = new Map(good);
    without.delete('dense1.bias');
    const reshaped = new Map(good).set('dense1.weight', { dims: [8, 15], data: new Float32Array(120) });
    const extra = new Map(good).set('dense9.weight', { dims: [2], data: new Float32Array(2) });
    expect((await variant('good', good)).error).toBeNull();
    let v = await variant('missing', without);
    expect(v.error).toBe(`${v.ckpt}: no tensor dense1.bias (shape (8,)), which Gated needs`);
    v = await variant('shape', reshaped);
    expect(v.error).toBe(`${v.ckpt}: tensor dense1.weight has shape (8, 15), Gated needs (8, 16)`);
    v = await variant('other', good, 'ResNet18');
    expect(v.error).toBe(`${v.ckpt}: a checkpoint of model ResNet18, not Gated`);
    v = await variant('extra', extra);
    expect(v.error).toBe(`${v.ckpt}: tensor dense9.weight is not a parameter or buffer of Gated`);
    v = await variant('truncated', good, 'Gated', (b) => b.subarray(0, b.length - 100));
    expect(v.error).toMatch(new RegExp(`^${v.ckpt}: not a valid cnnc checkpoint: truncated: the data needs \\d+ bytes, the file has \\d+$`));
    v = await variant('corrupt', good, 'Gated', (b) => { b[b.length - 200] ^= 1; return b; });
    expect(v.error).toBe(`${v.ckpt}: not a valid cnnc checkpoint: its data does not match the checksum in its header (the file is corrupt)`);
    v = await variant('junk', good, 'Gated', (b) => b.subarray(100));
    expect(v.error).toBe(`${v.ckpt}: not a valid cnnc checkpoint: it does not start with the CNNCKPT signature`);
  });

  it('freezes what cnnc freezes: frozen { } and freeze: patterns, frozen batch norms in eval mode', async () => {
    const model = checkedFile(EDGE).models[0];
    const patterns = model.train.freeze;
    expect(patterns).toEqual(['class.*']);
    const reply = await send({ cmd: 'frozen', dir: folder(EDGE), model: model.name, patterns });
    const match = frozenMatcher(patterns);
    const frozen = layers(model.root).filter((l) => l.frozen || match(l));
    const want = frozen.flatMap((l) => l.params.filter((p) => p.trainable).map((p) => `${l.path}.${p.name}`));
    expect(want.length).toBeGreaterThan(4);
    expect((reply.frozen as string[]).sort()).toEqual(want.sort());
    const bns = layers(model.root).filter((l) => l.layer.name === 'bn');
    expect((reply.training as string[]).sort()).toEqual(bns.filter((l) => !frozen.includes(l)).map((l) => l.path).sort());
  });
});

describe('cnnc export', () => {
  let tmp: string;
  const bin = path.join(root, 'bin', 'cnnc.js');
  const cnnc = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CNNC_DEBUG: '' } });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const at = (...parts: string[]) => path.join(tmp, ...parts);
  const PACKAGE = ['.cnnc-export.json', 'README.md', 'model.py', 'train.py'];

  beforeAll(() => { tmp = mkdtempSync(path.join(tmpdir(), 'cnnc-export-cli-')); });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('writes model.py, train.py and README.md (and its record), and says so in one line', () => {
    const r = cnnc('export', EDGE, '--torch', '-m', 'Gated', '-o', at('pkg'));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${at('pkg')}: PyTorch package for Gated: model.py, train.py, README.md (model.py has all 2 models of edge.cnn)\n`);
    expect(readdirSync(at('pkg')).sort()).toEqual(PACKAGE);
    expect(readFileSync(at('pkg', 'model.py'), 'utf8')).toBe(modelText(EDGE, 'Gated'));
  });

  it('needs --torch and -o, and refuses an -o that cannot be a folder, a file with errors and an unknown model, writing nothing', () => {
    writeFileSync(at('file.txt'), 'x');
    const cases: [string[], string][] = [
      [['export', EDGE, '-o', at('a')], 'cnnc: error: export: name the target with --torch (a PyTorch package, the only target so far), e.g. cnnc export model.cnn --torch -o out/\n'],
      [['export', EDGE, '--torch'], 'cnnc: error: export: give the folder for the package with -o DIR\n'],
      [['export', EDGE, '--torch', '-o', at('file.txt')], `cnnc: error: ${at('file.txt')}: is a file, not a folder; -o names the folder for the PyTorch package\n`],
      [['export', EDGE, '--torch', '-o', at('file.txt', 'pkg')], `cnnc: error: ${at('file.txt', 'pkg')}: cannot be created: ${path.relative(root, at('file.txt'))} is a file, not a folder\n`],
      [['export', EDGE, '--torch', '-m', 'Nope', '-o', at('a')], `cnnc: error: ${EDGE}: has no model "Nope" (models: Seq, Gated)\n`],
    ];
    for (const [args, err] of cases) {
      const r = cnnc(...args);
      expect({ code: r.code, err: r.err, out: r.out }).toEqual({ code: 1, err, out: '' });
    }
    const bad = cnnc('export', 'test/fixtures/diagnostics/dense_not_flat.cnn', '--torch', '-o', at('a'));
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('error CNN3002');
    expect(bad.err).toMatch(/cnnc: test\/fixtures\/diagnostics\/dense_not_flat.cnn has errors; nothing written\n$/);
    const label = at('label.cnn');
    writeFileSync(label, 'model M {\n  input 4\n  dense 2 -> forward: relu\n}\n');
    expect(cnnc('export', label, '--torch', '-o', at('a')).err).toBe(`cnnc: error: ${label}:3: cannot export forward: PyTorch cannot name a submodule forward (an nn.Module attribute, or a private name); rename the label\n`);
    expect(readdirSync(tmp).sort()).toEqual(['file.txt', 'label.cnn', 'pkg']);
  });

  it('replaces the files it wrote and keeps the others; refuses a changed file and a folder of other files', () => {
    const dir = at('again');
    expect(cnnc('export', EDGE, '--torch', '-o', dir).code).toBe(0);
    mkdirSync(path.join(dir, 'runs'));
    writeFileSync(path.join(dir, 'runs', 'best.ckpt'), 'mine');
    const r = cnnc('export', EDGE, '--torch', '-m', 'Gated', '-o', dir);
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(dir, 'model.py'), 'utf8')).toBe(modelText(EDGE, 'Gated'));
    expect(readFileSync(path.join(dir, 'runs', 'best.ckpt'), 'utf8')).toBe('mine');
    writeFileSync(path.join(dir, 'train.py'), '# my changes\n', { flag: 'a' });
    const changed = cnnc('export', EDGE, '--torch', '-o', dir);
    expect(changed.code).toBe(1);
    expect(changed.err).toBe(`cnnc: error: ${dir}: train.py is not the file cnnc export wrote there (changed since, or someone else's); move it away to export again\n`);
    expect(readFileSync(path.join(dir, 'model.py'), 'utf8')).toBe(modelText(EDGE, 'Gated'));
    const other = at('other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'notes.txt'), 'x');
    expect(cnnc('export', EDGE, '--torch', '-o', other).err)
      .toBe(`cnnc: error: ${other}: is a folder with other files in it (notes.txt); export into a new or empty folder, or one a previous cnnc export wrote\n`);
    expect(readdirSync(other)).toEqual(['notes.txt']);
  });

  it.skipIf(!python)('model.py loads the checkpoint `cnnc compile --train` writes, and cnnc compile --weights takes what save_checkpoint writes', () => {
    const file = 'examples/fashion/bn.cnn', dir = at('fashion');
    expect(cnnc('export', file, '--torch', '-o', dir).code).toBe(0);
    expect(cnnc('compile', file, '--train', '-o', at('graphs')).code).toBe(0);
    const summary = spawnSync(python!, ['model.py', '--checkpoint', at('graphs', 'init.ckpt')], { cwd: dir, encoding: 'utf8' });
    expect(summary.stderr).toBe('');
    expect(summary.stdout).toMatch(/^FashionBN: input 1x28x28 -> output 10; [\d,]+ parameters \([\d,]+ trainable\), [\d,]+ buffer values, weights from .*init\.ckpt\n$/);
    const back = spawnSync(python!, ['-c', `import model\nm = model.build_model()\nmodel.load_checkpoint(m, ${JSON.stringify(at('graphs', 'init.ckpt'))})\nmodel.save_checkpoint(m, 'back.ckpt', meta={'from': 'torch'})`], { cwd: dir, encoding: 'utf8' });
    expect(back.stderr).toBe('');
    const init = loadCheckpointSync(at('graphs', 'init.ckpt')), saved = loadCheckpointSync(path.join(dir, 'back.ckpt'));
    expect(saved.model).toBe('FashionBN');
    expect(saved.sourceHash).toBe(init.sourceHash);
    expect(saved.meta).toEqual({ from: 'torch' });
    for (const [name, t] of saved.tensors) expect(t, name).toEqual(init.tensors.get(name));
    expect([...saved.tensors.keys()]).toEqual([...init.tensors.keys()].filter((n) => !n.startsWith('optim.')));
    const compiled = cnnc('compile', file, '--weights', path.join(dir, 'back.ckpt'), '-o', at('fashion.onnx'));
    expect(compiled.err).toBe('');
    expect(compiled.code).toBe(0);
    const bad = spawnSync(python!, ['model.py', '--checkpoint', 'README.md'], { cwd: dir, encoding: 'utf8' });
    expect({ code: bad.status, err: bad.stderr }).toEqual({ code: 1, err: 'model.py: error: README.md: not a valid cnnc checkpoint: it does not start with the CNNCKPT signature\n' });
  });
});
