/**
 * Document and range formatting through the formatter; a file with syntax errors is left as it is.
 * Range formatting formats the whole file (a chain's layout depends on its neighbours) and keeps
 * the edits that lie inside the range: the formatter changes only whitespace and comment endings,
 * so the two texts pair up token by token and each differing piece is one small edit.
 */
import type { IToken } from 'chevrotain';
import type { Range, TextEdit } from 'vscode-languageserver';
import * as T from '../compiler/lexer.ts';
import type { Span } from '../compiler/source.ts';
import type { Analysis } from './analysis.ts';
import { toRange, toSpan } from './convert.ts';

export function formatDocument(analysis: Analysis): TextEdit[] {
  const out = analysis.formatted;
  if (out === null || out === analysis.text) return [];
  return [{ range: { start: { line: 0, character: 0 }, end: analysis.lines.position(analysis.text.length) }, newText: out }];
}

export function formatRange(analysis: Analysis, range: Range): TextEdit[] {
  const out = analysis.formatted;
  if (out === null || out === analysis.text) return [];
  const within = toSpan(analysis.lines, range);
  return pieceEdits(analysis.text, out)
    .filter((e) => e.span.start >= within.start && e.span.end <= within.end)
    .map((e) => ({ range: toRange(analysis.lines, e.span), newText: e.text }));
}

/** Tokens and comments in text order. */
function pieces(text: string): IToken[] {
  const lexed = T.cnnLexer.tokenize(text);
  return [...lexed.tokens, ...(lexed.groups.comments ?? [])].sort((a, b) => a.startOffset - b.startOffset);
}

/**
 * The edits that turn `text` into `out`, one per token whose preceding gap or own text differs
 * (trimmed to the part that differs), and one for the gap after the last token. Both texts must
 * have the same tokens in the same order, which the formatter checks before it returns.
 */
export function pieceEdits(text: string, out: string): { span: Span; text: string }[] {
  const a = pieces(text);
  const b = pieces(out);
  if (a.length !== b.length) return [{ span: { start: 0, end: text.length }, text: out }];
  const edits: { span: Span; text: string }[] = [];
  let endA = 0;
  let endB = 0;
  for (let i = 0; i <= a.length; i++) {
    const nextA = i < a.length ? a[i].startOffset + a[i].image.length : text.length;
    const nextB = i < b.length ? b[i].startOffset + b[i].image.length : out.length;
    const edit = smallestEdit(text.slice(endA, nextA), out.slice(endB, nextB));
    if (edit) edits.push({ span: { start: endA + edit.start, end: endA + edit.end }, text: edit.text });
    endA = nextA;
    endB = nextB;
  }
  return edits;
}

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;

/** The edit of `from` into `to` without their common prefix and suffix; undefined when equal. */
function smallestEdit(from: string, to: string): { start: number; end: number; text: string } | undefined {
  if (from === to) return undefined;
  let p = 0;
  while (p < from.length && p < to.length && from[p] === to[p]) p++;
  let s = 0;
  while (s < from.length - p && s < to.length - p && from[from.length - 1 - s] === to[to.length - 1 - s]) s++;
  // never start or end an edit inside a \r\n (no position of the LSP's is there) or a surrogate pair
  const splits = (i: number) => i > 0 && i < from.length && ((from[i - 1] === '\r' && from[i] === '\n') || isHighSurrogate(from.charCodeAt(i - 1)));
  if (splits(p)) p--;
  if (splits(from.length - s)) s--;
  return { start: p, end: from.length - s, text: to.slice(p, to.length - s) };
}
