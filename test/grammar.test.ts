/** The TextMate grammar and the VS Code extension manifest agree with the language. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { layerNames } from '../src/compiler/layers/index.ts';
import { keywords } from '../src/compiler/lexer.ts';

const read = (path: string) => JSON.parse(readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'));

interface Rule { match?: string; begin?: string; end?: string; name?: string; patterns?: Rule[] }

function* rules(node: unknown): Generator<Rule> {
  if (Array.isArray(node)) for (const n of node) yield* rules(n);
  else if (node && typeof node === 'object') {
    const r = node as Rule;
    if (r.match || r.begin) yield r;
    for (const v of Object.values(node)) yield* rules(v);
  }
}

describe('grammar/cnn.tmLanguage.json', () => {
  const grammar = read('grammar/cnn.tmLanguage.json');
  const all = [...rules(grammar)];

  it('has patterns that compile', () => {
    for (const r of all) for (const re of [r.match, r.begin, r.end]) if (re) expect(() => new RegExp(re)).not.toThrow();
  });

  it('names every layer kind and alias of the registry, and every keyword', () => {
    const layerRule = all.find((r) => r.name === 'support.function.layer.cnn')!;
    const listed = new Set(/\(([^)]*)\)/.exec(layerRule.match!)![1].split('|'));
    expect([...listed].sort()).toEqual([...layerNames].sort());
    const text = JSON.stringify(grammar);
    for (const k of keywords) expect(text).toContain(String(k.PATTERN).slice(1, -1));
  });

  it('scopes comments, shapes, options and arrows', () => {
    const scope = (name: string, sample: string) => {
      const r = all.find((x) => x.name === name && x.match);
      expect(r, name).toBeDefined();
      expect(new RegExp(r!.match!).exec(sample)?.[0]).toBe(sample);
    };
    scope('comment.line.number-sign.cnn', '# a comment');
    scope('comment.line.double-slash.cnn', '// a comment');
    scope('constant.numeric.shape.cnn', '3x224x224');
    scope('constant.numeric.cnn', '5e-4');
    scope('keyword.operator.arrow.cnn', '->');
    scope('string.quoted.double.cnn', '"cat"');
  });
});

describe('editors/vscode/package.json', () => {
  it('contributes the cnn language and the grammar by its scope', () => {
    const pkg = read('editors/vscode/package.json');
    expect(pkg.contributes.languages[0]).toMatchObject({ id: 'cnn', extensions: ['.cnn'] });
    expect(pkg.contributes.grammars[0]).toMatchObject({ language: 'cnn', scopeName: read('grammar/cnn.tmLanguage.json').scopeName });
    expect(pkg.main).toBe('./extension.js');
  });
});
