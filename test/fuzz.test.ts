/**
 * The quick fuzzing run (the long one is `npm run fuzz`): a few thousand generated inputs, seed 1,
 * through every property in test/fuzz/properties.ts, plus the reproducers earlier runs found.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { failuresOf, fuzz } from './fuzz/run.ts';

// The time bounds are for an idle machine; the suite runs beside other test files on 2 cores.
const SLACK = 4;

describe('fuzzing check(), format and the incremental checker', () => {
  it('3,000 generated inputs, seed 1: every property holds', () => {
    const found = fuzz({ count: 3000, seed: 1, incrementalEvery: 50, slack: SLACK });
    const shown = found.slice(0, 5).map((f) => `${f.property}: ${f.detail}\n  minimal: ${JSON.stringify(f.minimal)}`);
    expect(shown).toEqual([]);
  });

  const dir = new URL('./fixtures/fuzz/', import.meta.url);
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.cnn')).sort()) {
    it(`regression: ${name}`, () => {
      const text = readFileSync(new URL(name, dir), 'utf8');
      // `NAME.seed-N.cnn`: an incremental divergence, found with the edit sequence of seed N.
      const seed = Number(/\.seed-(\d+)\.cnn$/.exec(name)?.[1] ?? 1);
      expect(failuresOf(text, seed, true, SLACK)).toEqual([]);
    });
  }
});
