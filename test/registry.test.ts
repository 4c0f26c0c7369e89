/**
 * Every layer kind in the registry is proven four ways, or this test names the kinds that are
 * not: a float64 reference forward (test/reference/layers.ts), a lowering case against the
 * reference (emit-layers.test.ts), a gradient case against finite differences (grad-layers.test.ts)
 * and a model in the PyTorch parity files (export-torch.test.ts). The tables are those tests' own
 * (test/helpers/layer-cases.ts); a case counts for every kind its model contains once checked.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { layerKinds } from '../src/compiler/layers/index.ts';
import { layers } from '../src/compiler/model.ts';
import { modelSource } from './helpers/emit.ts';
import { GRADIENT_CASES, LOWERING_CASES, TORCH_PARITY_FILES } from './helpers/layer-cases.ts';
import { referenceLayers } from './reference/layers.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const KINDS = layerKinds.map((k) => k.name);

/** The registry names of the layers in `source`'s models, which must check without errors. */
function kindsIn(source: string, file: string): string[] {
  const r = check(source, file);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) expect.fail(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  return r.models.flatMap((m) => layers(m.root).map((l) => l.layer.name));
}

const covered = (sources: { source: string; file: string }[]) => new Set(sources.flatMap((s) => kindsIn(s.source, s.file)));
const missing = (have: Set<string>) => KINDS.filter((k) => !have.has(k));

describe('every layer kind is proven', () => {
  it('has a float64 reference forward (test/reference/layers.ts), and the reference names only registry kinds', () => {
    expect(missing(new Set(Object.keys(referenceLayers))), 'kinds without a reference').toEqual([]);
    expect(Object.keys(referenceLayers).filter((k) => !KINDS.includes(k)), 'references of no kind').toEqual([]);
  });

  it('has a lowering case (LOWERING_CASES, emit-layers.test.ts)', () => {
    const have = covered(LOWERING_CASES.map((k) => ({ source: modelSource(k.input.join('x'), k.body), file: `lowering: ${k.name}` })));
    expect(missing(have), 'kinds without a lowering case').toEqual([]);
  });

  it('has a gradient case (GRADIENT_CASES, grad-layers.test.ts)', () => {
    const have = covered(GRADIENT_CASES.map((k) => ({ source: modelSource(k.input, k.body), file: `gradient: ${k.name}` })));
    expect(missing(have), 'kinds without a gradient case').toEqual([]);
  });

  it('is in a model of the PyTorch parity files (TORCH_PARITY_FILES, export-torch.test.ts)', () => {
    expect(TORCH_PARITY_FILES.length).toBeGreaterThan(0);
    const have = covered(TORCH_PARITY_FILES.map((file) => ({ source: readFileSync(path.join(root, file), 'utf8'), file })));
    expect(missing(have), 'kinds in no PyTorch parity model').toEqual([]);
  });
});
