/**
 * A seeded, grammar-aware generator of .cnn inputs for the fuzzer: mutations of the examples and
 * fixtures at the level of tokens and lines, the shapes that found bugs before (repeat bombs,
 * blocks that use the one before twice, deep nesting), odd characters and random bytes.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { layerNames } from '../../src/compiler/layers/index.ts';
import { rng } from '../helpers/random.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Every .cnn file of the examples and the test fixtures, as [relative path, text]. */
export function corpus(): [string, string][] {
  const out: [string, string][] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.cnn')) out.push([path.relative(root, full), readFileSync(full, 'utf8')]);
    }
  };
  walk(path.join(root, 'examples'));
  walk(path.join(root, 'test', 'fixtures'));
  return out;
}

const TOKEN = /\s+|[A-Za-z_][A-Za-z0-9_]*|\d[\d_.]*(?:[eE][+-]?\d+)?(?:x\d+)*|->|\/\/|\/\*|\*\/|[^\s]/g;
const KEYWORDS = ['model', 'block', 'input', 'repeat', 'residual', 'project', 'concat', 'add', 'split', 'gate', 'frozen', 'train', 'loss:', 'optimizer:', 'schedule:'];
const NUMBERS = ['0', '1', '-1', '3', '7x7', '1x1x1', '0x0', '99999999999', '1e308', '1e-320', '1e999', '4294967297', '0.5', '.', '1_000', '2x'];
const PUNCT = ['{', '}', '(', ')', '[', ']', '->', '|', ',', ':', '=', '+', '-', '*', '/', '//', '/*', '*/', '"', '#', '\n', ' '];
const ODD = ['\0', '\uFEFF', '\r', '\r\n', '\t', '\u2028', 'é', '😀', '\uD800', '\u00A0', '\f', '\v'];

export interface Generator {
  next(): { text: string; how: string };
}

/** Inputs for seed `seed`, cycling through the corpus and the kinds of mutation. */
export function generator(seed: number, files = corpus()): Generator {
  const rand = rng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  const vocabulary = [...KEYWORDS, ...NUMBERS, ...PUNCT, ...ODD, ...layerNames];
  const kinds: [string, (text: string) => string][] = [
    ['delete', (t) => edit(t, (toks, i) => toks.splice(i, 1 + int(3)))],
    ['duplicate', (t) => edit(t, (toks, i) => toks.splice(i, 0, ...toks.slice(i, i + 1 + int(4))))],
    ['swap', (t) => edit(t, (toks, i) => { const j = int(toks.length); [toks[i], toks[j]] = [toks[j], toks[i]]; })],
    ['insert', (t) => edit(t, (toks, i) => toks.splice(i, 0, pick(vocabulary), pick([' ', '', '\n']))) ],
    ['replace', (t) => edit(t, (toks, i) => { toks[i] = pick(vocabulary); })],
    ['number', (t) => edit(t, (toks, i) => { const j = toks.findIndex((x, k) => k >= i && /^\d/.test(x)); if (j >= 0) toks[j] = pick(NUMBERS); })],
    ['splice lines', (t) => {
      const a = t.split('\n');
      const b = pick(files)[1].split('\n');
      a.splice(int(a.length + 1), int(3), ...b.slice(int(b.length), int(b.length) + 1 + int(6)));
      return a.join('\n');
    }],
    ['odd characters', (t) => edit(t, (toks, i) => toks.splice(i, 0, pick(ODD)))],
    ['line ends', (t) => t.replace(/\n/g, () => pick(['\n', '\r\n', '\r', '\n\r']))],
    ['bom', (t) => '\uFEFF' + t],
    ['nesting', (t) => edit(t, (toks, i) => {
      const n = 1 + int(80);
      toks.splice(i, 0, pick(['residual { ', 'concat { ', 'concat { | ', 'add { relu | ', 'split { | ', 'split [1, 1] { ', 'gate { ', 'frozen { ', '(', '[', 'repeat 2 { ', 'repeat 0 { ']).repeat(n) + 'relu' + pick([' }', ')', ']', '']).repeat(int(n + 1)));
    })],
    // Empty branches (`{ | a }`, `{ a | }`, `{ a | | b }`) and bodies that pass their input (`repeat 0`, `split { | }`).
    ['empty branches', (t) => edit(t, (toks, i) => {
      const j = toks.findIndex((x, k) => k >= i && (x === '{' || x === '|' || x === '}'));
      if (j >= 0) toks.splice(toks[j] === '}' ? j : j + 1, 0, pick([' | ', '|', ' | | ']));
    })],
    ['repeat 0', (t) => t.replace(/\brepeat\s+[^{]*\{/g, (m) => (rand() < 0.5 ? 'repeat 0 {' : m))],
    ['split', (t) => t.replace(/\b(concat|add)\b/g, (m) => (rand() < 0.5 ? pick(['split', 'split [2, 2]', 'split [1]']) : m))],
    ['repeat bomb', () => repeatBomb(1 + int(4), () => pick(['10000', '9999', '1000', '100', '2', '0', '-3']), pick(['relu', 'foo', 'conv 4 3x3', 'flatten', '', '->']))],
    ['doubling blocks', () => doublingBlocks(2 + int(60), pick(['relu', 'foo', 'conv 4 1x1', 'dense 3']))],
    ['mutual blocks', () => `block a { b -> b } block b { a } model m { input 1x8x8 ${pick(['a', 'b', 'a -> b'])} }`],
    ['bytes', () => Array.from({ length: int(400) }, () => String.fromCharCode(int(256))).join('')],
  ];
  function edit(text: string, change: (tokens: string[], at: number) => void): string {
    const tokens = text.match(TOKEN) ?? [];
    const times = 1 + int(3);
    for (let k = 0; k < times; k++) change(tokens, int(tokens.length + 1));
    return tokens.join('');
  }
  return {
    next() {
      const [name, text] = pick(files);
      const [kind, mutate] = pick(kinds);
      let out = mutate(text);
      // Now and then a second mutation on top of the first.
      if (rand() < 0.3) out = pick(kinds)[1](out);
      return { text: out, how: `${kind} of ${name}` };
    },
  };
}

function repeatBomb(depth: number, count: () => string, body: string): string {
  return `model m { input 1x8x8 ${Array.from({ length: depth }, () => `repeat ${count()} { `).join('')}${body}${' }'.repeat(depth)} }`;
}

function doublingBlocks(n: number, leaf: string): string {
  const blocks = [`block b0 { ${leaf} }`];
  for (let i = 1; i < n; i++) blocks.push(`block b${i} { b${i - 1} -> b${i - 1} }`);
  return `${blocks.join('\n')}\nmodel m { input 4x8x8 b${n - 1} }`;
}
