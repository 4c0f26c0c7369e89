/** Semantic tokens: layer kinds, block and model names, block parameters, options, keywords, numbers. */
import type { SemanticTokens, SemanticTokensLegend } from 'vscode-languageserver';
import type * as A from '../compiler/ast.ts';
import { functions } from '../compiler/args.ts';
import { combinatorOf } from '../compiler/combinators/index.ts';
import { lookupLayer } from '../compiler/layers/index.ts';
import * as T from '../compiler/lexer.ts';
import { allSteps, namesIn, type Analysis } from './analysis.ts';

const types = ['keyword', 'function', 'class', 'namespace', 'parameter', 'property', 'number', 'string', 'comment', 'operator', 'enumMember', 'variable'] as const;
const modifiers = ['declaration', 'defaultLibrary'] as const;
type TokenKind = (typeof types)[number];

export const semanticLegend: SemanticTokensLegend = { tokenTypes: [...types], tokenModifiers: [...modifiers] };

const DECL = 1;
const LIB = 2;

interface Classified {
  type: TokenKind;
  mods: number;
}

/** What each identifier is, by its offset, from the syntax tree. */
function classifyNames(analysis: Analysis): Map<number, Classified> {
  const map = new Map<number, Classified>();
  const set = (start: number, type: TokenKind, mods = 0) => map.set(start, { type, mods });
  const ast = analysis.ast;
  const blocks = new Set(analysis.blocks.map((b) => b.name));
  // A name in a value: a parameter, a layer or block passed (`act=relu`), a function, or a word like `same`.
  const names = (e: A.Expr, params: ReadonlySet<string>) => {
    for (const n of namesIn(e)) {
      if (params.has(n.name)) set(n.span.start, 'parameter');
      else if (blocks.has(n.name)) set(n.span.start, 'class');
      else if (lookupLayer(n.name) || n.name in functions) set(n.span.start, 'function', LIB);
      else set(n.span.start, 'enumMember');
    }
  };
  const args = (list: readonly A.Arg[], params: ReadonlySet<string>) => {
    for (const a of list) {
      if (a.nameSpan) set(a.nameSpan.start, 'property');
      names(a.value, params);
    }
  };
  for (const b of ast.blocks) {
    set(b.nameSpan.start, 'class', DECL);
    const params = new Set(b.params.map((p) => p.name));
    for (const p of b.params) {
      set(p.span.start, 'parameter', DECL);
      if (p.default) names(p.default, params);
    }
  }
  for (const m of ast.models) {
    set(m.nameSpan.start, 'namespace', DECL);
    if (m.input) args(m.input.args, new Set());
    for (const e of m.train?.entries ?? []) {
      set(e.keySpan.start, 'property');
      args(e.values, new Set());
    }
  }
  for (const { step, decl } of allSteps(ast)) {
    const params = new Set(decl.kind === 'block' ? decl.params.map((p) => p.name) : []);
    if (step.label) set(step.label.span.start, 'variable', DECL);
    if (step.kind === 'layer') {
      if (params.has(step.name)) set(step.nameSpan.start, 'parameter'); // a parameter holding a layer (`-> act`)
      else if (blocks.has(step.name)) set(step.nameSpan.start, 'class');
      else if (lookupLayer(step.name)) set(step.nameSpan.start, 'function', LIB);
      args(step.args, params);
    } else {
      const c = combinatorOf(step);
      args(c.stepArgs(step), params);
      for (const e of c.exprs(step)) names(e, params);
    }
  }
  return map;
}

export function semanticTokens(analysis: Analysis): SemanticTokens {
  const lexed = T.cnnLexer.tokenize(analysis.text);
  const names = classifyNames(analysis);
  const items: { offset: number; length: number; type: TokenKind; mods: number }[] = [];
  for (const t of lexed.tokens) {
    const type = t.tokenType;
    let c: Classified | undefined;
    if (T.keywords.includes(type)) c = { type: 'keyword', mods: 0 };
    else if (type === T.Identifier) c = names.get(t.startOffset);
    else if (type === T.NumberLiteral || type === T.Dims) c = { type: 'number', mods: 0 };
    else if (type === T.StringLiteral) c = { type: 'string', mods: 0 };
    else if (type === T.Arrow || type === T.Pipe) c = { type: 'operator', mods: 0 };
    if (c) items.push({ offset: t.startOffset, length: t.image.length, ...c });
  }
  for (const c of lexed.groups.comments ?? []) {
    // one token per line: clients need not support tokens over several lines
    for (const part of c.image.matchAll(/[^\r\n]+/g)) {
      items.push({ offset: c.startOffset + part.index, length: part[0].length, type: 'comment', mods: 0 });
    }
  }
  items.sort((a, b) => a.offset - b.offset);
  const data: number[] = [];
  let line = 0;
  let char = 0;
  for (const it of items) {
    const p = analysis.lines.position(it.offset);
    const dl = p.line - line;
    data.push(dl, dl === 0 ? p.character - char : p.character, it.length, types.indexOf(it.type), it.mods);
    line = p.line;
    char = p.character;
  }
  return { data };
}
