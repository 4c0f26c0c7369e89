/** The formatter: idempotent, model-preserving, comment-preserving, on every example and on scrambled layouts of them. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { format } from '../src/compiler/format.ts';
import { cnnLexer } from '../src/compiler/lexer.ts';
import { summarize } from '../src/compiler/summary.ts';
import { check } from '../src/index.ts';

const examples = fileURLToPath(new URL('../examples', import.meta.url));

function cnnFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? cnnFiles(path) : e.name.endsWith('.cnn') ? [path] : [];
  });
}

/** Summaries without source positions (formatting moves them) but with everything else. */
function summaries(text: string): unknown {
  const result = check(text);
  return {
    models: result.models.map((m) => {
      const s = summarize(m);
      return { ...s, layers: s.layers.map(({ span: _span, error, ...row }) => ({ ...row, error: error?.message })) };
    }),
    diagnostics: result.diagnostics.map((d) => `${d.code} ${d.message}`),
  };
}

function comments(text: string): string[] {
  return (cnnLexer.tokenize(text).groups.comments ?? []).map((c) => c.image.trimEnd());
}

/**
 * The same tokens and comments with different whitespace: spaces, line breaks and blank lines at
 * random, except inside a function call's `name(`, which a space would make a name and an argument,
 * and on either side of a value followed by a `//` that divides: that `//` starts a comment when
 * the value begins a line (a name there could start a step) or a line break or comment precedes it.
 */
function scramble(text: string, seed: number): string {
  let s = seed;
  const random = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const lexed = cnnLexer.tokenize(text);
  const all = [...lexed.tokens, ...(lexed.groups.comments ?? [])].sort((a, b) => a.startOffset - b.startOffset);
  let out = '';
  for (const [i, t] of all.entries()) {
    out += t.image;
    const next = all[i + 1];
    if (next?.image === '(' && next.startOffset === t.endOffset! + 1 && /^\w+$/.test(t.image)) continue;
    if ([next, all[i + 2]].some((u) => u?.image === '//' && u.tokenType.name !== 'Comment')) {
      out += ' ';
      continue;
    }
    const r = random();
    out += t.tokenType.name === 'Comment' ? '\n' : r < 0.12 ? '\n' : r < 0.15 ? '\n\n   ' : r < 0.17 ? ' /* inserted */ ' : r < 0.19 ? ' # inserted\n' : ' ';
  }
  return out;
}

const files = cnnFiles(examples);

