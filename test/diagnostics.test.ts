/**
 * Diagnostic fixtures: each test/fixtures/diagnostics/X.cnn has X.expected beside it, listing every
 * diagnostic as `line:col-line:col severity CODE: message` plus its hint, like a baseline.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { catalog } from '../src/compiler/diagnostics.ts';
import { LineMap } from '../src/compiler/source.ts';
import { expectGolden } from './helpers/golden.ts';

const dir = join(import.meta.dirname, 'fixtures', 'diagnostics');
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.cnn')).sort();

function baseline(text: string, file: string): string {
  const lines = new LineMap(text);
  const pos = (o: number) => {
    const p = lines.position(o);
    return `${p.line + 1}:${p.character + 1}`;
  };
  return check(text, file).diagnostics.map((d) => {
    const out = [`${pos(d.span.start)}-${pos(d.span.end)} ${d.severity} ${d.code}: ${d.message}`];
    if (d.hint) out.push(`    hint: ${d.hint}`);
    for (const r of d.related ?? []) out.push(`    related ${pos(r.span.start)}: ${r.message}`);
    for (const f of d.fixes ?? []) out.push(`    fix: ${f.title}`);
    return out.join('\n');
  }).join('\n') + '\n';
}

describe('diagnostic fixtures', () => {
  for (const f of fixtures) {
    it(f, () => {
      const text = readFileSync(join(dir, f), 'latin1');
      expectGolden(join(dir, f.replace(/\.cnn$/, '.expected')), baseline(text, f));
    });
  }
});

const codesOf = (text: string) => check(text).diagnostics.map((d) => d.code);

describe('required diagnostics', () => {
  it('kernel larger than the padded input names both sizes', () => {
    const d = check('model m { input 1x5x5 conv 8 7x7 }').diagnostics;
    expect(d[0].code).toBe('CNN3001');
    expect(d[0].message).toContain('7×7');
    expect(d[0].message).toContain('5×5');
  });
  it('a padded input can fit the kernel', () => {
    expect(codesOf('model m { input 1x5x5 conv 8 7x7 pad=1 }')).toEqual([]);
  });
  it('dense on a feature map hints at flatten and offers the fix', () => {
    const [d] = check('model m { input 1x4x4 dense 10 }').diagnostics;
    expect(d.code).toBe('CNN3002');
    expect(d.hint).toContain('flatten');
    expect(d.fixes?.[0].text).toBe('flatten -> ');
  });
  it('residual and concat mismatches show both shapes', () => {
    const [r] = check('model m { input 16x8x8 residual { conv 32 3x3 pad=1 } }').diagnostics;
    expect(r.message).toContain('16×8×8');
    expect(r.message).toContain('32×8×8');
    const [c] = check('model m { input 4x8x8 concat { conv 2 1x1 | conv 2 3x3 } }').diagnostics;
    expect(c.code).toBe('CNN3004');
    expect(c.message).toContain('2×8×8');
    expect(c.message).toContain('2×6×6');
  });
  it('a projection shortcut makes mismatched residuals legal', () => {
    const r = check('model m { input 16x8x8 residual project { conv 32 3x3 stride=2 pad=1 } }');
    expect(r.diagnostics).toEqual([]);
    expect(r.models[0].output).toEqual([32, 4, 4]);
  });
  it('an identity residual keeps every later shape', () => {
    const r = check('model m { input 8x8x8 residual { conv 8 3x3 pad=1 } -> relu -> conv 4 3x3 }');
    expect(r.diagnostics).toEqual([]);
    expect(r.models[0].output).toEqual([4, 6, 6]);
  });
  it('the projection finds the stride for odd sizes', () => {
    const r = check('model m { input 3x6x5 residual project { conv 4 3x3 stride=2 pad=1 -> bn } }');
    expect(r.diagnostics).toEqual([]);
    expect(r.models[0].output).toEqual([4, 3, 3]);
  });
  it('groups must divide channels', () => {
    expect(codesOf('model m { input 30x8x8 conv 64 3x3 groups=4 }')).toEqual(['CNN3006']);
    expect(codesOf('model m { input 32x8x8 conv 64 3x3 groups=4 }')).toEqual([]);
  });
  it('shuffle groups must divide the channels, and shuffle needs a feature map', () => {
    const [d] = check('model m { input 8x4x4 shuffle 3 }').diagnostics;
    expect([d.code, d.message]).toEqual(['CNN3006', 'shuffle groups = 3 does not divide the input channels 8']);
    expect(codesOf('model m { input 8x4x4 shuffle 4 }')).toEqual([]);
    expect(codesOf('model m { input 8 shuffle 2 }')).toEqual(['CNN3010']);
    expect(codesOf('model m { input 8x4x4 shuffle 0 }')).toEqual(['CNN2004']);
  });
  it('unknown layers and options suggest the closest name', () => {
    const d = check('model m { input 3x8x8 rleu -> conv 4 3x3 strde=2 }').diagnostics;
    expect(d.map((x) => [x.code, x.hint])).toEqual([
      ['CNN2001', 'did you mean "relu"?'],
      ['CNN2002', 'did you mean "stride"?'],
    ]);
  });
  it('missing and out-of-range arguments', () => {
    expect(codesOf('model m { input 3x8x8 conv -16 3x3 }')).toEqual(['CNN2004']);
    expect(codesOf('model m { input 3x8x8 conv 16 3x3 stride=0 }')).toEqual(['CNN2004']);
    expect(codesOf('model m { input 3x8x8 dropout 1 }')).toEqual(['CNN2004']);
    expect(codesOf('model m { input 3x8x8 dropout -0.1 }')).toEqual(['CNN2004']);
    expect(codesOf('model m { input 3x8x8 dropout 0.999 }')).toEqual([]);
    expect(codesOf('model m { input 3x8x8 conv }')).toEqual(['CNN2003', 'CNN2003']);
  });
  it('block arity', () => {
    const d = check('block b(c, k) { conv c k } model m { input 3x8x8 b(4) }').diagnostics;
    expect(d.map((x) => x.code)).toEqual(['CNN2007']);
    expect(d[0].message).toBe('block b takes 2 arguments but is given 1');
  });
  it('recursive blocks are an error, not a hang', () => {
    const d = check('block a { b } block b { a } model m { input 3x8x8 a }').diagnostics;
    expect(d.map((x) => x.code)).toContain('CNN2008');
  });
  it('sizes that overflow', () => {
    expect(codesOf('model m { input 3x65536x65536 conv 8 3x3 }')).toEqual(['CNN3008']);
    expect(codesOf('model m { input 1x32768x32768 flatten -> dense 1073741824 }')).toEqual(['CNN3009']);
  });
  it('warns when a stride drops data rows, not when it drops only padding', () => {
    const d = check('model m { input 3x7x7 conv 8 3x3 stride=2 pad=0 -> relu }').diagnostics;
    expect(d).toEqual([]);
    const w = check('model m { input 3x8x8 conv 8 3x3 stride=2 }').diagnostics;
    expect(w.map((x) => [x.code, x.severity])).toEqual([['CNN3007', 'warning']]);
    expect(w[0].message).toContain('the last 1 row of 8 and the last 1 column of 8');
    expect(codesOf('model m { input 3x56x56 conv 8 3x3 stride=2 pad=1 }')).toEqual([]);
  });
  it('every catalog code is unique', () => {
    const codes = Object.values(catalog).map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
  });
  it('every diagnostic has a range inside the text', () => {
    for (const f of fixtures) {
      const text = readFileSync(join(dir, f), 'latin1');
      for (const d of check(text).diagnostics) {
        expect(d.span.start).toBeGreaterThanOrEqual(0);
        expect(d.span.end).toBeLessThanOrEqual(text.length);
        expect(d.span.end).toBeGreaterThanOrEqual(d.span.start);
      }
    }
  });
});

describe('syntax errors', () => {
  it('reports every error and keeps checking what parsed', () => {
    const text = readFileSync(join(dir, 'syntax_errors.cnn'), 'utf8');
    const r = check(text);
    expect(r.diagnostics.filter((d) => d.code === 'CNN1002').length).toBeGreaterThanOrEqual(3);
    // The second model still gets its shape error.
    expect(r.diagnostics.map((d) => d.code)).toContain('CNN3002');
  });
});
