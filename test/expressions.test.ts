/**
 * Expressions: where `//` divides and where it starts a comment, the operators and functions
 * (against Python's own, and torchvision's `_make_divisible`, where Python is installed), and the
 * diagnostics of expressions that do not give what a layer needs.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { evaluate } from '../src/compiler/args.ts';
import type { Diagnostic } from '../src/compiler/diagnostics.ts';
import { format } from '../src/compiler/format.ts';
import { cnnLexer } from '../src/compiler/lexer.ts';
import { parse } from '../src/compiler/parser.ts';
import { pythonWith } from './helpers/python.ts';

/** The tokens of `text` by kind, with the comments in their place. */
function lexed(text: string): string[] {
  const { tokens, groups } = cnnLexer.tokenize(text);
  return [...tokens, ...(groups.comments ?? [])].sort((a, b) => a.startOffset - b.startOffset)
    .map((t) => (t.tokenType.name === 'Comment' ? `#${t.image}` : t.tokenType.name === 'FloorDiv' ? '//' : t.image));
}

describe('where // divides', () => {
  it('divides right after a value on the same line', () => {
    expect(lexed('conv c k pad=k//2')).toEqual(['conv', 'c', 'k', 'pad', '=', 'k', '//', '2']);
    expect(lexed('conv c k pad=k // 2')).toContain('//');
    expect(lexed('conv 7 // 2 3x3')).toContain('//');
    expect(lexed('dense 2 * (c + 7) // 8')).toContain('//');
    expect(lexed('dense max(c, 8) // 2')).toContain('//');
    expect(lexed('repeat n // 2 { relu }')).toContain('//');
  });

  it('starts a comment at the start of a line and after layer names, call forms, shapes and punctuation', () => {
    const comments = (text: string) => lexed(text).filter((t) => t.startsWith('#//'));
    expect(comments('// a comment\nmodel m {')).toEqual(['#// a comment']);
    expect(comments('  -> relu // note')).toEqual(['#// note']);
    expect(comments('  relu // note')).toEqual(['#// note']);
    expect(comments('  -> vgg(64) // stage 1')).toEqual(['#// stage 1']);
    expect(comments('  input 3x32x32 // shape')).toEqual(['#// shape']);
    expect(comments('  conv 8 3x3 pad=same -> stem: conv(8, 3x3) // x')).toEqual(['#// x']);
    expect(comments('  mean=[0.5, 0.5] // x')).toEqual(['#// x']);
    expect(comments('block b(c) // the block')).toEqual(['#// the block']);
    expect(comments('  conv c\n  // not after c: a new line')).toEqual(['#// not after c: a new line']);
  });

  it('decides on the line alone outside brackets, so that relexing one such line agrees with lexing the file', () => {
    const file = 'block b(c, k) {\n  conv c k pad=k // 2 -> relu // note\n  -> vgg(c // 2) // x\n}\n';
    const lines = file.split('\n').flatMap((line) => lexed(line));
    expect(lines).toEqual(lexed(file));
  });

  it('divides after a value inside an unclosed ( or [ whatever the line breaks, so that no code becomes a comment', () => {
    const divides = (text: string) => expect(lexed(text).filter((t) => t.startsWith('#'))).toEqual([]);
    divides('conv max(\n  e // 4, 8) 1x1'); // a name starting a line inside a call is a value
    divides('conv c k pad=[\n  k // 2,\n  k // 2]'); // and inside a list
    divides('dense (c\n  // 2)'); // the value on an earlier line
    divides('dense max(\n  floor(c) // 2, 1)'); // a call starting a line
    divides('dense max(\n  (c + 1)\n  // 2, 1)');
    expect(lexed('conv max(\n  e // 4, 8) 1x1')).toEqual(['conv', 'max', '(', 'e', '//', '4', ',', '8', ')', '1x1']);
  });

  it('still starts a comment inside brackets where no value comes before it, and after the bracket closes', () => {
    const comments = (text: string) => lexed(text).filter((t) => t.startsWith('#//'));
    expect(comments('dense max(c, // the width\n  8)')).toEqual(['#// the width']);
    expect(comments('dense max(\n  // the width\n  c, 8)')).toEqual(['#// the width']);
    expect(comments('dense max(c,\n  8)\n  // note')).toEqual(['#// note']);
    expect(comments('model m {\n  conv max(c,\n    8) 1x1\n  relu // note\n}')).toEqual(['#// note']);
  });

  it('gives the network written with // on a line of its own inside a call', () => {
    const text = 'block b(e) {\n  conv max(\n    e // 4, 8) 1x1\n}\nmodel m {\n  input 3x8x8\n  b(64)\n}\n';
    const checked = check(text);
    expect(checked.diagnostics).toEqual([]);
    expect(checked.models[0].output).toEqual([16, 8, 8]);
  });
});

/** The value of one expression, with the diagnostics it raised. */
function value(text: string): { value?: number; diags: Diagnostic[] } {
  const parsed = parse(`block b { x y=(${text}) }`);
  expect(parsed.diagnostics).toEqual([]);
  const step = parsed.ast.blocks[0].body.steps[0];
  if (step.kind !== 'layer') throw new Error('not a layer step');
  const diags: Diagnostic[] = [];
  const v = evaluate(step.args[0].value, new Map(), diags);
  return { value: v?.kind === 'number' ? v.value : undefined, diags };
}

