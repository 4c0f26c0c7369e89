/** Checkpoints (format, atomic writes, errors) and `--weights` filling initializers by name. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_MAGIC, decodeCheckpoint, encodeCheckpoint, loadCheckpoint, saveCheckpoint, type CheckpointTensor } from '../src/runtime/checkpoint.ts';
import { readWeightFile } from '../src/runtime/weights/index.ts';
import { METADATA_KEYS, readModelMetadata, sourceHash } from '../src/compiler/emit/inference.ts';
import { compile, expectClose, modelSource, run, weight } from './helpers/emit.ts';
import { uniform } from './helpers/random.ts';
import { expectUserError } from './helpers/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => path.join(dir, name);

const tensors = (): Map<string, CheckpointTensor> => new Map([
  ['conv1.weight', { dims: [4, 3, 3, 3], data: uniform(1, 108) }],
  ['conv1.bias', { dims: [4], data: uniform(2, 4) }],
  ['bn1.running_mean', { dims: [4], data: uniform(3, 4) }],
  ['opt.m.conv1.weight', { dims: [4, 3, 3, 3], data: uniform(4, 108) }],
  ['scalar', { dims: [], data: new Float32Array([42]) }],
  ['empty', { dims: [0, 3], data: new Float32Array(0) }],
]);


describe('checkpoint format', () => {
  it('round-trips names, dims, values, model, source hash and metadata', async () => {
    const file = at('a.ckpt');
    const meta = { epoch: 3, step: 120, optimizer: { kind: 'adam', state: ['opt.m'] } };
    await saveCheckpoint(file, { model: 'Net', sourceHash: 'abc', meta, tensors: tensors() });
    const back = await loadCheckpoint(file);
    expect(back.model).toBe('Net');
    expect(back.sourceHash).toBe('abc');
    expect(back.meta).toEqual(meta);
    expect(back.version).toBe(1);
    expect([...back.tensors.keys()]).toEqual([...tensors().keys()]);
    for (const [name, t] of tensors()) {
      expect(back.tensors.get(name)!.dims).toEqual(t.dims);
      expect([...back.tensors.get(name)!.data]).toEqual([...t.data]);
    }
  });

  it('has the documented layout: magic, version, header length, JSON header, 64-byte aligned data', async () => {
    const bytes = readFileSync(at('a.ckpt'));
    expect(bytes.subarray(0, 8).toString('latin1')).toBe(CHECKPOINT_MAGIC);
    expect(bytes.readUInt32LE(8)).toBe(1);
    const h = bytes.readUInt32LE(12);
    const header = JSON.parse(bytes.subarray(16, 16 + h).toString('utf8'));
    expect(header).toMatchObject({ format: 'cnnc-checkpoint', version: 1, model: 'Net' });
    const dataStart = Math.ceil((16 + h) / 64) * 64;
    for (const t of header.tensors) {
      expect(t.offset % 64).toBe(0);
      expect(t.dtype).toBe('float32');
    }
    const w = header.tensors.find((t: { name: string }) => t.name === 'conv1.weight');
    expect(bytes.readFloatLE(dataStart + w.offset)).toBe(tensors().get('conv1.weight')!.data[0]);
  });

  it('writes atomically: no temporary file is left, and a failed write keeps the old file', async () => {
    const file = at('atomic.ckpt');
    await saveCheckpoint(file, { model: 'A', tensors: tensors() });
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const bad = new Map([['x', { dims: [2], data: new Float32Array(3) }]]);
    await expect(saveCheckpoint(file, { model: 'B', tensors: bad })).rejects.toThrow(/3 values for dims \[2\]/);
    expect((await loadCheckpoint(file)).model).toBe('A');
    // A file where a folder should be: the write fails, and nothing is left behind.
    await expectUserError(saveCheckpoint(at('atomic.ckpt/x.ckpt'), { model: 'A', tensors: tensors() }), /atomic\.ckpt\/x\.ckpt: cannot write/);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('names the file in clear errors: missing, truncated, corrupt, foreign, newer version', async () => {
    const good = Buffer.concat(encodeCheckpoint({ model: 'N', tensors: tensors() }));
    await expectUserError(loadCheckpoint(at('missing.ckpt')), /missing\.ckpt: cannot read the checkpoint \(ENOENT\)/);
    const write = (name: string, bytes: Uint8Array) => (writeFileSync(at(name), bytes), at(name));
    await expectUserError(loadCheckpoint(write('trunc.ckpt', good.subarray(0, good.length - 100))), /trunc\.ckpt: .*truncated: the data needs/);
    await expectUserError(loadCheckpoint(write('trunc2.ckpt', good.subarray(0, 40))), /trunc2\.ckpt: .*truncated: the header needs/);
    await expectUserError(loadCheckpoint(write('tiny.ckpt', good.subarray(0, 5))), /tiny\.ckpt: .*only 5 bytes/);
    const corrupt = Buffer.from(good);
    corrupt[corrupt.length - 64 - 1] ^= 0xff;
    await expectUserError(loadCheckpoint(write('corrupt.ckpt', corrupt)), /corrupt\.ckpt: .*checksum/);
    await expectUserError(loadCheckpoint(write('foreign.ckpt', Buffer.from('PK\x03\x04 this is a zip file'))), /foreign\.ckpt: .*CNNCKPT signature/);
    const newer = Buffer.from(good);
    newer.writeUInt32LE(2, 8);
    await expectUserError(loadCheckpoint(write('newer.ckpt', newer)), /newer\.ckpt: checkpoint format version 2 was written by a newer cnnc; this cnnc reads version 1/);
    const badJson = Buffer.from(good);
    badJson[17] = 0x7b; // '{' where '"' was: invalid JSON
    await expectUserError(() => decodeCheckpoint(badJson, 'hdr.ckpt'), /hdr\.ckpt: .*header is not valid JSON/);
  });
});

describe('--weights', () => {
  const src = modelSource('3x6x6', 'conv 4 3x3 -> bn -> relu -> flatten -> dense 5');

  it('fills initializers from a checkpoint by name (ignoring optimizer state) and runs with them', async () => {
    const base = compile(src, { seed: 1 });
    const named = new Map<string, CheckpointTensor>();
    for (const [name, t] of base.weights) named.set(name, { dims: t.dims, data: uniform(name.length, t.data.length, name.includes('var') ? 0.5 : -1, 2) });
    named.set('opt.m.conv1.weight', { dims: [1], data: new Float32Array(1) });
    const file = at('w.ckpt');
    await saveCheckpoint(file, { model: 'T', tensors: named });
    const loaded = compile(src, { init: readWeightFile(file).tensors, initFrom: file });
    for (const [name, t] of named) if (!name.startsWith('opt.')) expect([...weight(loaded, name)]).toEqual([...t.data]);
    expect(loaded.weights.has('opt.m.conv1.weight')).toBe(false);
    // The same weights read back from the compiled .onnx give the same model.
    writeFileSync(at('w.onnx'), loaded.bytes);
    const again = compile(src, { init: readWeightFile(at('w.onnx')).tensors, initFrom: at('w.onnx') });
    const x = uniform(9, 2 * 108);
    expectClose((await run(again.bytes, x, [2, 3, 6, 6])).data, (await run(loaded.bytes, x, [2, 3, 6, 6])).data, 0);
  });

  it('a shape difference or a missing tensor is an error naming the tensor and both shapes', async () => {
    const file = at('bad.ckpt');
    const base = compile(src);
    const wrong = new Map<string, CheckpointTensor>([...base.weights].map(([n, t]) => [n, { dims: t.dims, data: t.data }]));
    wrong.set('conv1.weight', { dims: [8, 3, 3, 3], data: new Float32Array(216) });
    await saveCheckpoint(file, { model: 'T', tensors: wrong });
    await expectUserError(() => compile(src, { init: readWeightFile(file).tensors, initFrom: file }), /tensor conv1\.weight has shape 8×3×3×3 in .*bad\.ckpt, but layer conv1 \(conv 4 3x3\) needs 4×3×3×3/);
    wrong.delete('conv1.weight');
    await saveCheckpoint(file, { model: 'T', tensors: wrong });
    await expectUserError(() => compile(src, { init: readWeightFile(file).tensors, initFrom: file }), /bad\.ckpt has no tensor conv1\.weight \(layer conv1, conv 4 3x3, needs 4×3×3×3\)/);
    await expectUserError(() => readWeightFile(at('nothing.onnx')), /nothing\.onnx: cannot read the weights/);
    writeFileSync(at('text.onnx'), 'hello');
    await expectUserError(() => readWeightFile(at('text.onnx')), /text\.onnx: /);
  });
});

describe('model metadata', () => {
  it('records producer, model, source file and hash, and preprocessing for predict', () => {
    const text = `model M {\n  input 3x8x8 mean=[0.5, 0.4, 0.3] std=[0.2, 0.2, 0.25] classes=["a", "b"]\n  globalavgpool -> flatten -> dense 2\n}\n`;
    const c = compile(text, {}, 'dir/m.cnn');
    const meta = readModelMetadata(c.bytes);
    expect(meta[METADATA_KEYS.model]).toBe('M');
    expect(meta[METADATA_KEYS.sourceFile]).toBe('m.cnn');
    expect(meta[METADATA_KEYS.sourceHash]).toBe(sourceHash(text));
    expect(JSON.parse(meta[METADATA_KEYS.preprocess])).toEqual({ mean: [0.5, 0.4, 0.3], std: [0.2, 0.2, 0.25], classes: ['a', 'b'] });
    expect(JSON.parse(meta[METADATA_KEYS.inputShape])).toEqual([3, 8, 8]);
    expect(existsSync(dir)).toBe(true);
  });
});
