/** No input, however malformed, crashes or hangs the checker: it ends with diagnostics. */
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { rng } from './helpers/random.ts';

function junk(seed: number, length: number): string {
  const next = rng(seed);
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(Math.floor(next() * 256));
  return s;
}

describe('malformed input', () => {
  it('binary junk ends with diagnostics', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const r = check(junk(seed, 20_000));
      expect(r.diagnostics.length).toBeGreaterThan(0);
      expect(r.diagnostics.length).toBeLessThanOrEqual(110);
    }
  });

  it('1 MB of nested brackets stops at the nesting limit', () => {
    for (const open of ['{', '(', '[']) {
      const r = check(`model m { input 1x8x8 conv ${open.repeat(1 << 20)}`);
      expect(r.diagnostics.map((d) => d.code)).toContain('CNN1003');
    }
  });

  it('1 MB of minus signs does not exhaust the stack', () => {
    const r = check(`model m { input 1x8x8 conv ${'-'.repeat(1 << 20)}1 3x3 }`);
    expect(r.diagnostics.map((d) => d.code)).toContain('CNN1003');
  });

  it('a 10,000-layer chain checks', () => {
    const chain = Array.from({ length: 10_000 }, (_, i) => (i % 2 ? 'relu' : 'conv 4 3x3 pad=same')).join(' -> ');
    const r = check(`model deep { input 4x8x8 ${chain} }`);
    expect(r.diagnostics).toEqual([]);
    expect(r.models[0].output).toEqual([4, 8, 8]);
  });

  it('10,000 nested residuals are cut at the nesting limit, not a stack overflow', () => {
    const r = check(`model m { input 4x8x8 ${'residual { relu -> '.repeat(10_000)}relu${' }'.repeat(10_000)} }`);
    expect(r.diagnostics.map((d) => d.code)).toContain('CNN1003');
  });

  it('expansion is bounded: nested repeats cannot blow up', () => {
    const r = check('model m { input 4x8x8 repeat 10000 { repeat 10000 { relu } } }');
    expect(r.diagnostics.map((d) => d.code)).toContain('CNN2012');
  });

  it('a long chain of distinct blocks is bounded in depth', () => {
    const blocks = Array.from({ length: 200 }, (_, i) => `block b${i} { ${i === 199 ? 'relu' : `b${i + 1}`} }`).join('\n');
    const r = check(`${blocks}\nmodel m { input 4x8x8 b0 }`);
    expect(r.diagnostics.map((d) => d.code)).toContain('CNN2012');
  });

  it('unterminated strings, comments and odd numbers', () => {
    for (const text of ['model m { input "abc', '/* never closed', 'model m { input 1e999x3 }', 'model m { input 1x8x8 conv 1e400 3x3 }', 'model', '{}}}', '->->->', '']) {
      expect(() => check(text)).not.toThrow();
    }
    expect(check('model m { input 1x8x8 conv 1e400 3x3 }').diagnostics.length).toBeGreaterThan(0);
  });

  it('random edits of a valid model never throw', () => {
    const base = 'block b(c) { conv c 3x3 pad=same -> bn -> relu }\nmodel m { input 3x32x32 b(16) -> residual project { conv 32 3x3 stride=2 pad=1 } -> concat { relu | gate { gap -> conv 32 1x1 -> sigmoid } } -> gap -> flatten -> dense 10 train { optimizer: sgd lr=0.1 } }';
    const next = rng(7);
    for (let i = 0; i < 500; i++) {
      const at = Math.floor(next() * base.length);
      const cut = Math.floor(next() * 5);
      const insert = ' ->{}()[]|=:x0-'.charAt(Math.floor(next() * 15));
      expect(() => check(base.slice(0, at) + insert + base.slice(at + cut))).not.toThrow();
    }
  });
});
