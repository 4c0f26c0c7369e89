/**
 * Weights from PyTorch (src/runtime/weights/). Every model of examples/zoo against its torchvision
 * model, and examples/segmentation/unet.cnn against test/helpers/unet.py (MODELS below), with
 * seeded random weights and random batch-norm statistics (so that folding matters), written by
 * test/helpers/torch_weights.py as a safetensors state dict (for resnet18, mobilenet_v2 and
 * efficientnet_b0 also as torch.onnx.export files, batch norm folded, as eval-mode export does,
 * and kept), loaded into the example's model with `cnnc compile --weights`:
 * the compiled model's logits on a seeded image equal the reference's eval logits. Then transfer learning from a safetensors file with `cnnc train --init`,
 * PyTorch pickles, and bad files: each a one-line error naming the file and the first mismatch.
 *
 * Tolerance: max |cnnc - torch| / max |torch logit| below 1e-5 (float32; measured 3e-7 to 6e-7).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCommand } from '../src/cli/compile.ts';
import { predictCommand } from '../src/cli/predict.ts';
import { trainCommand } from '../src/cli/train.ts';
import { check } from '../src/index.ts';
import { loadCheckpoint } from '../src/runtime/checkpoint.ts';
import { buildModel, float, GraphBuilder } from '../src/compiler/onnx/builder.ts';
import { decodeSafetensors } from '../src/runtime/weights/safetensors.ts';
import { loadModelWeights } from '../src/runtime/weights/index.ts';
import { expectUserError } from './helpers/errors.ts';
import { pythonWith } from './helpers/python.ts';
import { cnncFromSources } from './helpers/cli-sources.ts';
import { safetensors, type Entry } from './helpers/safetensors.ts';

const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'cnnc-weights-torch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const at = (...parts: string[]) => join(tmp, ...parts);
const TOLERANCE = 1e-5;

const python = pythonWith('torch, torchvision');
if (!python) console.warn('weights-torch: skipping the torchvision comparisons: no python3 with torch and torchvision (install python3-torch python3-torchvision, or set CNNC_PYTHON)');

const cnnc = cnncFromSources;

/** One `cnnc: error:` line naming the file, with each phrase; no stack trace. */
function expectCleanFailure(r: { code: number; stderr: string }, file: string, ...phrases: string[]): string {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(/^ {4}at /m);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('cnnc: error:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(errors[0]).toContain(file);
  for (const p of phrases) expect(errors[0]).toContain(p);
  return errors[0];
}

/** compileCommand in this process, with what it printed on stderr. */
async function compileHere(file: string, opts: Parameters<typeof compileCommand>[1]): Promise<{ code: number; stderr: string }> {
  const lines: string[] = [];
  const log = console.log, error = console.error;
  console.log = () => {};
  console.error = (s: string) => { lines.push(s); };
  try {
    return { code: await compileCommand(file, opts), stderr: lines.join('\n') };
  } finally { console.log = log; console.error = error; }
}

const floats = (file: string) => new Float32Array(new Uint8Array(readFileSync(file)).buffer);

async function logits(onnx: string, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  try {
    return (await session.run({ input: new ort.Tensor('float32', x, dims) })).logits.data as Float32Array;
  } finally { await session.release(); }
}

/** max |a - b| / max |b|. */
function relativeError(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let diff = 0, scale = 0;
  want.forEach((w, i) => { diff = Math.max(diff, Math.abs(got[i] - w)); scale = Math.max(scale, Math.abs(w)); });
  return diff / scale;
}

// ---------------------------------------------------------------------------------------------
// safetensors files written here, for the reader's own cases

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const u16 = (bits: number[]) => new Uint8Array(Uint16Array.from(bits).buffer);
const f64 = (values: number[]) => new Uint8Array(Float64Array.from(values).buffer);
const i64 = (values: number[]) => new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
const seq = (n: number, scale = 0.1) => Array.from({ length: n }, (_, i) => (i - n / 2) * scale);

/** A small model and a state dict for it under PyTorch-style names (an nn.Sequential and a classifier). */
const SMALL = 'model Small {\n  input 1x4x4\n  conv 2 3x3 bias=off -> bn -> relu -> flatten -> dense 3\n}\n';
const smallEntries = (convOut = 2): Entry[] => [
  ['features.0.weight', 'F32', [convOut, 1, 3, 3], f32(seq(convOut * 9))],
  ['features.1.weight', 'F32', [2], f32([1.5, 0.5])],
  ['features.1.bias', 'F32', [2], f32([0.1, -0.2])],
  ['features.1.running_mean', 'F32', [2], f32([0.3, -0.1])],
  ['features.1.running_var', 'F32', [2], f32([2, 0.5])],
  ['features.1.num_batches_tracked', 'I64', [], i64([7])],
  ['classifier.weight', 'F32', [3, 8], f32(seq(24, 0.05))],
  ['classifier.bias', 'F32', [3], f32([0, 1, 2])],
];
const smallModel = () => check(SMALL, 'small.cnn').models[0];

describe('safetensors read without torch', () => {
  beforeAll(() => {
    writeFileSync(at('small.cnn'), SMALL);
    writeFileSync(at('small.safetensors'), safetensors(smallEntries()));
  });

  it('F16, BF16 and F64 become float32 with a note; integer counters are left out', () => {
    const file = at('dtypes.safetensors');
    writeFileSync(file, safetensors([
      ['a', 'F16', [6], u16([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x3555])],
      ['b', 'BF16', [3], u16([0x3f80, 0xbf00, 0x4049])],
      ['c', 'F64', [2], f64([0.1, -1e-3])],
      ['d.num_batches_tracked', 'I64', [], i64([3])],
      ['e', 'I32', [1], new Uint8Array(4)],
    ]));
    const st = decodeSafetensors(readFileSync(file), file);
    expect(st.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c']);
    expect([...st.tensors[0].data]).toEqual([1, -2, 0.5, 65504, 2 ** -24, 0.333251953125]);
    expect([...st.tensors[1].data]).toEqual([1, -0.5, 3.140625]);
    expect([...st.tensors[2].data]).toEqual([Math.fround(0.1), Math.fround(-1e-3)]);
    expect(st.notes).toEqual(['1 tensor converted from F16 to float32', '1 tensor converted from BF16 to float32',
      '1 tensor converted from F64 to float32 (rounded)', '1 non-float tensor left out (e I32)']);
  });

  it('a state dict with PyTorch\'s names is matched by structure, every tensor where it belongs', () => {
    const { match } = loadModelWeights(smallModel(), at('small.safetensors'), { transfer: false });
    expect(match.by).toBe('structure');
    expect(match.pairs.map((p) => `${p.from} -> ${p.to}`)).toEqual([
      'features.0.weight -> conv1.weight', 'features.1.weight -> bn1.weight', 'features.1.bias -> bn1.bias',
      'features.1.running_mean -> bn1.running_mean', 'features.1.running_var -> bn1.running_var',
      'classifier.weight -> dense1.weight', 'classifier.bias -> dense1.bias',
    ]);
    expect([...match.tensors.get('bn1.running_var')!.data]).toEqual([2, 0.5]);
    expect(match.unused).toEqual([]);
  });

  it('shapes that differ only in sizes of 1 are reshaped: a Linear\'s [out, in] into a 1x1 conv, a [C, 1, 1] scale into [C]', () => {
    const file = at('reshaped.safetensors');
    writeFileSync(file, safetensors([
      ['proj.weight', 'F32', [3, 2], f32(seq(6))], ['proj.bias', 'F32', [3], f32([1, 2, 3])], ['act.weight', 'F32', [3, 1, 1], f32([0.1, 0.2, 0.3])],
    ]));
    const model = check('model R {\n  input 2x4x4\n  conv 3 1x1 -> prelu per_channel=on\n}\n', 'r.cnn').models[0];
    const { match } = loadModelWeights(model, file, { transfer: false });
    expect(match.pairs.map((p) => `${p.from} -> ${p.to}${p.how ? ` (${p.how})` : ''}`)).toEqual([
      'proj.weight -> conv1.weight (reshaped from 3×2)', 'proj.bias -> conv1.bias', 'act.weight -> prelu1.weight (reshaped from 3×1×1)',
    ]);
    expect(match.tensors.get('conv1.weight')).toEqual({ dims: [3, 2, 1, 1], data: Float32Array.from(seq(6)) });
    expect(match.tensors.get('prelu1.weight')!.dims).toEqual([3]);
    // The same number of values in another order of sizes is still a mismatch.
    writeFileSync(file, safetensors([['proj.weight', 'F32', [2, 3], f32(seq(6))], ['proj.bias', 'F32', [3], f32([1, 2, 3])], ['act.weight', 'F32', [3], f32([0.1, 0.2, 0.3])]]));
    expect(() => loadModelWeights(model, file, { transfer: false })).toThrow(/safetensors 'proj.weight' 2×3 where model R needs 'conv1.weight' 3×2×1×1/);
  });

  it('torchvision\'s ConvNeXt layer_scale, a tensor of the block itself after its layers, goes to scale\'s layer_scale', () => {
    const source = 'model Block {\n  input 4x5x5\n  residual { dwconv 7x7 pad=3 -> layernorm eps=1e-6 -> conv 4 1x1 -> scale }\n}\n';
    const file = at('convnext-block.safetensors');
    writeFileSync(file, safetensors([
      ['features.0.block.0.weight', 'F32', [4, 1, 7, 7], f32(seq(196, 0.01))], ['features.0.block.0.bias', 'F32', [4], f32(seq(4))],
      ['features.0.block.2.weight', 'F32', [4], f32([1, 2, 3, 4])], ['features.0.block.2.bias', 'F32', [4], f32(seq(4))],
      ['features.0.block.3.weight', 'F32', [4, 4, 1, 1], f32(seq(16))], ['features.0.block.3.bias', 'F32', [4], f32(seq(4))],
      ['features.0.layer_scale', 'F32', [4, 1, 1], f32([0.5, 0.25, 2, 1e-6])],
    ]));
    const { match } = loadModelWeights(check(source, 'block.cnn').models[0], file, { transfer: false });
    expect(match.by).toBe('structure');
    expect(match.pairs.map((p) => `${p.from} -> ${p.to}`).slice(-3)).toEqual([
      'features.0.block.3.weight -> residual1.conv1.weight', 'features.0.block.3.bias -> residual1.conv1.bias', 'features.0.layer_scale -> residual1.scale1.layer_scale',
    ]);
    expect([...match.tensors.get('residual1.scale1.layer_scale')!.data]).toEqual([0.5, 0.25, 2, Math.fround(1e-6)]);
    expect(match.unused).toEqual([]);
  });

  it('the same file sorted by name (as safetensors.torch.save_file writes it) gives the same match, with a note', () => {
    const file = at('small.sorted.safetensors');
    writeFileSync(file, safetensors([...smallEntries()].sort((a, b) => a[0].localeCompare(b[0]))));
    const sorted = loadModelWeights(smallModel(), file, { transfer: false }).match;
    const plain = loadModelWeights(smallModel(), at('small.safetensors'), { transfer: false }).match;
    expect(sorted.pairs).toEqual(plain.pairs);
    expect(sorted.notes.join('\n')).toMatch(/order of named modules differs from the model's in 1 place \(features before classifier\)/);
  });

  it('compile --train --weights re-initialises a differing head, as train --init does; compile --weights refuses it', async () => {
    const file = at('five.safetensors'), out = at('five-train');
    writeFileSync(file, safetensors([...smallEntries().slice(0, 6), ['classifier.weight', 'F32', [5, 8], f32(seq(40))], ['classifier.bias', 'F32', [5], f32(seq(5))]]));
    const r = await compileHere(at('small.cnn'), { output: out, train: true, weights: file });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/init from .*five\.safetensors: 5 tensors matched by structure \(safetensors: 2 of model Small's 3 layers/);
    expect(r.stderr).toContain('dense1.weight 3×8 (the model\'s head)');
    expect(r.stderr).toContain('classifier.weight 5×8\n');
    const init = (await loadCheckpoint(join(out, 'init.ckpt'))).tensors;
    expect([...init.get('bn1.running_var')!.data]).toEqual([2, 0.5]);
    expect(init.get('dense1.weight')!.dims).toEqual([3, 8]);
    await expectUserError(compileHere(at('small.cnn'), { output: at('five.onnx'), weights: file }),
      `${file}: safetensors 'classifier.weight' 5×8 where model Small needs 'dense1.weight' 3×8 (layer 3 of 3); only train --init takes a file whose final layers differ`);
  });

  it('predict --weights takes a state dict, matched as compile --weights does, with a note', async () => {
    const image = at('gray.png');
    await sharp(Buffer.alloc(16, 90), { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(image);
    const printed: string[] = [], notes: string[] = [];
    const log = console.log, error = console.error;
    console.log = (s: string) => { printed.push(s); };
    console.error = (s: string) => { notes.push(s); };
    try {
      await predictCommand(at('small.cnn'), [image], { weights: at('small.safetensors'), top: 2, device: 'cpu' });
    } finally { console.log = log; console.error = error; }
    expect(notes).toEqual([expect.stringMatching(/^cnnc: note: weights from .*small\.safetensors: 7 tensors matched by structure/)]);
    expect(printed).toEqual([expect.stringMatching(/gray\.png: [012] \d+\.\d%, [012] \d+\.\d%$/)]);
  });

  const bad: [what: string, bytes: () => Buffer, phrase: string][] = [
    ['a header cut short', () => safetensors(smallEntries()).subarray(0, 5), 'truncated: 5 bytes, shorter than the 8-byte header length'],
    ['a header length beyond the file', () => { const b = safetensors(smallEntries()); b.writeBigUInt64LE(1n << 40n); return b; }, 'its header length 1099511627776 runs past the end of the file'],
    ['a header that is not JSON', () => { const b = safetensors(smallEntries()); b[9] = 0x21; return b; }, 'its header is not valid JSON'],
    ['data cut short', () => { const b = safetensors(smallEntries()); return b.subarray(0, b.length - 10); }, 'tensor "classifier.bias" ends at byte 220 of the data, which has 210 (truncated?)'],
    ['overlapping tensors', () => safetensors(smallEntries(), {
      'features.0.weight': { dtype: 'F32', shape: [2, 1, 3, 3], data_offsets: [0, 72] },
      'features.1.weight': { dtype: 'F32', shape: [2], data_offsets: [68, 76] },
    }), 'tensors "features.0.weight" [0, 72] and "features.1.weight" [68, 76] overlap'],
    ['offsets that do not fit the shape', () => safetensors(smallEntries(), { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }),
      'tensor "a": data_offsets [0, 8] hold 8 bytes, but F32 [3] needs 12'],
    ['an unknown dtype', () => safetensors(smallEntries(), { a: { dtype: 'F7', shape: [1], data_offsets: [0, 1] } }), 'tensor "a" has an unknown dtype "F7"'],
  ];
  for (const [what, bytes, phrase] of bad) {
    it(`compile --weights: ${what} is one line naming the file, and nothing is written`, async () => {
      const file = at(`bad-${what.replaceAll(' ', '-')}.safetensors`), out = at(`bad-${what.replaceAll(' ', '-')}.onnx`);
      writeFileSync(file, bytes());
      await expectUserError(compileHere(at('small.cnn'), { output: out, weights: file }), `${file}: not a valid safetensors file: ${phrase}`, /^[^\n]*$/);
      expect(existsSync(out)).toBe(false);
    });
  }
  describe.concurrent('on the command line', () => {
    it('train --init: a file of another structure, before any data is read', async () => {
      const file = at('wide.safetensors'), out = at('wide-run');
      writeFileSync(file, safetensors(smallEntries(4)));
      expectCleanFailure(await cnnc('train', at('small.cnn'), '--data', at('no-such-data'), '--init', file, '--out', out),
        file, 'safetensors \'features.0.weight\' 4×1×3×3 where model Small needs \'conv1.weight\' 2×1×3×3 (layer 1 of 3)');
      expect(existsSync(out)).toBe(false);
    });
    it('compile --weights: a checkpoint of another model names the first tensor that differs', async () => {
      const other = at('other.cnn'), pre = at('other-pre'), out = at('other.onnx');
      writeFileSync(other, SMALL.replace('Small', 'Other').replace('conv 2', 'conv 3'));
      expect((await compileHere(other, { output: pre, train: true })).code).toBe(0);
      const r = await cnnc('compile', at('small.cnn'), '--weights', join(pre, 'init.ckpt'), '-o', out);
      expectCleanFailure(r, join(pre, 'init.ckpt'), `tensor conv1.weight has shape 3×1×3×3 in ${join(pre, 'init.ckpt')}, but layer conv1 (conv 2 3x3 bias=off) needs 2×1×3×3`);
      expect(existsSync(out)).toBe(false);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// ONNX graphs written here: ops torchvision's exports do not use

/** An ONNX model of the ops `build` adds to x: [N, 1, 4, 4]; initializers under anonymous names. */
function onnxFile(name: string, build: (g: GraphBuilder, x: string) => string): string {
  const g = new GraphBuilder('g');
  g.output(build(g, g.input('x', ['N', 1, 4, 4])), undefined);
  const file = at(`${name}.onnx`);
  writeFileSync(file, buildModel(g, { producerName: 'test', producerVersion: '0' }));
  return file;
}
let initializers = 0;
const w = (g: GraphBuilder, values: number[], dims: number[]) => g.initializer(`onnx::W_${initializers++}`, Float32Array.from(values), dims);

describe('ONNX files from other exporters', () => {
  const model = (text: string) => check(`model M {\n  input 1x4x4\n  ${text}\n}\n`, 'm.cnn').models[0];

  it('Gemm without transB and MatMul + Add store the weight as [in, out]: transposed to dense\'s [out, in]', () => {
    const file = onnxFile('gemm-matmul', (g, x) => {
      const flat = g.op('Flatten', [x], { axis: 1 });
      const h = g.op('Gemm', [flat, w(g, seq(16 * 3), [16, 3]), w(g, [1, 2, 3], [3])]);
      return g.op('Add', [g.op('MatMul', [h, w(g, [1, 2, 3, 4, 5, 6], [3, 2])]), w(g, [7, 8], [2])]);
    });
    const { match } = loadModelWeights(model('flatten -> dense 3 -> dense 2'), file, { transfer: false });
    expect(match.pairs.map((p) => `${p.to} ${p.how ?? ''}`)).toEqual([
      'dense1.weight transposed from Gemm\'s [in, out]', 'dense1.bias ', 'dense2.weight transposed from MatMul\'s [in, out]', 'dense2.bias ',
    ]);
    expect(match.tensors.get('dense1.weight')!.dims).toEqual([3, 16]);
    const b = Float32Array.from(seq(48)); // Gemm's B [16, 3]: row 0 of the weight is B's column 0
    expect([...match.tensors.get('dense1.weight')!.data.subarray(0, 3)]).toEqual([b[0], b[3], b[6]]);
    expect([...match.tensors.get('dense2.weight')!.data]).toEqual([1, 3, 5, 2, 4, 6]);
    expect([...match.tensors.get('dense2.bias')!.data]).toEqual([7, 8]);
  });

  it('PRelu\'s slope, stored as [C, 1, 1] to broadcast, is PyTorch\'s [C]', () => {
    const file = onnxFile('prelu', (g, x) => g.op('PRelu', [g.op('Conv', [x, w(g, seq(18), [2, 1, 3, 3])], { kernel_shape: [3, 3] }), w(g, [0.1, 0.2], [2, 1, 1])]));
    const { match } = loadModelWeights(model('conv 2 3x3 bias=off -> prelu per_channel=on'), file, { transfer: false });
    expect(match.tensors.get('prelu1.weight')).toEqual({ dims: [2], data: Float32Array.from([0.1, 0.2]) });
  });

  it('a convolution of another stride or padding is a mismatch, though its weights fit', async () => {
    const file = onnxFile('strides', (g, x) => g.op('Conv', [x, w(g, seq(18), [2, 1, 3, 3])], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }));
    await expectUserError(() => loadModelWeights(model('conv 2 3x3 pad=1 bias=off'), file, { transfer: false }),
      `${file}: ONNX Conv 'Conv_node_0' has strides [2, 2] where model M's 'conv1' (conv 2 3x3 pad=1 bias=off) has [1, 1] (layer 1 of 1)`);
  });

  it('batch norm is unfolded only into the bn a convolution feeds directly', async () => {
    const conv = (g: GraphBuilder, x: string) => g.op('Conv', [x, w(g, seq(18), [2, 1, 3, 3]), w(g, [0.5, -0.5], [2])], { kernel_shape: [3, 3] });
    const folded = loadModelWeights(model('conv 2 3x3 bias=off -> bn -> relu'), onnxFile('folded', (g, x) => g.op('Relu', [conv(g, x)])), { transfer: false }).match;
    expect(folded.folded).toEqual(['bn1']);
    expect([...folded.tensors.get('bn1.bias')!.data]).toEqual([0.5, -0.5]);
    expect([...folded.tensors.get('bn1.running_var')!.data]).toEqual([Math.fround(1 - 1e-5), Math.fround(1 - 1e-5)]);
    // A file whose convolution has a bias and feeds a relu, then a batch norm: nothing was folded there.
    const file = onnxFile('relu-between', (g, x) => {
      const y = g.op('Relu', [conv(g, x)]);
      return g.op('BatchNormalization', [y, w(g, [1, 1], [2]), w(g, [0, 0], [2]), w(g, [0, 0], [2]), w(g, [1, 1], [2])], { epsilon: float(1e-5) });
    });
    await expectUserError(() => loadModelWeights(model('conv 2 3x3 bias=off -> relu -> bn'), file, { transfer: false }),
      /ONNX Conv 'onnx::W_\d+' 2 has no place in model M's 'conv1' \(conv 2 3x3 bias=off\), which has no bias \(layer 1 of 2\)/);
  });
});

// ---------------------------------------------------------------------------------------------
// torchvision

/**
 * Every model of examples/zoo, and the U-Net of examples/segmentation, and its reference: a
 * torchvision model or one of torch_weights.py's REFERENCES (built with `kwargs`). Each compares a
 * safetensors state dict; three also the ONNX exports. `zoo` names the file in examples/zoo, or in
 * examples/DIR.
 */
const MODELS: { name: string; zoo: string; dir?: string; seed: number; files: string[]; kwargs?: Record<string, unknown> }[] = [
  { name: 'resnet18', zoo: 'resnet18', seed: 1, files: ['safetensors', 'sorted', 'folded', 'nofold', 'plain', 'training', 'pth'] },
  { name: 'mobilenet_v2', zoo: 'mobilenet_v2', seed: 2, files: ['safetensors', 'folded', 'plain'] },
  { name: 'efficientnet_b0', zoo: 'efficientnet_b0', seed: 3, files: ['safetensors', 'folded', 'plain'] },
  { name: 'lenet5', zoo: 'lenet5', seed: 4, files: ['safetensors'] },
  { name: 'alexnet', zoo: 'alexnet', seed: 5, files: ['safetensors'] },
  { name: 'vgg16', zoo: 'vgg16', seed: 6, files: ['safetensors'] },
  { name: 'resnet50', zoo: 'resnet50', seed: 7, files: ['safetensors'] },
  { name: 'googlenet', zoo: 'googlenet', seed: 8, files: ['safetensors'], kwargs: { aux_logits: false, init_weights: true } },
  { name: 'densenet121', zoo: 'densenet121', seed: 9, files: ['safetensors'] },
  { name: 'mobilenet_v3_small', zoo: 'mobilenet_v3_small', seed: 10, files: ['safetensors'] },
  { name: 'convnext_tiny', zoo: 'convnext_tiny', seed: 11, files: ['safetensors'] },
  { name: 'shufflenet_v2_x1_0', zoo: 'shufflenet_v2_x1_0', seed: 12, files: ['safetensors'] },
  { name: 'unet', zoo: 'unet', dir: 'segmentation', seed: 13, files: ['safetensors'], kwargs: { in_channels: 1, classes: 2, width: 64 } },
];
const examplePath = (m: (typeof MODELS)[number]) => join(root, 'examples', m.dir ?? 'zoo', `${m.zoo}.cnn`);
const zooModel = (m: (typeof MODELS)[number]) => check(readFileSync(examplePath(m), 'utf8'), `${m.zoo}.cnn`).models[0];
const zooInput = (m: (typeof MODELS)[number]) => [...zooModel(m).input!];
/** File suffix, whether batch norm is folded in it, and how torch wrote it. */
const EXPORTS: [file: string, folded: boolean, what: string][] = [
  ['safetensors', false, 'a safetensors state dict in state-dict order'],
  ['sorted.safetensors', false, 'a safetensors state dict sorted by name (as safetensors.torch.save_file writes it)'],
  ['folded.onnx', true, 'torch.onnx.export in eval mode (batch norm folded)'],
  ['nofold.onnx', true, 'torch.onnx.export with do_constant_folding=False (torch 1.13 folds batch norm all the same)'],
  ['plain.onnx', false, 'torch.onnx.export with training=TrainingMode.PRESERVE (batch norm kept)'],
];

describe.skipIf(!python)('weights from torchvision', () => {
  const dir = at('torch');
  let counts: Record<string, { params: number; buffers: number; macs: number }>;
  beforeAll(() => {
    mkdirSync(dir);
    const job = { dir, models: MODELS.map((m) => ({ name: m.name, seed: m.seed, files: m.files, kwargs: m.kwargs, input: zooInput(m) })) };
    const r = spawnSync(python!, [join(root, 'test', 'helpers', 'torch_weights.py')], { input: JSON.stringify(job), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`torch_weights.py failed (status ${r.status}): ${r.stderr}`);
    counts = JSON.parse(r.stdout);
  });

  it('every model of examples/zoo is compared with its reference here', () => {
    const files = readdirSync(join(root, 'examples', 'zoo')).filter((f) => f.endsWith('.cnn')).map((f) => f.slice(0, -4));
    expect(files.sort()).toEqual(MODELS.filter((m) => !m.dir).map((m) => m.zoo).sort());
  });

  // MACs: cnnc counts those of conv, dwconv, convtranspose and dense; the reference's Conv2d, ConvTranspose2d and Linear modules, counted by hooks.
  it('the models have their reference\'s (torchvision 0.14.1\'s) parameter, buffer and MAC counts', () => {
    for (const m of MODELS) {
      const model = zooModel(m);
      expect({ params: model.totals.trainable, buffers: model.totals.nonTrainable, macs: model.totals.macs }, m.name).toEqual(counts[m.name]);
    }
  });

  for (const m of MODELS) {
    it(`${m.name}: compile --weights from each export gives the PyTorch model's eval logits`, async () => {
      const zoo = examplePath(m);
      const x = floats(join(dir, `${m.name}.input.bin`)), want = floats(join(dir, `${m.name}.logits.bin`));
      for (const [suffix, folded, what] of EXPORTS.filter(([s]) => m.files.includes(s.split('.')[0]))) {
        const file = join(dir, `${m.name}.${suffix}`), out = join(dir, `${m.name}.${suffix}.cnnc.onnx`);
        const r = await compileHere(zoo, { output: out, weights: file });
        expect(r.code, `${what}: ${r.stderr}`).toBe(0);
        expect(r.stderr, what).toMatch(/tensors matched by structure/);
        expect(r.stderr.includes('batch norm was folded into the file\'s convolutions'), what).toBe(folded);
        expect(relativeError(await logits(out, x, [1, ...zooInput(m)]), want), what).toBeLessThan(TOLERANCE);
        rmSync(out);
      }
    });
  }

  it('resnet18: every pairing in --weights-report, torchvision\'s names against cnnc\'s', async () => {
    const report = join(dir, 'report.txt');
    expect((await compileHere(join(root, 'examples', 'zoo', 'resnet18.cnn'), { output: join(dir, 'r.onnx'), weights: join(dir, 'resnet18.sorted.safetensors'), weightsReport: report })).code).toBe(0);
    const text = readFileSync(report, 'utf8');
    expect(text).toContain('layer1.0.conv1.weight 64×64×3×3 -> layer1.basic_block1.residual1.conv1.weight');
    expect(text).toContain('layer2.0.downsample.0.weight 128×64×1×1 -> layer2.basic_block1.residual1.shortcut.conv.weight');
    expect(text).toContain('layer4.1.bn2.running_var 512 -> layer4.repeat1.0.basic_block1.residual1.bn2.running_var');
    expect(text).toContain('fc.weight 1000×512 -> dense1.weight');
    expect(text.split('\n').filter((l) => l.includes(' -> '))).toHaveLength(102);
  });

  it('resnet18: a training-mode export keeps batch norm and loads too (its statistics are those after the export\'s own forward pass)', async () => {
    const model = check(readFileSync(join(root, 'examples', 'zoo', 'resnet18.cnn'), 'utf8'), 'resnet18.cnn').models[0];
    const training = loadModelWeights(model, join(dir, 'resnet18.training.onnx'), { transfer: false }).match;
    const dict = loadModelWeights(model, join(dir, 'resnet18.safetensors'), { transfer: false }).match;
    expect(training.folded).toEqual([]);
    expect(training.pairs.map((p) => p.to)).toEqual(dict.pairs.map((p) => p.to));
    for (const name of ['conv1.weight', 'layer3.basic_block1.residual1.conv2.weight', 'bn1.weight', 'dense1.weight']) {
      expect([...training.tensors.get(name)!.data], name).toEqual([...dict.tensors.get(name)!.data]);
    }
  });

  it('a .pth pickle is refused with a conversion that works', async () => {
    const pth = join(dir, 'pth', 'resnet18.pth'), out = join(dir, 'pth.onnx');
    const r = await cnnc('compile', join(root, 'examples', 'zoo', 'resnet18.cnn'), '--weights', pth, '-o', out);
    expectCleanFailure(r, pth, 'is a PyTorch pickle (torch.save); cnnc does not unpickle files');
    expect(existsSync(out)).toBe(false);
    const snippet = r.stderr.split('\n').filter((l) => l.startsWith('    ')).map((l) => l.slice(4)).join('\n');
    const run = spawnSync(python!, ['-c', snippet], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect((await compileHere(join(root, 'examples', 'zoo', 'resnet18.cnn'), { output: out, weights: join(dir, 'pth', 'resnet18.safetensors') })).code).toBe(0);
    const x = floats(join(dir, 'resnet18.input.bin'));
    expect(relativeError(await logits(out, x, [1, 3, 224, 224]), floats(join(dir, 'resnet18.logits.bin')))).toBeLessThan(TOLERANCE);
  });

  it('a file of another model: the first mismatch, both sides named', async () => {
    const file = join(dir, 'mobilenet_v2.folded.onnx'), out = join(dir, 'mismatch.onnx');
    expectCleanFailure(await cnnc('compile', join(root, 'examples', 'zoo', 'resnet18.cnn'), '--weights', file, '-o', out), file,
      'ONNX Conv \'onnx::Conv_', '32×3×3×3 where model ResNet18 needs \'conv1.weight\' 64×3×7×7 (layer 1 of 41)');
    expect(existsSync(out)).toBe(false);
  });

  describe('transfer learning: a 32×32 ResNet-18 with a 2-class head from the 1000-class state dict', () => {
    const model = join(tmp, 'r32.cnn'), data = join(tmp, 'colours'), out = join(tmp, 'transfer-run');
    beforeAll(async () => {
      const source = readFileSync(join(root, 'examples', 'zoo', 'resnet18.cnn'), 'utf8').replace('input 3x224x224', 'input 3x32x32').replace('dense 1000', 'head: dense 2');
      writeFileSync(model, source);
      await colourImages(data);
    });

    it('compile --weights refuses the differing head; train --init initialises it and trains it alone', async () => {
      const file = join(dir, 'resnet18.sorted.safetensors');
      expectCleanFailure(await cnnc('compile', model, '--weights', file, '-o', join(tmp, 'r32.onnx')), file,
        'safetensors \'fc.weight\' 1000×512 where model ResNet18 needs \'head.weight\' 2×512 (layer 41 of 41); only train --init takes a file whose final layers differ');
      const lines: string[] = [];
      const log = { isTTY: false, columns: 200, write: (s: string) => { lines.push(s); return true; } };
      const freeze = 'freeze: "conv1" "bn1" "layer*"';
      await trainCommand(model, { data, init: file, out, epochs: '8', batch: '8', optimizer: 'adam', lr: '0.001', threads: '1', set: [freeze] },
        { log, print: () => {}, handleSigint: false });
      const text = lines.join('');
      expect(text).toMatch(/init from .*: 100 tensors matched by structure/);
      expect(text).toContain('head.weight 2×512 (the model\'s head)');
      expect(readFileSync(join(out, 'init-report.txt'), 'utf8')).toContain('fc.weight 1000×512\n');

      const start = loadModelWeights(check(readFileSync(model, 'utf8'), model).models[0], file, { transfer: true }).match.tensors;
      const end = (await loadCheckpoint(join(out, 'last.ckpt'))).tensors;
      expect(start.size).toBe(100);
      for (const [name, t] of start) expect(Buffer.from(end.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), `${name} is frozen`).toBe(true);
      const epochs = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'epoch');
      expect(epochs).toHaveLength(8);
      expect(epochs.at(-1).loss).toBeLessThan(0.8 * epochs[0].loss);
      expect(epochs.at(-1).test_acc).toBeGreaterThanOrEqual(0.75);
    });
  });
});

/** Two classes of 3×32×32 images, reddish and bluish with seeded noise: separable, not trivially. */
async function colourImages(dir: string): Promise<void> {
  let state = 7;
  const random = () => { state = (state * 1103515245 + 12345) % 2 ** 31; return state / 2 ** 31; };
  for (const [split, count] of [['train', 16], ['test', 8]] as const) {
    for (const [cls, rgb] of [['red', [200, 40, 40]], ['blue', [40, 40, 200]]] as const) {
      mkdirSync(join(dir, split, cls), { recursive: true });
      for (let i = 0; i < count; i++) {
        const px = Buffer.alloc(32 * 32 * 3);
        for (let p = 0; p < px.length; p++) px[p] = Math.max(0, Math.min(255, rgb[p % 3] + (random() - 0.5) * 120));
        await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(dir, split, cls, `${i}.png`));
      }
    }
  }
  expect(readdirSync(join(dir, 'train'))).toEqual(['blue', 'red']);
}
