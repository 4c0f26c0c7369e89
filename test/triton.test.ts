/**
 * `cnnc compile FILE --triton DIR` end to end through bin/cnnc.js: the model folder's layout, the
 * config.pbtxt read field by field against Triton's ModelConfig messages (a small text-format
 * parser below), model.onnx's inputs and outputs against the config, the labels file, a batch of
 * max_batch_size through onnxruntime, and the refusals (bad input, unwritable places, folders
 * cnnc did not write, a kill at any point of the write).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BATCH } from '../src/compiler/emit/triton.ts';
import { readInitializers } from '../src/compiler/onnx/builder.ts';
import { createSession, floatTensor, runSession } from '../src/runtime/session.ts';
import { onnxCheck, onnxPython } from './helpers/onnx-check.ts';

const repo = path.resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'cnnc-triton-'));
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  rmSync(tmp, { recursive: true, force: true });
});

function cnnc(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin', 'cnnc.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const CLASSES = ['cat', 'dog', 'bird'];
const source = path.join(tmp, 'models.cnn');
writeFileSync(source, `model Pets {
  input 3x16x16 mean=[0.485, 0.456, 0.406] std=[0.229, 0.224, 0.225] classes=[${CLASSES.map((c) => `"${c}"`).join(', ')}]
  conv 8 3x3 pad=1 -> bn -> relu -> maxpool 2 -> conv 8 3x3 pad=same -> relu -> gap -> flatten -> dense 3
}
model Binary {
  input 1x8x8 classes=["no", "yes"]
  conv 4 3x3 -> relu -> flatten -> dense 1
}
model Tabular {
  input 20 mean=0.5 std=0.25
  dense 16 -> relu -> dense 4 -> softmax
}
model Mislabelled {
  input 1x8x8 classes=["a", "b"]
  conv 4 3x3 -> relu -> flatten -> dense 3
}
model Wide {
  input 1x16x16
  flatten -> dense 256 -> relu -> dense 10
}
`);

/** Every file and folder under `dir`, relative, sorted ("1", "1/model.onnx", ...). */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((p) => p.split(path.sep).join('/')).sort();
}

/** The files under `dir` and their contents. */
function snapshot(dir: string): Record<string, string> {
  const files = tree(dir).filter((f) => statSync(path.join(dir, f)).isFile());
  return Object.fromEntries(files.map((f) => [f, readFileSync(path.join(dir, f)).toString('base64')]));
}

// --- protobuf text format, as much of it as config.pbtxt uses --------------------------------

type PbValue = string | number | { enum: string } | PbMessage;
/** Field name -> its values in order (repeated fields and map entries have several). */
type PbMessage = Map<string, PbValue[]>;

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re = /\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|[{}[\]:,]|(.)/gy;
  for (let m = re.exec(text); m && m[0] !== ''; m = re.exec(text)) {
    if (m[1] !== undefined) throw new Error(`unexpected character ${m[1]} at ${m.index}`);
    if (!/^\s|^#/.test(m[0])) tokens.push(m[0]);
  }
  return tokens;
}

function unquote(token: string): string {
  return token.slice(1, -1).replace(/\\([0-7]{3}|.)/g, (_, e: string) =>
    e.length === 3 ? String.fromCharCode(parseInt(e, 8)) : ({ n: '\n', r: '\r', t: '\t' } as Record<string, string>)[e] ?? e);
}

function parsePbtxt(text: string): PbMessage {
  const tokens = tokenize(text);
  let i = 0;
  const next = () => tokens[i++];
  const expect_ = (t: string) => { if (next() !== t) throw new Error(`expected ${t} before token ${i}`); };
  function scalarOrMessage(): PbValue {
    const t = next();
    if (t === '{') return message('}');
    if (t.startsWith('"')) return unquote(t);
    if (/^-?\d/.test(t)) return Number(t);
    return { enum: t };
  }
  function message(end: string | undefined): PbMessage {
    const m: PbMessage = new Map();
    while (tokens[i] !== end) {
      const field = next();
      if (!/^[A-Za-z_]/.test(field ?? '')) throw new Error(`expected a field name, got ${field}`);
      if (tokens[i] === ':') i++;
      const values: PbValue[] = [];
      if (tokens[i] === '[') {
        i++;
        while (tokens[i] !== ']') {
          values.push(scalarOrMessage());
          if (tokens[i] === ',') i++;
        }
        expect_(']');
      } else values.push(scalarOrMessage());
      m.set(field, [...(m.get(field) ?? []), ...values]);
    }
    if (end) expect_(end);
    return m;
  }
  return message(undefined);
}

