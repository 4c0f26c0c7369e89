/** Compiling .cnn snippets to ONNX and running them on onnxruntime (CPU), for the emitter tests. */
import { expect } from 'vitest';
import { check } from '../../src/index.ts';
import { compileInference, type EmitOptions } from '../../src/compiler/emit/inference.ts';
import { readInitializers, type FloatInitializer } from '../../src/compiler/onnx/builder.ts';
import { createSession, floatTensor, runSession } from '../../src/runtime/session.ts';
import type { CheckedModel } from '../../src/compiler/model.ts';

export interface Compiled {
  model: CheckedModel;
  bytes: Uint8Array;
  weights: Map<string, FloatInitializer>;
  valueInfo: Map<string, (number | string)[]>;
}

/** Checks `source` (which must have no errors) and compiles its first model. */
export function compile(source: string, opts: EmitOptions = {}, file = 'test.cnn'): Compiled {
  const result = check(source, file);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  const model = result.models[0];
  const c = compileInference(model, { file, source, ...opts });
  return { model, bytes: c.bytes, weights: readInitializers(c.bytes), valueInfo: c.valueInfo };
}

/** A one-model source: `input SHAPE` then `body`. */
export const modelSource = (input: string, body: string) => `model T {\n  input ${input}\n  ${body}\n}\n`;

export async function run(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
  const { session } = await createSession(bytes, { threads: 1 });
  try {
    return (await runSession(session, { input: floatTensor(x, dims) })).logits;
  } finally {
    await session.release();
  }
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol * (1 + Math.abs(expected[i])))) expect.fail(`index ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

/** The initializer called `name`, failing the test when it is absent. */
export function weight(c: Compiled, name: string): Float32Array {
  const t = c.weights.get(name);
  if (!t) expect.fail(`no initializer ${name} (have ${[...c.weights.keys()].join(', ')})`);
  return t.data;
}

export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
