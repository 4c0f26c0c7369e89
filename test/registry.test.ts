/**
 * Every layer kind in the registry and every combinator in the combinator table is proven four
 * ways, or this test names those that are not: a float64 reference forward (test/reference/layers.ts,
 * test/reference/combinators.ts), a lowering case against the reference (emit-layers.test.ts), a
 * gradient case against finite differences (grad-layers.test.ts, grad-combinators.test.ts) and a
 * model in the PyTorch parity files (export-torch.test.ts). The tables are those tests' own
 * (test/helpers/layer-cases.ts); a case counts for every kind and combinator its source contains
 * once checked.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { combinators } from '../src/compiler/combinators/index.ts';
import { layerKinds } from '../src/compiler/layers/index.ts';
import { layers } from '../src/compiler/model.ts';
import { allSteps } from '../src/lsp/analysis.ts';
import { modelSource } from './helpers/emit.ts';
import { COMBINATOR_GRADIENT_CASES, COMBINATOR_LOWERING_CASES, GRADIENT_CASES, LOWERING_CASES, loweringSource, TORCH_PARITY_FILES } from './helpers/layer-cases.ts';
import { referenceCombinators } from './reference/combinators.ts';
import { referenceLayers } from './reference/layers.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const KINDS = layerKinds.map((k) => k.name);
const KEYWORDS = Object.keys(combinators);

interface Source { source: string; file: string }

/** The registry names of the layers and the combinator keywords in `source`, which must check without errors. */
function contents({ source, file }: Source): string[] {
  const r = check(source, file);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) expect.fail(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  const kinds = r.models.flatMap((m) => layers(m.root).map((l) => l.layer.name));
  const keywords = [...allSteps(r.ast)].map(({ step }) => step.kind).filter((k) => k !== 'layer');
  return [...kinds, ...keywords];
}

/** The layer kinds, then the combinators, that no source contains. */
function missing(sources: Source[]): string[] {
  const have = new Set(sources.flatMap(contents));
  return [...KINDS, ...KEYWORDS].filter((k) => !have.has(k));
}

const lowering = [...LOWERING_CASES, ...COMBINATOR_LOWERING_CASES].map((k) => ({ source: loweringSource(k), file: `lowering: ${k.name}` }));
const gradient = [...GRADIENT_CASES, ...COMBINATOR_GRADIENT_CASES].map((k) => ({ source: modelSource(k.input, k.body), file: `gradient: ${k.name}` }));

describe('every layer kind and combinator is proven', () => {
  it('has a float64 reference forward (test/reference/), and the references name only registry kinds and combinators', () => {
    expect(KINDS.filter((k) => !(k in referenceLayers)), 'kinds without a reference').toEqual([]);
    expect(Object.keys(referenceLayers).filter((k) => !KINDS.includes(k)), 'references of no kind').toEqual([]);
    expect(KEYWORDS.filter((k) => !(k in referenceCombinators)), 'combinators without a reference').toEqual([]);
    expect(Object.keys(referenceCombinators).filter((k) => !KEYWORDS.includes(k)), 'references of no combinator').toEqual([]);
  });

  it('has a lowering case (LOWERING_CASES and COMBINATOR_LOWERING_CASES, emit-layers.test.ts)', () => {
    expect(missing(lowering), 'without a lowering case').toEqual([]);
  });

  it('has a gradient case (GRADIENT_CASES, grad-layers.test.ts; COMBINATOR_GRADIENT_CASES, grad-combinators.test.ts)', () => {
    expect(missing(gradient), 'without a gradient case').toEqual([]);
  });

  it('is in a model of the PyTorch parity files (TORCH_PARITY_FILES, export-torch.test.ts)', () => {
    expect(TORCH_PARITY_FILES.length).toBeGreaterThan(0);
    expect(missing(TORCH_PARITY_FILES.map((file) => ({ source: readFileSync(path.join(root, file), 'utf8'), file }))), 'in no PyTorch parity model').toEqual([]);
  });
});