/**
 * The fields of Triton's ModelConfig messages that a cnnc config may use, with their kinds, from
 * the ModelConfig protobuf's documentation: a field outside these, or of another kind, fails.
 */
const SCHEMA: Record<string, Record<string, string>> = {
  ModelConfig: {
    name: 'string', platform: 'string', backend: 'string', max_batch_size: 'int', input: 'ModelInput*', output: 'ModelOutput*',
    dynamic_batching: 'ModelDynamicBatching', instance_group: 'ModelInstanceGroup*', parameters: 'ParameterEntry*',
  },
  ModelInput: { name: 'string', data_type: 'DataType', format: 'Format', dims: 'int*' },
  ModelOutput: { name: 'string', data_type: 'DataType', dims: 'int*', label_filename: 'string' },
  ModelDynamicBatching: { preferred_batch_size: 'int*', max_queue_delay_microseconds: 'int' },
  ModelInstanceGroup: { name: 'string', kind: 'Kind', count: 'int', gpus: 'int*' },
  ParameterEntry: { key: 'string', value: 'ModelParameter' },
  ModelParameter: { string_value: 'string' },
};
const ENUMS: Record<string, string[]> = {
  DataType: ['TYPE_BOOL', 'TYPE_UINT8', 'TYPE_INT8', 'TYPE_INT16', 'TYPE_INT32', 'TYPE_INT64', 'TYPE_FP16', 'TYPE_FP32', 'TYPE_FP64', 'TYPE_STRING'],
  Format: ['FORMAT_NONE', 'FORMAT_NHWC', 'FORMAT_NCHW'],
  Kind: ['KIND_AUTO', 'KIND_GPU', 'KIND_CPU', 'KIND_MODEL'],
};

/** Throws naming the first field that ModelConfig's schema does not allow. */
function validate(m: PbMessage, type: string, where = type): void {
  for (const [field, values] of m) {
    const kind = SCHEMA[type][field];
    if (!kind) throw new Error(`${where}: ${type} has no field ${field}`);
    const base = kind.replace(/\*$/, '');
    if (!kind.endsWith('*') && values.length !== 1) throw new Error(`${where}.${field}: not repeated, but given ${values.length} times`);
    for (const v of values) {
      const at = `${where}.${field}`;
      if (base === 'string' && typeof v !== 'string') throw new Error(`${at}: expected a string`);
      if (base === 'int' && !Number.isInteger(v)) throw new Error(`${at}: expected an integer`);
      if (ENUMS[base] && !(typeof v === 'object' && 'enum' in v && ENUMS[base].includes((v as { enum: string }).enum))) throw new Error(`${at}: expected one of ${ENUMS[base].join(' ')}`);
      if (SCHEMA[base]) {
        if (!(v instanceof Map)) throw new Error(`${at}: expected a message`);
        validate(v, base, at);
      }
    }
  }
}

const one = (m: PbMessage, field: string) => m.get(field)?.[0];
const msgs = (m: PbMessage, field: string) => (m.get(field) ?? []) as PbMessage[];
const enumOf = (v: PbValue | undefined) => (v as { enum: string }).enum;
const parameters = (m: PbMessage) => new Map(msgs(m, 'parameters').map((p) => [one(p, 'key') as string, one(one(p, 'value') as PbMessage, 'string_value') as string]));

// --- ONNX ---------------------------------------------------------------------------------------

interface OnnxIo { name: string; elemType: number; dims: (number | string)[] }
function onnxIo(bytes: Uint8Array): { inputs: OnnxIo[]; outputs: OnnxIo[] } {
  const g = onnxProto.onnx.ModelProto.decode(bytes).graph!;
  const io = (v: onnxProto.onnx.IValueInfoProto): OnnxIo => ({
    name: v.name ?? '',
    elemType: v.type?.tensorType?.elemType ?? 0,
    dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue))),
  });
  const initializers = new Set((g.initializer ?? []).map((t) => t.name));
  return { inputs: (g.input ?? []).filter((v) => !initializers.has(v.name)).map(io), outputs: (g.output ?? []).map(io) };
}
const ONNX_FLOAT = 1;

