/** The TextMate grammar and the VS Code extension manifest agree with the language. */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { layerNames } from '../src/compiler/layers/index.ts';
import { keywords } from '../src/compiler/lexer.ts';

const read = (path: string) => JSON.parse(readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'));

interface Captures { [group: string]: { name: string } }
interface Rule {
  match?: string; begin?: string; end?: string; name?: string; include?: string; patterns?: Rule[];
  captures?: Captures; beginCaptures?: Captures; endCaptures?: Captures;
}
interface Grammar { patterns: Rule[]; repository: Record<string, Rule> }

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
    const layerRule = all.find((r) => r.beginCaptures?.['1']?.name === 'support.function.layer.cnn')!;
    const listed = new Set(/\(([^)]*)\)/.exec(layerRule.begin!)![1].split('|'));
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
  it('contributes the cnn language and the grammar by its scope, and runs the bundle', () => {
    const pkg = read('editors/vscode/package.json');
    expect(pkg.contributes.languages[0]).toMatchObject({ id: 'cnn', extensions: ['.cnn'] });
    expect(pkg.contributes.grammars[0]).toMatchObject({ language: 'cnn', scopeName: read('grammar/cnn.tmLanguage.json').scopeName });
    expect(pkg.main).toBe('./dist/extension.js');
    expect(pkg.publisher).toBeTruthy();
    expect(pkg.dependencies ?? {}).toEqual({}); // bundled: nothing to install with the extension
  });

  it('carries its own copy of the grammar, the same as grammar/ (so that it packages outside the repository)', () => {
    expect(read('editors/vscode/syntaxes/cnn.tmLanguage.json')).toEqual(read('grammar/cnn.tmLanguage.json'));
  });
});

describe('editors/vscode/server-path.js: where the extension finds cnnc', () => {
  const { findServer } = createRequire(import.meta.url)('../editors/vscode/server-path.js') as {
    findServer: (o: { setting?: string; workspaceFolders?: string[]; env?: Record<string, string>; platform?: string }) => { command?: string; via?: string; node?: boolean; error?: string };
  };
  const root = mkdtempSync(path.join(tmpdir(), 'cnnc-server-path-'));
  const executable = (file: string) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, '#!/bin/sh\n');
    chmodSync(file, 0o755);
    return file;
  };
  const workspace = path.join(root, 'project');
  const inWorkspace = executable(path.join(workspace, 'node_modules', '.bin', 'cnnc'));
  const onPath = executable(path.join(root, 'bin', 'cnnc'));
  const script = path.join(root, 'checkout', 'bin', 'cnnc.js');
  executable(script);
  const env = { PATH: ['/nonexistent', path.join(root, 'bin')].join(':') };
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('takes the setting first, then the workspace, then PATH', () => {
    expect(findServer({ setting: script, workspaceFolders: [workspace], env, platform: 'linux' })).toEqual({ command: script, via: 'setting', node: true });
    expect(findServer({ workspaceFolders: [path.join(root, 'empty'), workspace], env, platform: 'linux' })).toEqual({ command: inWorkspace, via: 'workspace', node: false });
    expect(findServer({ workspaceFolders: [path.join(root, 'empty')], env, platform: 'linux' })).toEqual({ command: onPath, via: 'PATH', node: false });
    expect(findServer({ setting: 'cnnc', env, platform: 'linux' })).toEqual({ command: onPath, via: 'setting', node: false });
  });

  it('says what to do when there is none, or the setting is wrong', () => {
    expect(findServer({ workspaceFolders: [], env: { PATH: '/nonexistent' }, platform: 'linux' }).error).toMatch(/not found.*node_modules\/\.bin\/cnnc.*PATH.*"cnnc\.path"/);
    expect(findServer({ setting: path.join(root, 'nope'), env, platform: 'linux' }).error).toMatch(/does not exist/);
    expect(findServer({ setting: 'cnnc-nope', env, platform: 'linux' }).error).toMatch(/not on PATH/);
  });
});

const extensionDir = fileURLToPath(new URL('../editors/vscode/', import.meta.url));
const vsce = path.join(extensionDir, 'node_modules', '@vscode', 'vsce', 'vsce');
const packagingInstalled = existsSync(vsce);
if (!packagingInstalled) console.log('skipping the .vsix packaging test: run `npm ci --prefix editors/vscode` to install @vscode/vsce and esbuild');

