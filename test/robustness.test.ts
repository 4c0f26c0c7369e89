/** No input, however malformed, crashes or hangs the checker: it ends with diagnostics. */
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { MAX_DIAGNOSTICS } from '../src/compiler/diagnostics.ts';
import { LineMap } from '../src/compiler/source.ts';
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

  it('expansion is bounded: nested repeats are refused before they expand, at the use', () => {
    const text = 'model m { input 4x8x8 repeat 10000 { repeat 10000 { relu } } }';
    const r = check(text);
    expect(r.diagnostics.map((d) => [d.code, text.slice(d.span.start, d.span.end)])).toEqual([['CNN2022', 'repeat 10000']]);
    expect(r.diagnostics[0].message).toContain('100,000,000 layers');
  });

  it('blocks that each use the one before twice (2^40 layers) are refused at the use, naming its size', () => {
    const blocks = ['block b0 { relu }', ...Array.from({ length: 40 }, (_, i) => `block b${i + 1} { b${i} -> b${i} }`)];
    const text = `${blocks.join('\n')}\nmodel m { input 4x8x8 b40 }`;
    const t0 = performance.now();
    const r = check(text);
    expect(performance.now() - t0).toBeLessThan(2000); // it ran out of memory before
    expect(r.diagnostics.map((d) => [d.code, text.slice(d.span.start, d.span.end)])).toEqual([['CNN2022', 'b40']]);
    expect(r.diagnostics[0].message).toContain(`${(2 ** 40).toLocaleString('en-US')} layers`);
  });

  it('a use that fits the limit still expands', () => {
    const r = check('block pair { relu -> relu }\nmodel m { input 4x8x8 repeat 100 { repeat 10 { pair } } }');
    expect(r.diagnostics).toEqual([]);
  });

  it('many mistakes are capped, the rest counted in one closing diagnostic', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `nope${i}`).join(' -> ');
    const r = check(`model m { input 4x8x8 ${names} }`);
    expect(r.diagnostics).toHaveLength(MAX_DIAGNOSTICS + 1);
    const last = r.diagnostics[MAX_DIAGNOSTICS];
    expect(last.code).toBe('CNN2021');
    expect(last.message).toContain(`${1000 - MAX_DIAGNOSTICS} more problems`);
  });

  it('a mistake inside a repeated block is reported once, not once per copy', () => {
    const r = check('block b { relu -> rleu }\nmodel m { input 4x8x8 repeat 50 { b } -> b }');
    expect(r.diagnostics.map((d) => d.code)).toEqual(['CNN2001']);
  });

  it('a lone carriage return ends a line, as in editors and the LSP', () => {
    const text = '# a comment\rmodel m { input 1x8x8 relu }\r';
    const r = check(text);
    expect(r.diagnostics).toEqual([]);
    expect(r.models.map((m) => m.name)).toEqual(['m']);
    const lines = new LineMap('a\rb\r\nc\nd');
    expect([2, 5, 7].map((o) => lines.position(o))).toEqual([{ line: 1, character: 0 }, { line: 2, character: 0 }, { line: 3, character: 0 }]);
    expect([0, 1, 2, 3].map((l) => lines.lineText(l))).toEqual(['a', 'b', 'c', 'd']);
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
