/**
 * Every example under examples/ compiles; ONNX's checker (full_check) accepts it; ONNX's own
 * shape inference agrees with our checker on every recorded layer output and on the output; and
 * onnxruntime runs it with the output shape the checker gave.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { onnxCheck, onnxPython } from './helpers/onnx-check.ts';
import { run, size } from './helpers/emit.ts';
import { uniform } from './helpers/random.ts';

const root = path.resolve(import.meta.dirname, '..', 'examples');
const files = ['tutorials', 'zoo', 'segmentation'].flatMap((dir) => {
  try {
    return readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.cnn')).sort().map((f) => path.join(root, dir, f));
  } catch {
    return [];
  }
});
const tmp = mkdtempSync(path.join(tmpdir(), 'cnnc-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const python = onnxPython();
if (!python) console.warn('emit-examples: skipping the ONNX checker and shape inference: no python3 with the onnx package (set CNNC_PYTHON)');

/** Big models run one sample, the rest a batch of 2. */
const batchFor = (macs: number, params: number) => (macs > 5e8 || params > 2e7 ? 1 : 2);

describe('examples compile to valid ONNX', () => {
  it('finds examples', () => expect(files.length).toBeGreaterThan(0));

  for (const file of files) {
    const rel = path.relative(path.dirname(root), file);
    it(rel, { timeout: 600_000 }, async () => {
      const text = readFileSync(file, 'utf8');
      const result = check(text, rel);
      expect(result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message)).toEqual([]);
      for (const model of result.models) {
        const compiled = compileInference(model, { file: rel, source: text });
        const out = path.join(tmp, `${path.basename(file, '.cnn')}-${model.name}.onnx`);
        writeFileSync(out, compiled.bytes);
        const logits = ['N', ...model.output!];

        if (python) {
          const r = onnxCheck(out);
          expect(r.error, `ONNX checker on ${model.name}`).toBeUndefined();
          expect(r.ok).toBe(true);
          expect(r.shapes.logits).toEqual(logits);
          expect(compiled.valueInfo.size).toBeGreaterThan(0);
          const differing = [...compiled.valueInfo].filter(([name, dims]) => JSON.stringify(r.shapes[name]) !== JSON.stringify(dims))
            .map(([name, dims]) => `${name}: ours [${dims}], ONNX [${r.shapes[name] ?? 'none'}]`);
          expect(differing).toEqual([]);
        }

        const batch = batchFor(model.totals.macs, model.totals.trainable + model.totals.nonTrainable);
        const dims = [batch, ...model.input!];
        const y = await run(compiled.bytes, uniform(11, size(dims)), dims);
        expect(y.dims).toEqual([batch, ...model.output!]);
        expect(y.data.every(Number.isFinite)).toBe(true);
        rmSync(out);
      }
    });
  }
});
