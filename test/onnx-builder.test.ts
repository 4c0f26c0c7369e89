import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, buildModel, float, int64, readInitializers, tensor } from '../src/compiler/onnx/builder.ts';
import { createSession, cudaProviderInstalled, floatTensor, runSession } from '../src/runtime/session.ts';
import { UserError } from '../src/errors.ts';
import * as ref from './reference/ops.ts';
import { uniform } from './helpers/random.ts';
import { onnxCheck, onnxPython } from './helpers/onnx-check.ts';

const META = { producerName: 'cnnc-test', producerVersion: '0.0.0' };
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (err > tol * (1 + Math.abs(expected[i]))) expect.fail(`index ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Builds a one-input graph with `body`, runs it on ORT (CPU) and returns output 0. */
async function runUnary(xShape: number[], x: Float32Array, body: (g: GraphBuilder, x: string) => string, outShape: number[]) {
  const g = new GraphBuilder('test');
  const input = g.input('x', xShape);
  g.output(body(g, input), outShape);
  const { session } = await createSession(buildModel(g, META));
  const out = Object.values(await runSession(session, { x: floatTensor(x, xShape) }))[0];
  expect(out.dims).toEqual(outShape);
  return out.data;
}

describe('GraphBuilder on onnxruntime vs. the reference ops (opset 17)', () => {
  const convCases = [
    { name: 'strided, asymmetric pads, dilation', xs: [2, 3, 7, 9], ws: [4, 3, 3, 2], stride: [2, 1], pads: [1, 0, 2, 1], dilation: [1, 2], groups: 1 },
    { name: 'grouped', xs: [1, 4, 6, 5], ws: [6, 2, 3, 3], stride: [2, 2], pads: [1, 1, 1, 1], dilation: [1, 1], groups: 2 },
    { name: 'depthwise, dilated', xs: [1, 3, 5, 5], ws: [3, 1, 3, 3], stride: [1, 1], pads: [2, 2, 2, 2], dilation: [2, 2], groups: 3 },
    { name: 'even kernel, odd image', xs: [1, 2, 7, 7], ws: [3, 2, 4, 2], stride: [3, 2], pads: [0, 1, 1, 0], dilation: [1, 1], groups: 1 },
  ] as const;

  for (const c of convCases) {
    it(`Conv: ${c.name}`, async () => {
      const x = uniform(1, size([...c.xs])), w = uniform(2, size([...c.ws])), b = uniform(3, c.ws[0]);
      const opts = { stride: [...c.stride], pads: [...c.pads], dilation: [...c.dilation], groups: c.groups } as ref.Conv2dOptions;
      const expected = ref.conv2d(x, [...c.xs], w, [...c.ws], b, opts);
      const got = await runUnary([...c.xs], x, (g, xi) => g.op('Conv', [xi, g.initializer('w', w, [...c.ws]), g.initializer('b', b, [c.ws[0]])], {
        kernel_shape: [c.ws[2], c.ws[3]], strides: [...c.stride], pads: [...c.pads], dilations: [...c.dilation], group: c.groups,
      }), expected.shape);
      expectClose(got, expected.data);
    });
  }

  it('MaxPool with odd kernel, stride and pads', async () => {
    const s = [2, 3, 7, 6], x = uniform(4, size(s));
    const o = { kernel: [3, 2], stride: [2, 2], pads: [1, 0, 1, 1] } as ref.Pool2dOptions;
    const expected = ref.maxPool2d(x, s, o);
    const got = await runUnary(s, x, (g, xi) => g.op('MaxPool', [xi], { kernel_shape: o.kernel, strides: o.stride, pads: o.pads }), expected.shape);
    expectClose(got, expected.data);
  });

  for (const countIncludePad of [true, false]) {
    it(`AveragePool count_include_pad=${Number(countIncludePad)}`, async () => {
      const s = [1, 2, 6, 7], x = uniform(5, size(s));
      const o = { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], countIncludePad } as const;
      const expected = ref.avgPool2d(x, s, { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], countIncludePad });
      const got = await runUnary(s, x, (g, xi) => g.op('AveragePool', [xi], {
        kernel_shape: [...o.kernel], strides: [...o.stride], pads: [...o.pads], count_include_pad: Number(countIncludePad),
      }), expected.shape);
      expectClose(got, expected.data);
    });
  }

  it('GlobalAveragePool and GlobalMaxPool', async () => {
    const s = [2, 3, 5, 4], x = uniform(6, size(s));
    expectClose(await runUnary(s, x, (g, xi) => g.op('GlobalAveragePool', [xi]), [2, 3, 1, 1]), ref.globalAvgPool(x, s).data);
    expectClose(await runUnary(s, x, (g, xi) => g.op('GlobalMaxPool', [xi]), [2, 3, 1, 1]), ref.globalMaxPool(x, s).data);
  });

  it('Gemm with transB (PyTorch weight layout)', async () => {
    const x = uniform(7, 15), w = uniform(8, 20), b = uniform(9, 4);
    const expected = ref.dense(x, [3, 5], w, [4, 5], b);
    const got = await runUnary([3, 5], x, (g, xi) => g.op('Gemm', [xi, g.initializer('w', w, [4, 5]), g.initializer('b', b, [4])], { transB: 1 }), [3, 4]);
    expectClose(got, expected.data);
  });

  it('BatchNormalization (inference)', async () => {
    const s = [2, 3, 4, 5], x = uniform(10, size(s), -3, 3);
    const [gamma, beta, mean, variance] = [uniform(11, 3), uniform(12, 3), uniform(13, 3), uniform(14, 3, 0.2, 2)];
    const expected = ref.batchNormInference(x, s, gamma, beta, mean, variance, 1e-3);
    const got = await runUnary(s, x, (g, xi) => g.op('BatchNormalization', [
      xi, g.initializer('gamma', gamma, [3]), g.initializer('beta', beta, [3]), g.initializer('mean', mean, [3]), g.initializer('var', variance, [3]),
    ], { epsilon: float(1e-3) }), s);
    expectClose(got, expected.data);
  });

  const s = [2, 3, 4, 5];
  const x = uniform(20, size(s), -4, 4);
  const activations: [string, (g: GraphBuilder, x: string) => string, () => ref.Result][] = [
    ['Relu', (g, xi) => g.op('Relu', [xi]), () => ref.relu(x, s)],
    ['LeakyRelu', (g, xi) => g.op('LeakyRelu', [xi], { alpha: float(0.2) }), () => ref.leakyRelu(x, s, 0.2)],
    ['PRelu (per channel)', (g, xi) => g.op('PRelu', [xi, g.initializer('slope', new Float32Array([0.1, 0.2, 0.3]), [3, 1, 1])]), () => ref.prelu(x, s, [0.1, 0.2, 0.3])],
    // alpha = 1.0 must still be written as a FLOAT attribute, or ORT rejects the node.
    ['Elu', (g, xi) => g.op('Elu', [xi], { alpha: float(1) }), () => ref.elu(x, s, 1)],
    ['Gelu as x*0.5*(1+Erf(x/sqrt2))', (g, xi) => {
      const c = (v: number) => g.constant(new Float32Array([v]), []);
      const erf = g.op('Erf', [g.op('Div', [xi, c(Math.SQRT2)])]);
      return g.op('Mul', [g.op('Mul', [xi, c(0.5)]), g.op('Add', [erf, c(1)])]);
    }, () => ref.gelu(x, s)],
    ['Sigmoid', (g, xi) => g.op('Sigmoid', [xi]), () => ref.sigmoid(x, s)],
    ['SiLU as x*Sigmoid(x)', (g, xi) => g.op('Mul', [xi, g.op('Sigmoid', [xi])]), () => ref.silu(x, s)],
    ['Tanh', (g, xi) => g.op('Tanh', [xi]), () => ref.tanh(x, s)],
    ['HardSwish', (g, xi) => g.op('HardSwish', [xi]), () => ref.hardswish(x, s)],
    ['Softmax (last axis)', (g, xi) => g.op('Softmax', [xi], { axis: -1 }), () => ref.softmax(x, s)],
  ];
  for (const [name, build, expected] of activations) {
    it(name, async () => expectClose(await runUnary(s, x, build, s), expected().data));
  }
});

describe('tutorial worked examples through onnxruntime', () => {
  it('5x5 image 1..25 convolved with [[1,0,-1],[2,0,-2],[1,0,-1]] gives -8 at the top-left', async () => {
    const image = Float32Array.from({ length: 25 }, (_, i) => i + 1);
    const kernel = new Float32Array([1, 0, -1, 2, 0, -2, 1, 0, -1]);
    const got = await runUnary([1, 1, 5, 5], image, (g, xi) => g.op('Conv', [xi, g.initializer('k', kernel, [1, 1, 3, 3])], { kernel_shape: [3, 3] }), [1, 1, 3, 3]);
    expect(got[0]).toBe(-8);
    expect([...got]).toEqual(Array(9).fill(-8));
  });

  it('4x4 feature map max-pooled 2x2 stride 2 gives [[6,4],[4,8]]', async () => {
    const fm = new Float32Array([1, 3, 2, 4, 5, 6, 1, 2, 3, 2, 8, 1, 4, 1, 3, 7]);
    const got = await runUnary([1, 1, 4, 4], fm, (g, xi) => g.op('MaxPool', [xi], { kernel_shape: [2, 2], strides: [2, 2] }), [1, 1, 2, 2]);
    expect([...got]).toEqual([6, 4, 4, 8]);
  });
});

describe('GraphBuilder details', () => {
  it('rejects fractional numbers as int attributes and duplicate names', () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', [1]);
    expect(() => g.op('LeakyRelu', [x], { alpha: 0.5 })).toThrow(/float\(\)/);
    expect(() => g.input('x', [1])).toThrow(/duplicate/);
  });

  it('builds Loop bodies as subgraphs with names unique across scopes', async () => {
    const g = new GraphBuilder('loop');
    const x = g.input('x', [2]);
    const one = g.constant(new Float32Array([1, 1]));
    const body = g.subgraph('body');
    body.input('iter', [], 'int64');
    const cond = body.input('cond', [], 'bool');
    const v = body.input('v', [2]);
    body.output(body.op('Identity', [cond]), [], 'bool');
    body.output(body.op('Add', [v, one]), [2]); // `one` comes from the outer scope
    const [y] = g.node('Loop', [g.constant(int64([3]), []), '', x], { body: body.toGraph() });
    g.output(y, [2]);
    const model = buildModel(g, META);
    const { session } = await createSession(model);
    const out = await runSession(session, { x: floatTensor(new Float32Array([0.5, -2]), [2]) });
    expect([...out[y].data]).toEqual([3.5, 1]);
    if (python) {
      const file = path.join(mkdtempSync(path.join(tmpdir(), 'cnnc-loop-')), 'loop.onnx');
      writeFileSync(file, model);
      expect(onnxCheck(file)).toMatchObject({ ok: true });
    }
  });

  it('reads back float initializers and skips other types', () => {
    const g = new GraphBuilder('init');
    g.initializer('w', new Float32Array([1.5, -2, 3, 4]), [2, 2]);
    g.constant(int64([1, 2]));
    g.output(g.op('Identity', ['w']), [2, 2]);
    const inits = readInitializers(buildModel(g, { ...META, metadata: { k: 'v' } }));
    expect([...inits.keys()]).toEqual(['w']);
    expect(inits.get('w')!.dims).toEqual([2, 2]);
    expect([...inits.get('w')!.data]).toEqual([1.5, -2, 3, 4]);
    expect(() => readInitializers(new Uint8Array([0xff, 0xff, 0xff]))).toThrow(UserError);
  });

  it('checks tensor sizes against dims', () => {
    expect(() => tensor(new Float32Array(3), [2, 2])).toThrow(/3 values/);
  });
});

const python = onnxPython();
const skipReason = python ? '' : ' [skipped: no python3 with the onnx package; install python3-onnx or set CNNC_PYTHON]';

describe(`onnx_check.py (ONNX checker and shape inference)${skipReason}`, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-onnx-check-'));

  function smallCnn(declaredOut: (number | string)[]): string {
    const g = new GraphBuilder('cnn');
    const x = g.input('x', ['N', 3, 8, 8]);
    const conv = g.op('Conv', [x, g.initializer('w', uniform(1, 4 * 3 * 3 * 3), [4, 3, 3, 3])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { output: 'conv' });
    g.valueInfo(conv, ['N', 4, 999, 999]); // deliberately wrong: the script must ignore our value_info
    const pooled = g.op('MaxPool', [g.op('Relu', [conv])], { kernel_shape: [2, 2], strides: [2, 2] }, { output: 'pooled' });
    const flat = g.op('Flatten', [pooled], { axis: 1 }, { output: 'flat' });
    const fc = g.op('Gemm', [flat, g.initializer('fc', uniform(2, 10 * 64), [10, 64])], { transB: 1 }, { output: 'logits' });
    g.output(fc, declaredOut);
    const file = path.join(dir, `cnn-${declaredOut.join('x')}.onnx`);
    writeFileSync(file, buildModel(g, META));
    return file;
  }

  it.skipIf(!python)('validates a model and returns ONNX-inferred shapes', () => {
    const r = onnxCheck(smallCnn(['N', 10]));
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.shapes).toMatchObject({ x: ['N', 3, 8, 8], conv: ['N', 4, 8, 8], pooled: ['N', 4, 4, 4], flat: ['N', 64], logits: ['N', 10] });
  });

  it.skipIf(!python)('reports a declared output shape that contradicts inference', () => {
    const r = onnxCheck(smallCnn(['N', 11]));
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/shape|dim/i);
  });
});

describe('createSession device selection', () => {
  const g = new GraphBuilder('id');
  g.output(g.op('Identity', [g.input('x', [1])]), [1]);
  const model = buildModel(g, META);

  it('defaults to cpu', async () => {
    expect((await createSession(model, { threads: 1, optimization: 'basic' })).device).toBe('cpu');
  });

  it.skipIf(cudaProviderInstalled())('device cuda without the CUDA provider is a UserError naming CUDA and the install step', async () => {
    const err = await createSession(model, { device: 'cuda' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/CUDA/);
    expect((err as Error).message).toMatch(/npx cnnc cuda install/);
  });

  it.skipIf(cudaProviderInstalled())('device auto falls back to cpu with a notice', async () => {
    const r = await createSession(model, { device: 'auto' });
    expect(r.device).toBe('cpu');
    expect(r.notice).toMatch(/CPU/);
  });
});
