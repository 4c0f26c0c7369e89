/**
 * The language server's incremental checking gives exactly what a fresh check of the same text
 * gives (syntax tree, checked models, diagnostics), over long runs of seeded random edits, some
 * clean and some that break the syntax, on examples with blocks, residuals, branches and labels.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DocumentChecker } from '../src/compiler/incremental.ts';
import { check } from '../src/index.ts';
import { rng } from './helpers/random.ts';

const example = (path: string) => readFileSync(new URL(`../examples/${path}`, import.meta.url), 'utf8');

/** Words that keep the syntax but change the model: kinds, widths, kernels, options (shapes may break). */
const SWAPS = [['relu', 'gelu', 'sigmoid', 'bn'], ['16', '32', '64', '3', '1'], ['3x3', '5x5', '1x1', '2x2'], ['pad=same', 'pad=1', 'stride=2', 'bias=off']];
/** Anything else a person types: junk words, brackets, arrows, comments, nothing. */
const WORDS = ['conv 16 3x3', 'maxpool 2', 'dense 10', 'flatten', 'bottleneck(64, 1)', 'x:', 'rleu', '', '->', '{', '}', '# note'];
const CHARS = [' ', '\n', 'x', '2', '-', '>', '{', '}', '(', ')', '#', '=', '"', 'a', ':', '|', '/*', '*/'];

function randomEdit(text: string, next: () => number): string {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)];
  const at = Math.floor(next() * (text.length + 1));
  const r = next();
  const inCode = (i: number) => !text.slice(text.lastIndexOf('\n', i) + 1, i).includes('#');
  const words = [...text.matchAll(/[A-Za-z_][A-Za-z0-9_]*(?:=[A-Za-z0-9_]+)?|\d+(?:x\d+)*/g)].filter((w) => inCode(w.index));
  const replace = (w: RegExpExecArray | RegExpMatchArray, by: string) => text.slice(0, w.index) + by + text.slice(w.index! + w[0].length);
  if (r < 0.5) {
    const swappable = words.filter((w) => SWAPS.some((s) => s.includes(w[0])));
    if (swappable.length > 0) {
      const w = pick(swappable);
      return replace(w, pick(SWAPS.find((s) => s.includes(w[0]))!));
    }
  }
  if (r < 0.65 && words.length > 0) return replace(pick(words), pick(WORDS));
  if (r < 0.8) return text.slice(0, at) + pick(CHARS) + text.slice(at);
  if (r < 0.9) return text.slice(0, at) + text.slice(at + 1 + Math.floor(next() * 4));
  return text.slice(0, at) + pick([' ', '  # comment\n', '\n\n']) + text.slice(at);
}

function expectSameAsFresh(result: ReturnType<DocumentChecker['update']>, text: string): void {
  const fresh = check(text);
  expect(result.diagnostics).toEqual(fresh.diagnostics);
  expect(result.ast).toEqual(fresh.ast);
  expect(result.models).toEqual(fresh.models);
}

