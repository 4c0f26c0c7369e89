/**
 * Every layer kind in the registry and every combinator in the combinator table is proven four
 * ways, or this test names those that are not: a float64 reference forward
 * (test/reference/layers.ts, test/reference/combinators.ts), a lowering case against a reference
 * (emit-layers.test.ts), a gradient case against finite differences (grad-layers.test.ts,
 * grad-combinators.test.ts) and a model in the PyTorch parity files (export-torch.test.ts). The
 * tables are those tests' own (test/helpers/layer-cases.ts); a case counts for every layer kind and
 * combinator its model contains once checked.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { children, combinators, seqRole } from '../src/compiler/combinators/index.ts';
import { layerKinds } from '../src/compiler/layers/index.ts';
import type { Node } from '../src/compiler/model.ts';
import { modelSource } from './helpers/emit.ts';
import {
  COMBINATOR_GRADIENT_CASES, COMBINATOR_LOWERING_CASES, GRADIENT_CASES, LOWERING_CASES, loweringSource, TORCH_PARITY_FILES,
} from './helpers/layer-cases.ts';
import { referenceCombinators } from './reference/combinators.ts';
import { referenceLayers } from './reference/layers.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The layer kinds (by registry name) and combinators (by keyword) a checked tree contains: a
 * combinator's own node by its kind, and a sequence that is a chain's step by its role (repeat,
 * frozen; a block's expansion is none). A repeat's items are its copies, chains of their own.
 */
function namesIn(node: Node, out: Set<string>, isStep = false): Set<string> {
  if (node.kind === 'layer') return out.add(node.layer.name);
  const role = node.kind === 'seq' ? (isStep ? seqRole(node) : undefined) : node.kind;
  if (role && role !== 'block') out.add(role);
  const stepsInside = node.kind === 'seq' && role !== 'repeat';
  for (const child of children(node)) namesIn(child, out, stepsInside);
  return out;
}

/** The names in `source`'s models, which must check without errors. */
function namesInSource(source: string, file: string): string[] {
  const r = check(source, file);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) expect.fail(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  return r.models.flatMap((m) => [...namesIn(m.root, new Set())]);
}

const covered = (sources: { source: string; file: string }[]) => new Set(sources.flatMap((s) => namesInSource(s.source, s.file)));

/** `f`'s value, computed on the first call (each table is checked once for both registries). */
const once = <T>(f: () => T): (() => T) => {
  let value: T | undefined;
  return () => (value ??= f());
};

const lowering = once(() => covered([...LOWERING_CASES, ...COMBINATOR_LOWERING_CASES].map((k) => ({ source: loweringSource(k), file: `lowering: ${k.name}` }))));
const gradient = once(() => covered([...GRADIENT_CASES, ...COMBINATOR_GRADIENT_CASES].map((k) => ({ source: modelSource(k.input, k.body), file: `gradient: ${k.name}` }))));
const parity = once(() => {
  expect(TORCH_PARITY_FILES.length).toBeGreaterThan(0);
  return covered(TORCH_PARITY_FILES.map((file) => ({ source: readFileSync(path.join(root, file), 'utf8'), file })));
});

const registries = [
  { what: 'layer kind', names: layerKinds.map((k) => k.name), references: Object.keys(referenceLayers), referenceFile: 'test/reference/layers.ts' },
  { what: 'combinator', names: Object.keys(combinators), references: Object.keys(referenceCombinators), referenceFile: 'test/reference/combinators.ts' },
];

for (const { what, names, references, referenceFile } of registries) {
  const missing = (have: Set<string>) => names.filter((k) => !have.has(k));

  describe(`every ${what} is proven`, () => {
    it(`has a float64 reference forward (${referenceFile}), and the reference names only ${what}s`, () => {
      expect(missing(new Set(references)), `${what}s without a reference`).toEqual([]);
      expect(references.filter((k) => !names.includes(k)), `references of no ${what}`).toEqual([]);
    });

    it('has a lowering case (LOWERING_CASES, COMBINATOR_LOWERING_CASES: emit-layers.test.ts)', () => {
      expect(missing(lowering()), `${what}s without a lowering case`).toEqual([]);
    });

    it('has a gradient case (GRADIENT_CASES, COMBINATOR_GRADIENT_CASES: grad-layers.test.ts, grad-combinators.test.ts)', () => {
      expect(missing(gradient()), `${what}s without a gradient case`).toEqual([]);
    });

    it('is in a model of the PyTorch parity files (TORCH_PARITY_FILES, export-torch.test.ts)', () => {
      expect(missing(parity()), `${what}s in no PyTorch parity model`).toEqual([]);
    });
  });
}
