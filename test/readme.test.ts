/** The README's examples are real: every cnn block in it checks without diagnostics. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { check } from '../src/index.ts';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```cnn\n([\s\S]*?)```/g)].map((m) => m[1]);

it('README cnn blocks check clean', () => {
  expect(blocks.length).toBeGreaterThanOrEqual(2);
  for (const b of blocks) expect(check(b).diagnostics).toEqual([]);
});