describe.skipIf(!packagingInstalled)('editors/vscode packaging (needs npm ci --prefix editors/vscode)', () => {
  it('packages one bundled file with the grammar, language configuration, README and LICENSE', () => {
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'cnnc-vsix-')), 'cnnc.vsix');
    const r = spawnSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--out', out], { cwd: extensionDir, encoding: 'utf8' });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(zipEntries(readFileSync(out)).sort()).toEqual([
      '[Content_Types].xml', 'extension.vsixmanifest', 'extension/LICENSE.txt', 'extension/dist/extension.js',
      'extension/language-configuration.json', 'extension/package.json', 'extension/readme.md', 'extension/syntaxes/cnn.tmLanguage.json',
    ]);
    // the bundle needs nothing from node_modules: only VS Code's API and Node's own modules
    const bundle = readFileSync(path.join(extensionDir, 'dist', 'extension.js'), 'utf8');
    const required = new Set([...bundle.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1].replace(/^node:/, '')));
    expect([...required].filter((m) => m !== 'vscode' && !builtinModules.includes(m))).toEqual([]);
    rmSync(path.dirname(out), { recursive: true, force: true });
  }, 120_000);
});

/** The names in a zip file's central directory. */
function zipEntries(zip: Buffer): string[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const nameLength = zip.readUInt16LE(at + 28);
    const extra = zip.readUInt16LE(at + 30);
    const comment = zip.readUInt16LE(at + 32);
    names.push(zip.toString('utf8', at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extra + comment;
  }
  return names;
}

/**
 * A small TextMate tokenizer, enough for this grammar (match, begin/end, captures, includes),
 * following vscode-textmate's rules: at each point the leftmost match wins, the open rule's end
 * pattern first on a tie, then the patterns in order; lines are matched one at a time.
 */
class Tokenizer {
  private readonly regexps = new Map<string, RegExp>();
  constructor(private readonly grammar: Grammar) {}

  private regexp(source: string): RegExp {
    let re = this.regexps.get(source);
    if (!re) this.regexps.set(source, (re = new RegExp(source, 'dg')));
    return re;
  }

  /** A rule's patterns with includes resolved, in order. */
  private expand(patterns: Rule[]): Rule[] {
    return patterns.flatMap((p) => {
      if (!p.include) return [p];
      const target = p.include === '$self' ? { patterns: this.grammar.patterns } : this.grammar.repository[p.include.slice(1)];
      return target.match || target.begin ? [target] : this.expand(target.patterns ?? []);
    });
  }

  /** Scopes for every character of `text`, by line and column. */
  tokenize(text: string): string[][][] {
    const stack: Rule[] = [];
    return text.split('\n').map((line) => {
      const scopes: string[][] = Array.from({ length: line.length }, () => []);
      const paint = (from: number, to: number, names: (string | undefined)[]) => {
        for (let i = from; i < to; i++) for (const n of names) if (n) scopes[i].push(n);
      };
      let pos = 0;
      while (pos <= line.length) {
        const top = stack.at(-1);
        const candidates: { rule: Rule; source: string; end: boolean }[] = [];
        if (top) candidates.push({ rule: top, source: top.end!, end: true });
        for (const r of this.expand(top ? top.patterns ?? [] : this.grammar.patterns)) candidates.push({ rule: r, source: (r.match ?? r.begin)!, end: false });
        let best: { rule: Rule; end: boolean; m: RegExpExecArray } | undefined;
        for (const c of candidates) {
          const re = this.regexp(c.source);
          re.lastIndex = pos;
          const m = re.exec(line);
          if (m && (!best || m.index < best.m.index)) best = { rule: c.rule, end: c.end, m };
        }
        const open = stack.map((r) => r.name);
        if (!best) {
          paint(pos, line.length, open);
          break;
        }
        const { rule, end, m } = best;
        const [from, to] = m.indices![0];
        paint(pos, from, open);
        if (end) stack.pop();
        else if (rule.begin) stack.push(rule);
        paint(from, to, end ? open : [...open, rule.name]);
        const captures = end ? rule.endCaptures : rule.match ? rule.captures : rule.beginCaptures;
        for (const [g, c] of Object.entries(captures ?? {})) {
          const span = m.indices![Number(g)];
          if (span) paint(span[0], span[1], [c.name]);
        }
        // an empty end (a lookahead, or $) only closes its rule; any other empty match moves on a character
        pos = to === from && !end ? to + 1 : to;
      }
      return scopes;
    });
  }
}

describe('grammar/cnn.tmLanguage.json scopes', () => {
  const tokenizer = new Tokenizer(read('grammar/cnn.tmLanguage.json'));
  /** The scopes of the first character of `word` (its `nth` occurrence) in `text`. */
  const scopeAt = (text: string, word: string, nth = 0) => {
    const lines = tokenizer.tokenize(text);
    let offset = -1;
    for (let i = 0; i <= nth; i++) offset = text.indexOf(word, offset + 1);
    if (offset < 0) throw new Error(`${word} not in text`);
    const before = text.slice(0, offset).split('\n');
    return lines[before.length - 1][before.at(-1)!.length];
  };

  it('scopes a step label spelled like a layer as a label, with its colon', () => {
    const text = 'model M {\n  input 3x8x8\n  fc: dense 1000 -> relu: relu\n}\n';
    expect(scopeAt(text, 'fc')).toEqual(['entity.name.label.cnn']);
    expect(scopeAt(text, ':')).toEqual(['punctuation.separator.label.cnn']);
    expect(scopeAt(text, 'dense')).toContain('support.function.layer.cnn');
    expect(scopeAt(text, 'relu')).toEqual(['entity.name.label.cnn']);
    expect(scopeAt(text, 'relu', 1)).toContain('support.function.layer.cnn');
  });

  it('scopes block parameters where the body uses them', () => {
    const text = 'block unit(c, k, n) {\n  conv c*2 k pad=same -> bn\n  -> repeat n { conv c 1x1 }\n  -> inner(c, k=k)\n}\n';
    expect(scopeAt(text, 'c,')).toContain('variable.parameter.cnn'); // the declaration, as before
    expect(scopeAt(text, 'c*2')).toContain('variable.parameter.cnn');
    expect(scopeAt(text, '*2')).toContain('keyword.operator.arithmetic.cnn');
    expect(scopeAt(text, 'k pad')).toContain('variable.parameter.cnn');
    expect(scopeAt(text, 'pad')).toContain('variable.parameter.option.cnn');
    expect(scopeAt(text, 'same')).toContain('constant.language.cnn');
    expect(scopeAt(text, 'n {')).toContain('variable.parameter.cnn');
    expect(scopeAt(text, 'c 1x1')).toContain('variable.parameter.cnn');
    expect(scopeAt(text, '1x1')).toContain('constant.numeric.shape.cnn');
    expect(scopeAt(text, 'inner')).toContain('entity.name.function.call.cnn');
    expect(scopeAt(text, 'c, k=k')).toContain('variable.parameter.cnn');
    expect(scopeAt(text, 'k=k')).toContain('variable.parameter.option.cnn');
    expect(scopeAt(text, 'k)')).toContain('variable.parameter.cnn');
  });

  it('scopes `//` after a value as floor division and elsewhere as a comment, as the lexer reads it', () => {
    const text = 'block b(c, k) {\n  dwconv k pad=k//2 -> conv max(c // 4, 8) 1x1 -> relu // note\n  -> conv c%8 1x1  // width\n}\n';
    expect(scopeAt(text, '//2')).toEqual(['keyword.operator.arithmetic.cnn']);
    expect(scopeAt(text, 'max')).toEqual(['support.function.builtin.cnn']);
    expect(scopeAt(text, '// 4')).toContain('keyword.operator.arithmetic.cnn');
    expect(scopeAt(text, '// note')).toContain('comment.line.double-slash.cnn');
    expect(scopeAt(text, '%')).toContain('keyword.operator.arithmetic.cnn');
    expect(scopeAt(text, '// width')).toContain('comment.line.double-slash.cnn');
  });

  it('scopes `//` right after a layer name as a comment, and after a value starting a line inside brackets as division', () => {
    const text = 'block b(c, k) {\n  conv max(\n    c // 4, 8) 1x1 pad=[\n    k // 2, k // 2] -> relu//x\n}\n';
    expect(scopeAt(text, '// 4')).toContain('keyword.operator.arithmetic.cnn');
    expect(scopeAt(text, '// 2')).toContain('keyword.operator.arithmetic.cnn');
    expect(scopeAt(text, '//x')).toContain('comment.line.double-slash.cnn');
  });

  it('keeps layers, numbers, options, arrows, comments and train fields as they were', () => {
    const text = 'model M {\n  input 3x32x32\n  conv 32 3x3 stride=2 # note\n  -> residual project { relu } -> dense 10\n  train {\n    loss: cross_entropy\n  }\n}\n';
    expect(scopeAt(text, 'conv')).toContain('support.function.layer.cnn');
    expect(scopeAt(text, '32 ')).toContain('constant.numeric.cnn');
    expect(scopeAt(text, 'stride')).toContain('variable.parameter.option.cnn');
    expect(scopeAt(text, '# note')).toContain('comment.line.number-sign.cnn');
    expect(scopeAt(text, '->')).toContain('keyword.operator.arrow.cnn');
    expect(scopeAt(text, 'residual')).toContain('keyword.control.cnn');
    expect(scopeAt(text, 'project')).toContain('keyword.other.shortcut.cnn');
    expect(scopeAt(text, 'loss')).toContain('variable.other.property.train.cnn');
    expect(scopeAt(text, 'cross_entropy')).toContain('constant.language.train.cnn');
  });

  it('leaves no name in the examples unscoped but block uses written without arguments', () => {
    const dir = new URL('../examples/', import.meta.url);
    for (const file of readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.cnn'))) {
      const text = readFileSync(new URL(file, dir), 'utf8');
      const blocks = new Set([...text.matchAll(/\bblock\s+(\w+)/g)].map((m) => m[1]));
      const lines = tokenizer.tokenize(text);
      const bare = text.split('\n').flatMap((line, i) => [...line.matchAll(/[A-Za-z_]\w*/g)].filter((m) => lines[i][m.index].length === 0).map((m) => m[0]));
      expect(bare.filter((w) => !blocks.has(w)), file).toEqual([]);
    }
  });
});