describe('incremental checking equals a fresh check', () => {
  for (const [name, seed] of [['zoo/resnet50.cnn', 1], ['zoo/googlenet.cnn', 2], ['zoo/efficientnet_b0.cnn', 3], ['tutorials/001_cifar10.cnn', 4], ['fashion/bn.cnn', 5]] as const) {
    it(`${name}: 150 random edits, the breaking ones undone`, () => {
      const original = example(name);
      const next = rng(seed);
      const doc = new DocumentChecker();
      const parses = { full: 0, step: 0, trivia: 0, rest: 0 };
      let text = original;
      expectSameAsFresh(doc.update(text), text);
      for (let i = 0; i < 150; i++) {
        const before = text;
        text = randomEdit(text, next);
        expectSameAsFresh(doc.update(text), text);
        parses[doc.lastParse]++;
        const syntaxBroken = doc.lastParse !== 'step' && doc.lastParse !== 'trivia' && check(text).diagnostics.some((d) => d.code.startsWith('CNN1'));
        if (syntaxBroken || next() < 0.3) {
          text = before; // undo, so most versions stay close to a valid model
          expectSameAsFresh(doc.update(text), text);
          parses[doc.lastParse]++;
        }
      }
      // The test is about the incremental paths: they must have been taken, not only the full one.
      expect(parses.step).toBeGreaterThan(20);
      expect(parses.trivia).toBeGreaterThan(0);
    });
  }

  for (const [name, seed] of [['zoo/resnet50.cnn', 11], ['zoo/googlenet.cnn', 12], ['tutorials/001_cifar10.cnn', 13], ['fashion/bn.cnn', 14]] as const) {
    it(`${name}: 200 random edits, syntax errors kept and built on`, () => {
      const next = rng(seed);
      const doc = new DocumentChecker();
      let text = example(name);
      doc.update(text);
      for (let i = 0; i < 200; i++) {
        const before = text;
        text = randomEdit(text, next);
        expectSameAsFresh(doc.update(text), text);
        if (next() < 0.2) {
          text = before;
          expectSameAsFresh(doc.update(text), text);
        }
      }
    });
  }

  it('typing a new step keystroke by keystroke, through the states with syntax errors, stays incremental', () => {
    const original = example('fashion/bn.cnn');
    const at = original.indexOf('-> bn -> relu -> maxpool 2') + '-> bn -> relu'.length;
    const typed = ' -> conv 16 3x3 pad=same';
    const doc = new DocumentChecker();
    doc.update(original);
    let broken = 0;
    for (let i = 1; i <= typed.length; i++) {
      const text = original.slice(0, at) + typed.slice(0, i) + original.slice(at);
      const result = doc.update(text);
      expectSameAsFresh(result, text);
      expect(doc.lastParse).not.toBe('full');
      if (result.diagnostics.some((d) => d.code.startsWith('CNN1'))) broken++;
    }
    expect(broken).toBe(4); // ' -', ' ->', ' -> ' and 'pad='
  });

  it('fashion/bn.cnn: a space or a letter typed at every offset, and every character deleted', () => {
    const original = example('fashion/bn.cnn').replace(/^#.*\n/gm, '');
    const doc = new DocumentChecker();
    doc.update(original);
    for (let at = 0; at <= original.length; at++) {
      for (const typed of [' ', 'x', '']) {
        const text = typed ? original.slice(0, at) + typed + original.slice(at) : original.slice(0, at) + original.slice(at + 1);
        expectSameAsFresh(doc.update(text), text);
        doc.update(original);
      }
    }
  });

  it('a // inside brackets over several lines: every character typed (, ), [, ], space, x) at every offset, and every one deleted', () => {
    // Whether a `//` divides or comments depends on a bracket opened on an earlier line (lexer.ts),
    // so a line relexed alone could read it otherwise than the whole file.
    const original = 'block b(e, k) {\n  conv max(\n    e // 4, 8) 1x1 pad=[\n    k // 2,\n    k // 2] -> relu // note\n  -> conv max(e,\n    8) 1x1 // width\n  -> relu\n}\nmodel m {\n  input 3x8x8\n  b(64, 1)\n}\n';
    const doc = new DocumentChecker();
    expectSameAsFresh(doc.update(original), original);
    for (let at = 0; at <= original.length; at++) {
      for (const typed of ['(', ')', '[', ']', ' ', 'x', '']) {
        const text = typed ? original.slice(0, at) + typed + original.slice(at) : original.slice(0, at) + original.slice(at + 1);
        expectSameAsFresh(doc.update(text), text);
        doc.update(original);
      }
    }
  });

  it('reuses the checks of unchanged steps and re-checks the ones whose input changed', () => {
    const doc = new DocumentChecker();
    const text = 'model M {\n  input 3x32x32\n  conv 8 3x3 pad=same -> relu\n  -> bn -> residual { conv 8 3x3 pad=same -> bn -> relu }\n  -> maxpool 2 -> flatten -> dense 10\n}\n';
    const first = doc.update(text);
    const residual = first.models[0].root.items[3];
    // Renaming relu to gelu keeps the residual's input: the same checked node comes back.
    const second = doc.update(text.replace('-> relu\n', '-> gelu\n'));
    expect(doc.lastParse).toBe('step');
    expect(second.models[0].root.items[3]).toBe(residual);
    // Changing the first conv's width changes the residual's input: checked again, with its error.
    const third = doc.update(text.replace('conv 8 3x3 pad=same -> relu', 'conv 4 3x3 pad=same -> relu'));
    expect(third.models[0].root.items[3]).not.toBe(residual);
    expect(third.diagnostics.map((d) => d.code)).toEqual(check(text.replace('conv 8 3x3 pad=same -> relu', 'conv 4 3x3 pad=same -> relu')).diagnostics.map((d) => d.code));
    expect(third.diagnostics.length).toBeGreaterThan(0);
  });

  it('a block\'s unknown layer, met by two steps, is still reported when the first no longer reaches it and the second comes from the cache', () => {
    const doc = new DocumentChecker();
    const text = 'block b(c) { rleu }\nmodel M {\n  input 3x8x8\n  b(1) -> b(2) -> relu\n}\n';
    expectSameAsFresh(doc.update(text), text);
    // b(1, 2) is an arity error: the flow into b(2) stays unknown, so its cached check holds.
    const edited = text.replace('b(1)', 'b(1, 2)');
    const result = doc.update(edited);
    expect(doc.lastParse).toBe('step');
    expectSameAsFresh(result, edited);
    expect(result.diagnostics.map((d) => d.code)).toEqual(['CNN2001', 'CNN2007']);
  });

  it('keeps the checks of the steps after a name being typed, for when the name is complete', () => {
    const doc = new DocumentChecker();
    const text = (name: string) => `model M {\n  input 3x32x32\n  conv 8 3x3 pad=same -> ${name}\n  -> bn -> residual { conv 8 3x3 pad=same -> bn -> relu }\n  -> flatten -> dense 10\n}\n`;
    const residual = doc.update(text('relu')).models[0].root.items[3];
    for (const typed of ['', 'g', 'ge', 'gel']) {
      const half = doc.update(text(typed));
      expect(half.diagnostics).toEqual(check(text(typed)).diagnostics);
    }
    const done = doc.update(text('gelu'));
    expect(done.models[0].root.items[3]).toBe(residual);
    expect(done.diagnostics).toEqual([]);
  });

  it('a stray brace, whose error swallows the rest of the chain, parses the file again only from its step on', () => {
    const doc = new DocumentChecker();
    const text = 'block cbr(c) {\n  conv c 3x3 pad=same -> bn -> relu\n}\nmodel M {\n  input 3x32x32\n  conv 8 3x3 pad=same -> relu\n  -> cbr(8) -> residual { cbr(8) }\n  -> maxpool 2 -> bn -> flatten -> dense 10\n}\n';
    const clean = doc.update(text);
    const residual = clean.models[0].root.items[3];
    for (const broken of [text.replace('-> maxpool 2', '-> maxpool 2 {'), text.replace('-> maxpool 2', '-> maxpool 2 }')]) {
      const result = doc.update(broken);
      expect(doc.lastParse).toBe('rest');
      expectSameAsFresh(result, broken);
      expect(result.diagnostics.some((d) => d.code === 'CNN1002')).toBe(true);
      // The steps before the edit come from the cache, their checks as they were.
      expect(result.models[0].root.items[3]).toBe(residual);
    }
    // The clean version is still the one edits start from: undoing the edit re-parses nothing.
    expectSameAsFresh(doc.update(text), text);
    expect(doc.lastParse).not.toBe('full');
  });

  it('a residual typed without its "}" ends at its line: only its step is parsed again, and the steps after keep their checks', () => {
    const doc = new DocumentChecker();
    const line = (i: number) => `  -> residual { conv 8 3x3 pad=same -> bn -> relu } -> relu # ${i}`;
    const text = ['model M {', '  input 8x16x16', ...Array.from({ length: 20 }, (_, i) => line(i)), '  -> flatten -> dense 10', '}', ''].join('\n');
    const clean = doc.update(text);
    const last = clean.models[0].root.items.at(-2);
    const at = text.indexOf('-> relu # 10');
    for (const typed of ['-> residual {', '-> residual { r', '-> residual { relu', '-> residual { relu }']) {
      const edited = text.slice(0, at) + typed + text.slice(at + '-> relu'.length);
      const result = doc.update(edited);
      expectSameAsFresh(result, edited);
      expect(doc.lastParse).toBe('step');
      if (!typed.endsWith('relu') && !typed.endsWith('}')) continue;
      expect(result.diagnostics.map((d) => d.code)).toEqual(typed.endsWith('}') ? [] : ['CNN1006']);
      // With a whole residual there, the steps after it see the same input: their checks come from the cache.
      expect(result.models[0].root.items.at(-2)).toBe(last);
    }
  });

  it('braces, line breaks and indentation typed and deleted around multi-line bodies: 600 edits, kept and built on', () => {
    const original = [
      'block unit(c) {', '  conv c 3x3 pad=same bias=off -> bn -> relu', '  -> residual {', '    conv c 3x3 pad=same -> bn', '    -> relu', '  }', '}',
      'model M {', '  input 3x32x32', '  conv 16 3x3 pad=same -> unit(16)', '  -> residual {', '    conv 16 3x3 pad=same', '    -> bn -> relu', '  } -> relu',
      '  -> concat { conv 8 1x1 | conv 8 3x3 pad=same -> relu }', '  -> gate {', '    gap -> conv 4 1x1 -> relu -> conv 16 1x1 -> sigmoid', '  }',
      '  -> maxpool 2 -> flatten -> dense 10', '}', '',
    ].join('\n');
    const PIECES = ['{', '}', ' {', ' }', 'residual {', 'concat { relu |', 'gate {', '\n', '\n  ', '  ', ' ', '-> relu', 'relu', '}\n'];
    const parses = { full: 0, step: 0, trivia: 0, rest: 0 };
    for (const seed of [1, 2]) {
      const next = rng(seed);
      const doc = new DocumentChecker();
      let text = original;
      doc.update(text);
      for (let i = 0; i < 300; i++) {
        const before = text;
        const r = next(), at = Math.floor(next() * (text.length + 1));
        if (r < 0.45) text = text.slice(0, at) + PIECES[Math.floor(next() * PIECES.length)] + text.slice(at);
        else if (r < 0.7) {
          // Delete a brace, or some of a line's indentation.
          const marks = [...text.matchAll(/[{}]|^ +/gm)];
          const m = marks[Math.floor(next() * marks.length)];
          if (m) text = text.slice(0, m.index) + text.slice(m.index! + (m[0].length > 1 ? 1 + Math.floor(next() * (m[0].length - 1)) : 1));
        } else if (r < 0.85) text = text.slice(0, at) + text.slice(at + 1);
        else text = original;
        expectSameAsFresh(doc.update(text), text);
        parses[doc.lastParse]++;
        if (next() < 0.15) {
          text = before;
          expectSameAsFresh(doc.update(text), text);
        }
      }
    }
    // Every path was taken, and bodies were left open and closed by indentation along the way.
    for (const path of ['full', 'step', 'trivia', 'rest'] as const) expect(parses[path]).toBeGreaterThan(10);
  });
});
