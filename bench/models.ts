/**
 * The checked models the benchmarks run, and their PyTorch form: the model.py that `cnnc export
 * --torch` writes (src/compiler/emit/torch/), in a temporary folder bench/torch_bench.py imports.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { check, type CheckResult } from '../src/index.ts';
import type { CheckedModel } from '../src/compiler/model.ts';
import { modelPy } from '../src/compiler/emit/torch/model-py.ts';

const checked = new Map<string, CheckResult>();

/** Checks a file and returns its model (the first, or the named one), refusing errors. */
export function loadModel(file: string, name?: string): CheckedModel {
  if (!checked.has(file)) checked.set(file, check(readFileSync(file, 'utf8'), file));
  const result = checked.get(file)!;
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`${file}: ${errors[0].message}`);
  const model = name ? result.models.find((m) => m.name === name) : result.models[0];
  if (!model) throw new Error(`${file}: no model ${name ?? ''}`);
  return model;
}

/** Where torch_bench.py finds a model: the folder of its model.py and the model's name. */
export interface TorchModel {
  dir: string;
  model: string;
}

let exportRoot: string | undefined;
const exported = new Map<string, string>();

/** The exported model.py of `model` (loaded from `file` with loadModel), written once per file. */
export function torchModel(file: string, model: CheckedModel): TorchModel {
  let dir = exported.get(file);
  if (!dir) {
    if (!exportRoot) {
      const root = mkdtempSync(path.join(tmpdir(), 'cnnc-bench-torch-'));
      process.on('exit', () => rmSync(root, { recursive: true, force: true }));
      exportRoot = root;
    }
    const result = checked.get(file);
    if (!result?.models.includes(model)) throw new Error(`torchModel: load ${file} with loadModel first`);
    dir = path.join(exportRoot, String(exported.size));
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'model.py'), modelPy({ file, source: result.sources, models: result.models, model }));
    exported.set(file, dir);
  }
  return { dir, model: model.name };
}
