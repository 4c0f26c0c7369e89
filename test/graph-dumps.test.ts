/**
 * The emitted graphs of every example model as text (test/helpers/graph-text.ts), committed under
 * test/fixtures/graphs/ so that a change to the emitters shows as a diff to review. Each model has
 * its inference graph; models of up to TRAINING_NODES inference nodes also their training step and
 * evaluation graphs (the train loop is the training step inside a Loop, so it is not repeated).
 * `UPDATE_GOLDEN=1 npx vitest run test/graph-dumps.test.ts` rewrites them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import type { ParamBinding } from '../src/compiler/emit/context.ts';
import { compileInference } from '../src/compiler/emit/inference.ts';
import { emitEval, emitTrainStep, trainPlan } from '../src/compiler/emit/train.ts';
import { expectGolden } from './helpers/golden.ts';
import { graphText } from './helpers/graph-text.ts';
import { cnnFiles } from './helpers/layer-cases.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const DUMPS = path.join(root, 'test/fixtures/graphs');

/**
 * The four largest zoo networks (MobileNetV2, ResNet-50, GoogLeNet, EfficientNet-B0) have 150 to
 * 290 inference nodes and training steps of 0.8 to 1.2 MB of text each; ResNet-18 (69 nodes, 0.3 MB)
 * is the largest whose training graphs are kept.
 */
const TRAINING_NODES = 100;

/** Initializers with shapes and no values: the emitted graph without the cost of initialising VGG's 138M parameters. */
const withoutValues: ParamBinding = {
  bind(name, spec, _node, ctx) {
    const t = onnxProto.onnx.TensorProto.create({ name: ctx.reserve(name), dims: [...spec.shape], dataType: onnxProto.onnx.TensorProto.DataType.FLOAT });
    ctx.graph.initializers.push(t);
    return t.name;
  },
};

interface Dump { name: string; text: string }

const dumps = new Map<string, Dump[]>();

/** The dumps of `file`'s models, named by their path under test/fixtures/graphs (computed once). */
function dumpsOf(file: string): Dump[] {
  const cached = dumps.get(file);
  if (cached) return cached;
  const source = readFileSync(path.join(root, file), 'utf8');
  const result = check(source, file);
  expect(result.models.length).toBeGreaterThan(0);
  const out: Dump[] = [];
  const add = (model: string, graph: string, bytes: Uint8Array) => out.push({
    name: `${path.relative('examples', file).replace(/\.cnn$/, '')}.${model}.${graph}.txt`,
    text: `# ${file}: model ${model}, ${graph} graph (test/graph-dumps.test.ts)\n${graphText(bytes)}`,
  });
  for (const model of result.models) {
    const inference = compileInference(model, { file, source, params: withoutValues });
    add(model.name, 'inference', inference.bytes);
    if (inference.ops > TRAINING_NODES) continue;
    const plan = trainPlan(model, model.train);
    add(model.name, 'train_step', emitTrainStep(plan, { file, source }));
    add(model.name, 'eval', emitEval(plan, { file, source }));
  }
  dumps.set(file, out);
  return out;
}

const FILES = cnnFiles('examples');

describe('graph dumps of the examples', () => {
  for (const file of FILES) {
    it(file, () => {
      for (const d of dumpsOf(file)) {
        const at = path.join(DUMPS, d.name);
        mkdirSync(path.dirname(at), { recursive: true });
        expectGolden(at, d.text);
      }
    });
  }

  it('has no dumps of models that are gone', () => {
    const want = new Set(FILES.flatMap((f) => dumpsOf(f).map((d) => d.name)));
    const have = existsSync(DUMPS) ? readdirSync(DUMPS, { recursive: true }).map(String).filter((f) => f.endsWith('.txt')) : [];
    expect(have.filter((f) => !want.has(f)).sort(), 'stale dumps under test/fixtures/graphs (delete them)').toEqual([]);
  });
});