describe('format', () => {
  it('reads CRLF, CR and LF line ends alike: no blank line appears between CRLF lines', () => {
    const lf = 'model M {\n  input 3x8x8\n  conv 8 3x3\n\n  -> relu\n}\n';
    for (const end of ['\r\n', '\r']) expect(format(lf.replace(/\n/g, end))).toBe(format(lf));
    expect(format(lf)).toBe(lf);
  });

  it('finds the examples', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    const name = file.slice(examples.length + 1);
    it(`${name}: idempotent, same summary, comments kept`, () => {
      const text = readFileSync(file, 'utf8');
      const out = format(text);
      expect(out).not.toBeNull();
      expect(format(out!)).toBe(out);
      expect(summaries(out!)).toEqual(summaries(text));
      expect(comments(out!)).toEqual(comments(text));
      expect(out!.split('\n').every((l) => l === l.trimEnd())).toBe(true);
    });

    it(`${name}: scrambled layouts format to a fixed point with the same model`, () => {
      const text = readFileSync(file, 'utf8');
      for (let seed = 1; seed <= 5; seed++) {
        const scrambled = scramble(text, seed);
        const out = format(scrambled);
        expect(out).not.toBeNull();
        expect(format(out!)).toBe(out);
        expect(summaries(out!)).toEqual(summaries(text));
        expect(comments(out!)).toEqual(comments(scrambled));
      }
    });
  }

  it('lays out a one-line file canonically and keeps every comment where it was', () => {
    const src = [
      '# header',
      '',
      '',
      'block cbr(c,k) { conv c k pad=same bias=off->bn',
      '->relu }',
      'model   M{input 3x32x32 mean=[0.5,0.5 , 0.5] -> conv 32 3x3 # first',
      ' -> bn /* inline */ -> relu -> residual{conv 32 3x3 pad = 1 -> bn}->relu',
      '  -> repeat 2-1 { cbr( 16 , 3 ) }',
      '  -> gap -> flatten -> dense 10 -> softmax // end',
      '  train { loss: cross_entropy smoothing=0.1 optimizer: sgd lr=0.1',
      '   momentum=0.9 }  }',
      '# trailing',
    ].join('\n');
    expect(format(src)).toBe([
      '# header',
      '',
      'block cbr(c, k) {',
      '  conv c k pad=same bias=off -> bn',
      '  -> relu',
      '}',
      '',
      'model M {',
      '  input 3x32x32 mean=[0.5, 0.5, 0.5]',
      '  -> conv 32 3x3                            # first', // end-of-line comments of a paragraph line up
      '  -> bn /* inline */ -> relu -> residual { conv 32 3x3 pad=1 -> bn } -> relu',
      '  -> repeat 2 - 1 { cbr(16, 3) }',
      '  -> gap -> flatten -> dense 10 -> softmax  // end',
      '  train {',
      '    loss: cross_entropy smoothing=0.1',
      '    optimizer: sgd lr=0.1 momentum=0.9',
      '  }',
      '}',
      '# trailing',
      '',
    ].join('\n'));
  });

  it('opens a block for bodies that do not fit, with branches lined up after |', () => {
    const src = 'model M { input 3x32x32 -> concat { conv 64 1x1 | conv 96 1x1 -> conv 128 3x3 pad=same | maxpool 3 stride=1 pad=1 -> conv 32 1x1 -> relu } }';
    expect(format(src)).toBe([
      'model M {',
      '  input 3x32x32',
      '  -> concat {',
      '    conv 64 1x1',
      '  | conv 96 1x1 -> conv 128 3x3 pad=same',
      '  | maxpool 3 stride=1 pad=1 -> conv 32 1x1 -> relu',
      '  }',
      '}',
      '',
    ].join('\n'));
  });

  it('writes empty branches as nothing between the separators, inline and in a block (an empty first one as `{ |`)', () => {
    const long = 'conv 64 1x1 -> bn -> relu -> conv 96 3x3 pad=same -> bn -> relu -> conv 96 3x3 pad=same';
    const src = `model M { input 8x32x32 -> split [2,6]{|conv 6 1x1} -> concat { | ${long} |} -> add { ${long} | | conv 64 1x1 } }`;
    const out = format(src)!;
    expect(out).toBe([
      'model M {',
      '  input 8x32x32',
      '  -> split [2, 6] { | conv 6 1x1 }',
      '  -> concat { |',
      `    ${long}`,
      '  |',
      '  }',
      '  -> add {',
      `    ${long}`,
      '  |',
      '  | conv 64 1x1',
      '  }',
      '}',
      '',
    ].join('\n'));
    expect(format(out)).toBe(out);
  });

  it('keeps comments around an empty first branch in a block, and formats the result the same again', () => {
    for (const body of ['concat { |  # the skip\n    conv 2 1x1\n  }', 'concat {\n    # the skip\n    |\n    conv 2 1x1\n  }']) {
      const src = `model M {\n  input 8x4x4\n  ${body}\n}\n`;
      expect(format(src)).toBe(src);
    }
  });

  it('wraps long chains at arrows', () => {
    const steps = Array.from({ length: 30 }, (_, i) => `conv ${i + 1} 3x3 pad=same`).join(' -> ');
    const out = format(`model M { input 3x32x32 ${steps} }`)!;
    expect(out.split('\n').every((l) => l.length <= 100)).toBe(true);
    expect(out.split('\n').slice(3, -2).every((l) => l.startsWith('  -> '))).toBe(true);
    expect(format(out)).toBe(out);
  });

  it('refuses files with syntax errors', () => {
    expect(format('model M { input 3x3x3 conv 3 }}')).toBeNull();
    expect(format('model M { input 3x3x3 conv 3 3x3 ->')).toBeNull();
    expect(format('model M { input 3x3x3 @ }')).toBeNull();
  });

  it('keeps an empty file empty and a comment-only file as it is', () => {
    expect(format('')).toBe('');
    expect(format('\n\n')).toBe('');
    expect(format('# only a comment\n')).toBe('# only a comment\n');
  });
});
