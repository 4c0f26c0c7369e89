/**
 * Every layer kind's backward pass (the registry's grad, run on onnxruntime in float32) against
 * directional central differences of the float64 reference forward, on small odd shapes with
 * strides, asymmetric padding, dilation, groups and depthwise convolutions (the cases are
 * test/helpers/layer-cases.ts's GRADIENT_CASES).
 */
import { describe, expect, it } from 'vitest';
import { checkModel, expectGradients, runGradient } from './helpers/grad-check.ts';
import { GRADIENT_CASES } from './helpers/layer-cases.ts';
import { GRAD_PREFIX } from '../src/compiler/emit/train.ts';

const model = (input: string, body: string) => checkModel(`model G {\n  input ${input}\n  ${body}\n}\n`);

describe('layer gradients', () => {
  for (const k of GRADIENT_CASES) {
    it(k.name, async () => expectGradients(await runGradient(model(k.input, k.body), { batch: k.batch ?? 2, xRange: k.xRange })));
  }
});

describe('gradients at kinks', () => {
  it('hardsigmoid: dy/6 strictly inside (-3, 3), 0 at -3 and 3 (PyTorch\'s convention)', async () => {
    const x = Float32Array.of(-3.5, -3, -2.999, 0, 2.999, 3, 3.5);
    const { dy, outputs } = await runGradient(model('7', 'hardsigmoid'), { batch: 1, x });
    const inside = [false, false, true, true, true, false, false];
    expect([...outputs[`${GRAD_PREFIX}input`].data].map((v) => v + 0)).toEqual(inside.map((k, i) => (k ? Math.fround(dy[i] * Math.fround(1 / 6)) : 0)));
  });
});