describe('operators and functions', () => {
  it('bind as documented: * / // % above + -, left to right, unary minus tightest', () => {
    expect(value('1 + 7 // 2 * 3').value).toBe(1 + 3 * 3);
    expect(value('20 // 3 // 2').value).toBe(3);
    expect(value('-7 // 2').value).toBe(-4);
    expect(value('2 + 9 % 4 * 2').value).toBe(4);
    expect(value('(c) // 2').diags.map((d) => d.code)).toEqual(['CNN2010']);
  });

  it('compute the functions', () => {
    expect(value('floor(2.7) + ceil(2.1) * 10').value).toBe(32);
    expect(value('round(2.5) + round(3.5) * 10 + round(-2.5) * 100').value).toBe(2 + 40 - 200);
    expect(value('min(3, 1, 2) + max(4, 9) * 10').value).toBe(91);
    expect(value('make_divisible(16 * 0.75, 8)').value).toBe(16);
    expect(value('make_divisible(40 * 1.1, 8)').value).toBe(48);
    expect(value('make_divisible(10, 8, 16)').value).toBe(16);
  });

  it('report division by zero, wrong arities and unknown functions', () => {
    expect(value('1 // 0').diags.map((d) => d.code)).toEqual(['CNN2019']);
    expect(value('1 % 0').diags.map((d) => d.code)).toEqual(['CNN2019']);
    expect(value('floor(1, 2)').diags.map((d) => d.message)).toEqual(['floor(x) is given 2 arguments']);
    expect(value('make_divisible(3)').diags.map((d) => d.code)).toEqual(['CNN2023']);
    const [typo] = check('model m { input 3x8x8 conv flor(8.5) 3x3 }').diagnostics;
    expect([typo.code, typo.message, typo.fixes?.[0].text]).toEqual(['CNN2024', '"flor" is not a function', 'floor']);
  });

  const python = pythonWith('math');
  it.skipIf(!python)('agree with Python on //, %, round and torchvision\'s _make_divisible', () => {
    const numbers = [-7.5, -7, -1, -0.25, 0, 0.3, 1, 2.5, 3.5, 7, 7.5, 100, 1e3 + 0.5];
    const divisors = [-3, -0.1, 0.1, 0.7, 2, 3, 8];
    const pairs = numbers.flatMap((a) => divisors.map((b) => [a, b]));
    const widths = [3, 8, 12, 16, 20, 24, 32.5, 40, 44, 57.6, 72, 96, 100, 123.45, 240, 576, 1024].flatMap((v) => [[v, 8], [v, 4], [v, 16]]);
    const script = [
      'import json, sys',
      'try:',
      '    from torchvision.models._utils import _make_divisible',
      'except ImportError:',
      '    def _make_divisible(v, divisor, min_value=None):  # torchvision 0.14.1, models/_utils.py',
      '        if min_value is None:',
      '            min_value = divisor',
      '        new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)',
      '        if new_v < 0.9 * v:',
      '            new_v += divisor',
      '        return new_v',
      'pairs, widths = json.load(sys.stdin)',
      'print(json.dumps({"div": [a // b for a, b in pairs], "mod": [a % b for a, b in pairs],',
      '                  "round": [round(a) for a, _ in pairs], "divisible": [_make_divisible(v, d) for v, d in widths]}))',
    ].join('\n');
    const run = spawnSync(python!, ['-c', script], { input: JSON.stringify([pairs, widths]), encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    // One number type, without Python's signed zeros of floats (0 // -0.1 is -0.0 there): 0 and -0 are one.
    const expected = JSON.parse(run.stdout, (_key, v) => (typeof v === 'number' ? v + 0 : v));
    const show = (n: number) => (n < 0 ? `(0 - ${-n})` : String(n));
    expect(pairs.map(([a, b]) => value(`${show(a)} // ${show(b)}`).value)).toEqual(expected.div);
    expect(pairs.map(([a, b]) => value(`${show(a)} % ${show(b)}`).value)).toEqual(expected.mod);
    expect(pairs.map(([a]) => value(`round(${show(a)})`).value)).toEqual(expected.round);
    expect(widths.map(([v, d]) => value(`make_divisible(${v}, ${d})`).value)).toEqual(expected.divisible);
  });
});

describe('expressions where a layer needs a whole number', () => {
  it('a fraction names // and the rounding functions', () => {
    const [d] = check('block b(c) { conv c/3 1x1 }\nmodel m { input 3x8x8 b(64) }').diagnostics;
    expect(d.code).toBe('CNN2005');
    expect(d.message).toBe('conv filters = 21.333333333333332 is not an integer');
    expect(d.hint).toContain('"//" divides rounding down');
    expect(check('block b(c) { conv c//3 1x1 }\nmodel m { input 3x8x8 b(64) }').models[0].output).toEqual([21, 8, 8]);
  });

  it('a comment meant after a value is reported with a fix that makes it one', () => {
    const text = 'model m {\n  input 3x8x8\n  conv 8 3x3 -> flatten -> dense 10 // logits\n}\n';
    const [d] = check(text).diagnostics;
    expect([d.code, d.message]).toEqual(['CNN2010', '"logits" is not a block parameter in scope']);
    expect(d.hint).toContain('write "#"');
    const fixed = text.slice(0, d.fixes![0].span.start) + d.fixes![0].text + text.slice(d.fixes![0].span.end);
    expect(check(fixed).diagnostics).toEqual([]);
  });
});

describe('formatting expressions', () => {
  it('keeps a call\'s "(" against its name and a parenthesised argument apart from the one before', () => {
    const text = 'block b(c, k) {\n  conv max( c , 8 ) (k+1) pad = k // 2 -> conv c%8+1 1x1\n}\n';
    expect(format(text)).toBe('block b(c, k) {\n  conv max(c, 8) (k + 1) pad=k//2 -> conv c%8+1 1x1\n}\n');
  });
});
