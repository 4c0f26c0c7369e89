/**
 * Every layer kind's backward pass (the registry's grad, run on onnxruntime in float32) against
 * directional central differences of the float64 reference forward, on small odd shapes with
 * strides, asymmetric padding, dilation, groups and depthwise convolutions (the cases are
 * test/helpers/layer-cases.ts's GRADIENT_CASES).
 */
import { describe, it } from 'vitest';
import { checkModel, expectGradients, runGradient } from './helpers/grad-check.ts';
import { GRADIENT_CASES } from './helpers/layer-cases.ts';

const model = (input: string, body: string) => checkModel(`model G {\n  input ${input}\n  ${body}\n}\n`);

describe('layer gradients', () => {
  for (const k of GRADIENT_CASES) {
    it(k.name, async () => expectGradients(await runGradient(model(k.input, k.body), { batch: k.batch ?? 2, xRange: k.xRange })));
  }
});