describe('cnnc compile --triton', () => {
  const dir = path.join(tmp, 'repo');
  const pets = path.join(dir, 'Pets');

  it('writes DIR/<model>/config.pbtxt, labels.txt and 1/model.onnx, and nothing else', () => {
    const r = cnnc(['compile', source, '--triton', dir, '--max-batch', '6']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Pets: Triton model Pets: 1\/model\.onnx \(\d+ ops, [\d.]+ KB\), config\.pbtxt \(onnxruntime backend, max batch 6, KIND_GPU\), labels\.txt \(3 classes\)/);
    expect(tree(dir)).toEqual(['Pets', 'Pets/1', 'Pets/1/model.onnx', 'Pets/config.pbtxt', 'Pets/labels.txt']);
  });

  it('config.pbtxt is a ModelConfig in text format, field by field', () => {
    const config = parsePbtxt(readFileSync(path.join(pets, 'config.pbtxt'), 'utf8'));
    validate(config, 'ModelConfig');
    expect([...config.keys()]).toEqual(['name', 'backend', 'max_batch_size', 'input', 'output', 'dynamic_batching', 'instance_group', 'parameters']);
    expect(one(config, 'name')).toBe('Pets');
    expect(one(config, 'backend')).toBe('onnxruntime');
    expect(one(config, 'max_batch_size')).toBe(6);
    const [input] = msgs(config, 'input');
    expect(msgs(config, 'input')).toHaveLength(1);
    expect(one(input, 'name')).toBe('input');
    expect(enumOf(one(input, 'data_type'))).toBe('TYPE_FP32');
    expect(enumOf(one(input, 'format'))).toBe('FORMAT_NCHW');
    expect(input.get('dims')).toEqual([3, 16, 16]);
    const [output] = msgs(config, 'output');
    expect(msgs(config, 'output')).toHaveLength(1);
    expect(one(output, 'name')).toBe('logits');
    expect(enumOf(one(output, 'data_type'))).toBe('TYPE_FP32');
    expect(output.get('dims')).toEqual([3]);
    expect(one(output, 'label_filename')).toBe('labels.txt');
    const batching = one(config, 'dynamic_batching') as PbMessage;
    expect(one(batching, 'max_queue_delay_microseconds')).toBe(0);
    expect(batching.has('preferred_batch_size')).toBe(false);
    expect(msgs(config, 'instance_group').map((g) => [one(g, 'count'), enumOf(one(g, 'kind'))])).toEqual([[1, 'KIND_GPU']]);
    const params = parameters(config);
    expect(params.get('cnnc.model')).toBe('Pets');
    expect(params.get('cnnc.source_file')).toBe('models.cnn');
    expect(JSON.parse(params.get('cnnc.preprocess')!)).toEqual({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], classes: CLASSES });
    expect(JSON.parse(params.get('cnnc.input_shape')!)).toEqual([3, 16, 16]);
  });

  it('the comments say how to preprocess the input', () => {
    const text = readFileSync(path.join(pets, 'config.pbtxt'), 'utf8');
    expect(text).toMatch(/^# Input "input": float32 \[batch, 3, 16, 16\], NCHW, channels in RGB order\.$/m);
    expect(text).toMatch(/^# Preprocess .*pixels scaled to \[0, 1\], then \(x - mean\) \/ std per channel, mean \[0\.485, 0\.456, 0\.406\], std \[0\.229, 0\.224, 0\.225\]\.$/m);
  });

  it('model.onnx is the graph compile -o writes, and its input and output agree with the config', () => {
    const onnx = readFileSync(path.join(pets, '1', 'model.onnx'));
    const plain = path.join(tmp, 'pets.onnx');
    expect(cnnc(['compile', source, '-o', plain]).status).toBe(0);
    expect(onnx.equals(readFileSync(plain))).toBe(true);
    const config = parsePbtxt(readFileSync(path.join(pets, 'config.pbtxt'), 'utf8'));
    const { inputs, outputs } = onnxIo(onnx);
    for (const [io, field] of [[inputs, 'input'], [outputs, 'output']] as const) {
      const [tensor] = msgs(config, field);
      expect(io.map((v) => v.name)).toEqual([one(tensor, 'name')]);
      expect(io[0].elemType).toBe(ONNX_FLOAT); // TYPE_FP32
      // The batch dimension is symbolic in the graph, and left out of the config's dims.
      expect(typeof io[0].dims[0]).toBe('string');
      expect(io[0].dims.slice(1)).toEqual(tensor.get('dims'));
    }
  });

  it.skipIf(!onnxPython())('model.onnx passes ONNX\'s checker', () => {
    const r = onnxCheck(path.join(pets, '1', 'model.onnx'));
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('labels.txt has the model\'s classes, one a line, in order', () => {
    expect(readFileSync(path.join(pets, 'labels.txt'), 'utf8')).toBe(CLASSES.map((c) => `${c}\n`).join(''));
  });

  it('runs a batch of max_batch_size in onnxruntime, each row as the sample alone gives it', async () => {
    const { session } = await createSession(readFileSync(path.join(pets, '1', 'model.onnx')));
    const size = 3 * 16 * 16;
    const batch = 6;
    const x = Float32Array.from({ length: batch * size }, (_, i) => Math.sin(i * 0.37));
    const all = await runSession(session, { input: floatTensor(x, [batch, 3, 16, 16]) });
    expect(all.logits.dims).toEqual([batch, 3]);
    for (let s = 0; s < batch; s++) {
      const alone = await runSession(session, { input: floatTensor(x.slice(s * size, (s + 1) * size), [1, 3, 16, 16]) });
      const row = [...all.logits.data.subarray(s * 3, (s + 1) * 3)];
      row.forEach((v, k) => expect(v).toBeCloseTo(alone.logits.data[k], 5));
    }
    await session.release();
  });

  it('--weights fills model.onnx as compile -o does', () => {
    const seeded = path.join(tmp, 'seed7.onnx');
    expect(cnnc(['compile', source, '-o', seeded, '--seed', '7']).status).toBe(0);
    const out = path.join(tmp, 'weights-repo');
    const r = cnnc(['compile', source, '--triton', out, '--weights', seeded]);
    expect(r.status).toBe(0);
    const want = readInitializers(readFileSync(seeded));
    const have = readInitializers(readFileSync(path.join(out, 'Pets', '1', 'model.onnx')));
    expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, t] of want) expect(have.get(name)!.data).toEqual(t.data);
    const defaultSeed = readInitializers(readFileSync(path.join(pets, '1', 'model.onnx')));
    expect(defaultSeed.get('conv1.weight')!.data).not.toEqual(want.get('conv1.weight')!.data);
  });

  it('--triton-kind cpu and a vector input: KIND_CPU, no image format', () => {
    const out = path.join(tmp, 'tabular-repo');
    expect(cnnc(['compile', source, '-m', 'Tabular', '--triton', out, '--triton-kind', 'cpu']).status).toBe(0);
    expect(tree(out)).toEqual(['Tabular', 'Tabular/1', 'Tabular/1/model.onnx', 'Tabular/config.pbtxt']);
    const config = parsePbtxt(readFileSync(path.join(out, 'Tabular', 'config.pbtxt'), 'utf8'));
    validate(config, 'ModelConfig');
    expect(one(config, 'max_batch_size')).toBe(DEFAULT_MAX_BATCH);
    const [input] = msgs(config, 'input');
    expect(input.has('format')).toBe(false);
    expect(input.get('dims')).toEqual([20]);
    expect(msgs(config, 'output')[0].get('dims')).toEqual([4]);
    expect(msgs(config, 'output')[0].has('label_filename')).toBe(false);
    expect(enumOf(one(msgs(config, 'instance_group')[0], 'kind'))).toBe('KIND_CPU');
  });

  it('a single-output binary classifier gets no labels file, and says why', () => {
    const out = path.join(tmp, 'binary-repo');
    const r = cnnc(['compile', source, '-m', 'Binary', '--triton', out]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^cnnc: note: Binary: the single output scores class "yes" against "no", so no labels\.txt is written/);
    expect(tree(out)).toEqual(['Binary', 'Binary/1', 'Binary/1/model.onnx', 'Binary/config.pbtxt']);
    const config = parsePbtxt(readFileSync(path.join(out, 'Binary', 'config.pbtxt'), 'utf8'));
    expect(msgs(config, 'output')[0].has('label_filename')).toBe(false);
  });

  it('the help gives the default max batch the config gets', () => {
    expect(cnnc(['compile', '--help']).stdout).toContain(`(default ${DEFAULT_MAX_BATCH})`);
  });
});

describe('cnnc compile --triton refuses, with one line and nothing written', () => {
  const expectRefused = (r: ReturnType<typeof cnnc>, message: RegExp) => {
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(message);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  };

  it('a file with errors, an unknown model, classes that do not match the output', () => {
    const bad = path.join(tmp, 'bad.cnn');
    writeFileSync(bad, 'model Bad {\n  input 3x8x8\n  conv 4 3x3 -> dense 10\n}\n');
    const out = path.join(tmp, 'refused');
    const withErrors = cnnc(['compile', bad, '--triton', out]);
    expect(withErrors.status).toBe(1);
    expect(withErrors.stderr).toMatch(/bad\.cnn:3:\d+: error/);
    expect(withErrors.stderr).toMatch(/nothing written/);
    expectRefused(cnnc(['compile', source, '-m', 'Nope', '--triton', out]), /^cnnc: error: .*models\.cnn: has no model "Nope" \(models: Pets, Binary, Tabular, Mislabelled, Wide\)$/);
    expectRefused(cnnc(['compile', source, '-m', 'Mislabelled', '--triton', out]),
      /^cnnc: error: .*models\.cnn: model Mislabelled names 2 classes but its output has 3 values; labels\.txt would label the outputs wrongly/);
    expect(existsSync(out)).toBe(false);
  });

  it('options that do not go together', () => {
    const out = path.join(tmp, 'refused');
    expectRefused(cnnc(['compile', source, '--triton', out, '-o', path.join(tmp, 'x.onnx')]), /--triton DIR writes the ONNX graph itself .*; leave out -o$/);
    expectRefused(cnnc(['compile', source, '--triton', out, '--train']), /--triton .* does not combine with --train$/);
    expectRefused(cnnc(['compile', source, '-o', path.join(tmp, 'x.onnx'), '--max-batch', '4']), /--max-batch only applies with --triton DIR/);
    expectRefused(cnnc(['compile', source, '--triton', out, '--triton-kind', 'tpu']), /--triton-kind tpu: expected gpu, cpu or auto$/);
    expectRefused(cnnc(['compile', source, '--triton', out, '--max-batch', '0']), /--max-batch 0: expected a positive whole number/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(path.join(tmp, 'x.onnx'))).toBe(false);
  });

  it('DIR is a file, or DIR/<model> is one', () => {
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'x');
    expectRefused(cnnc(['compile', source, '--triton', file]), /a-file: is a file, not a folder; --triton names the folder for the Triton model repository$/);
    const out = path.join(tmp, 'file-in-the-way');
    mkdirSync(out);
    writeFileSync(path.join(out, 'Pets'), 'x');
    expectRefused(cnnc(['compile', source, '--triton', out]), /Pets: is not a folder \(a file or a link\); cnnc will not replace it$/);
    expect(readdirSync(out)).toEqual(['Pets']);
  });

  /** A tmpfs of `size` at a new folder, or undefined where mounting is not permitted. */
  function disk(name: string, size: string, readOnly = false): string | undefined {
    const at = path.join(tmp, name);
    mkdirSync(at);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${readOnly ? ',ro' : ''}`, 'tmpfs', at]).status !== 0) return undefined;
    mounts.push(at);
    return at;
  }

  it('a read-only disk: one line, before any work', (ctx) => {
    const ro = disk('ro', '64k', true);
    if (!ro) return ctx.skip('cannot mount a tmpfs here (not permitted)');
    expectRefused(cnnc(['compile', source, '--triton', path.join(ro, 'repo')]), /repo: cannot be created in .*: read-only file system \(EROFS\)$/);
  });

  it('a disk that fills up: one line, no model folder and no hidden folder left', (ctx) => {
    const small = disk('full', '128k');
    if (!small) return ctx.skip('cannot mount a tmpfs here (not permitted)');
    const out = path.join(small, 'repo');
    // Wide's 256×256 dense weights alone take 256 KiB.
    expectRefused(cnnc(['compile', source, '-m', 'Wide', '--triton', out]), /Wide: not written, and left as it was: .*no space left on device \(ENOSPC\)/);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('an existing model folder', () => {
  const dir = path.join(tmp, 'existing');
  const pets = path.join(dir, 'Pets');
  const config = path.join(pets, 'config.pbtxt');
  const write = (...args: string[]) => cnnc(['compile', source, '--triton', dir, ...args]);

  it('one cnnc wrote and nobody changed is replaced whole', () => {
    expect(write().status).toBe(0);
    expect(write('--max-batch', '3').status).toBe(0);
    expect(readFileSync(config, 'utf8')).toMatch(/^max_batch_size: 3$/m);
    expect(tree(dir)).toEqual(['Pets', 'Pets/1', 'Pets/1/model.onnx', 'Pets/config.pbtxt', 'Pets/labels.txt']);
  });

  it('an empty one is filled', () => {
    rmSync(pets, { recursive: true });
    mkdirSync(pets);
    expect(write().status).toBe(0);
    expect(tree(pets)).toEqual(['1', '1/model.onnx', 'config.pbtxt', 'labels.txt']);
  });

  it('with a file cnnc did not write, or a changed one, is left alone', () => {
    const before = readFileSync(config, 'utf8');
    writeFileSync(path.join(pets, 'README.md'), 'mine');
    const foreign = write('--max-batch', '9');
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toMatch(/^cnnc: error: .*Pets\/README\.md: was not written by cnnc, and replacing the model folder would lose it; move it away, or choose another --triton folder\n$/);
    rmSync(path.join(pets, 'README.md'));
    mkdirSync(path.join(pets, '2'));
    expect(write().stderr).toMatch(/Pets\/2\/: was not written by cnnc/);
    rmSync(path.join(pets, '2'), { recursive: true });
    writeFileSync(config, before.replace('count: 1', 'count: 2'));
    const edited = write('--max-batch', '9');
    expect(edited.status).toBe(1);
    expect(edited.stderr).toMatch(/Pets\/config\.pbtxt: was changed since cnnc wrote it, and replacing the model folder would lose the change/);
    expect(readFileSync(config, 'utf8')).toBe(before.replace('count: 1', 'count: 2'));
    writeFileSync(config, before);
    writeFileSync(path.join(pets, 'labels.txt'), 'cat\ndog\nfish\n');
    expect(write().stderr).toMatch(/Pets\/labels\.txt: was changed since cnnc wrote it/);
  });

  it('one cnnc did not write is left alone', () => {
    const other = path.join(tmp, 'theirs');
    mkdirSync(path.join(other, 'Pets', '1'), { recursive: true });
    writeFileSync(path.join(other, 'Pets', 'config.pbtxt'), 'name: "Pets"\n');
    const r = cnnc(['compile', source, '--triton', other]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Pets: exists and was not written by cnnc \(its config\.pbtxt has no cnnc-files line\); move it away, or choose another --triton folder\n$/);
    expect(tree(other)).toEqual(['Pets', 'Pets/1', 'Pets/config.pbtxt']);
  });
});

describe('a write killed at any point', () => {
  it('leaves the model folder as it was (absent, or the previous one); the next write cleans up', () => {
    const dir = path.join(tmp, 'killed');
    const pets = path.join(dir, 'Pets');
    const killedAt = (point: number, args: string[] = []) => cnnc(['compile', source, '--triton', dir, ...args], { CNNC_TEST_KILL_AT: String(point) });
    // Each file writes one chunk and renames once: two kill points per file, three files.
    for (let point = 1; point <= 6; point++) {
      const r = killedAt(point);
      expect(r.signal, `kill point ${point}`).toBe('SIGKILL');
      expect(existsSync(pets), `kill point ${point}`).toBe(false);
    }
    expect(readdirSync(dir).every((e) => /^\.Pets\.cnnc-tmp-\d+$/.test(e))).toBe(true);
    expect(cnnc(['compile', source, '--triton', dir, '--max-batch', '2']).status).toBe(0);
    expect(readdirSync(dir)).toEqual(['Pets']);
    const previous = snapshot(pets);
    for (let point = 1; point <= 6; point++) {
      expect(killedAt(point, ['--max-batch', '5']).signal).toBe('SIGKILL');
      expect(snapshot(pets), `kill point ${point}`).toEqual(previous);
    }
    // Past the last kill point the write completes.
    expect(killedAt(7, ['--max-batch', '5']).status).toBe(0);
    expect(readFileSync(path.join(pets, 'config.pbtxt'), 'utf8')).toMatch(/^max_batch_size: 5$/m);
    expect(readdirSync(dir)).toEqual(['Pets']);
  });
});
