/**
 * Checking the successive versions of one document (the language server's path). When an edit
 * stays inside one step of a model's or block's chain, only that step is parsed again and spliced
 * into the previous syntax tree, whose later offsets are moved in place; the checker then reuses
 * every top-level step whose input did not change (step-cache.ts). Any other edit, and any text
 * with syntax errors, takes the full path, so the result always equals `check(text)` (tested).
 */
import type { IToken } from 'chevrotain';
import type * as A from './ast.ts';
import { checkFile } from './checker.ts';
import { cnnLexer } from './lexer.ts';
import { parse, parseStep, type ParseResult } from './parser.ts';
import { moveSpan, StepCache } from './step-cache.ts';
import type { Span } from './source.ts';
import type { CheckResult } from '../index.ts';

interface LastVersion {
  text: string;
  ast: A.SourceFile;
  /** Parsed without any diagnostic: only then is its tree a base for the next version. */
  clean: boolean;
}

export class DocumentChecker {
  private last: LastVersion | undefined;
  private readonly cache = new StepCache();
  /** How the latest update parsed: 'full', 'step' (one step re-parsed) or 'trivia' (no token changed). */
  lastParse: 'full' | 'step' | 'trivia' = 'full';

  constructor(private readonly file = '<input>') {}

  /** The check of `text`. The previous result's syntax tree is reused and moved: do not keep using it. */
  update(text: string): CheckResult {
    const reused = this.last?.clean ? this.reparse(this.last, text) : undefined;
    const parsed = reused ? { ast: reused, diagnostics: [] } : this.fullParse(text);
    this.last = { text, ast: parsed.ast, clean: parsed.diagnostics.length === 0 };
    const diagnostics = [...parsed.diagnostics];
    const models = checkFile(parsed.ast, diagnostics, this.cache);
    diagnostics.sort((a, b) => a.span.start - b.span.start);
    return { file: this.file, text, ast: parsed.ast, models, diagnostics };
  }

  private fullParse(text: string): ParseResult {
    this.lastParse = 'full';
    this.cache.clear();
    return parse(text);
  }

  /** The previous tree brought up to `text`, or undefined when the edit needs a full parse. */
  private reparse(last: LastVersion, text: string): A.SourceFile | undefined {
    const { ast } = last;
    const edit = changedRange(last.text, text);
    const { delta } = edit;
    const found = enclosingStep(ast, edit.start, edit.oldEnd);
    const from = found ? found.chain.steps[found.index].span.start : edit.start;
    const oldTo = found ? found.chain.steps[found.index].span.end : edit.oldEnd;
    const relexed = relex(last.text, text, from, oldTo, delta);
    if (!relexed) return undefined;
    const { tokens, replaced } = relexed;
    if (!found) {
      if (tokens.length > 0 || replaced > 0) return undefined;
      // An edit in spaces or comments: the same tokens, moved.
      this.lastParse = 'trivia';
      moveSpans(ast, edit.oldEnd, delta);
      this.cache.shift(edit.oldEnd, delta);
      ast.span = { start: 0, end: text.length };
      return ast;
    }
    const step = parseStep(tokens, text);
    if (!step) return undefined;
    this.lastParse = 'step';
    const { chain, index, owner } = found;
    chain.steps[index] = step;
    moveSpans(ast, oldTo, delta, step);
    this.cache.shift(oldTo, delta);
    // The chain's edges are its first and last steps' (which the new step may have moved).
    if (index === 0) chain.span.start = step.span.start;
    if (index === chain.steps.length - 1) chain.span.end = step.span.end;
    ast.span = { start: 0, end: text.length };
    // A block's body feeds every use of the block: the cached checks of models are stale.
    if (owner.kind === 'block') this.cache.clear();
    return ast;
  }
}

/** The smallest range that differs: old text [start, oldEnd) became new text [start, oldEnd + delta). */
function changedRange(before: string, after: string): { start: number; oldEnd: number; delta: number } {
  const limit = Math.min(before.length, after.length);
  let start = 0;
  while (start < limit && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let suffix = 0;
  while (suffix < limit - start && before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)) suffix++;
  return { start, oldEnd: before.length - suffix, delta: after.length - before.length };
}

/** The step directly in a model's or block's chain whose span holds the old range [start, end). */
function enclosingStep(ast: A.SourceFile, start: number, end: number): { chain: A.Chain; index: number; owner: A.ModelDecl | A.BlockDecl } | undefined {
  for (const owner of [...ast.models, ...ast.blocks]) {
    if (start < owner.span.start || end > owner.span.end) continue;
    const steps = owner.body.steps;
    const index = steps.findIndex((s) => s.span.start <= start && end <= s.span.end);
    return index >= 0 ? { chain: owner.body, index, owner } : undefined;
  }
  return undefined;
}

/**
 * The new text's tokens in [from, oldTo + delta) and how many old ones they replace, when the tokens outside that range are the old
 * ones (the later ones moved by `delta`) and none crosses its edges; otherwise undefined. Only the
 * whole lines around the range are lexed, in both texts: tokens never span lines, except block
 * comments, so a region holding any block-comment delimiter is left to the full parse.
 */
function relex(before: string, after: string, from: number, oldTo: number, delta: number): { tokens: IToken[]; replaced: number } | undefined {
  const lineStart = before.lastIndexOf('\n', from - 1) + 1;
  const lineEnd = (text: string, at: number) => {
    const i = text.indexOf('\n', at);
    return i < 0 ? text.length : i;
  };
  const oldRegion = before.slice(lineStart, lineEnd(before, oldTo));
  const newRegion = after.slice(lineStart, lineEnd(after, oldTo + delta));
  if (/\/\*|\*\//.test(oldRegion) || /\/\*|\*\//.test(newRegion)) return undefined;
  const oldLexed = cnnLexer.tokenize(oldRegion);
  const newLexed = cnnLexer.tokenize(newRegion);
  if (oldLexed.errors.length > 0 || newLexed.errors.length > 0) return undefined;
  const oldTokens = oldLexed.tokens;
  const newTokens = newLexed.tokens;
  // Offsets within the regions.
  const head = from - lineStart;
  const oldTail = oldTo - lineStart;
  const newTail = oldTail + delta;
  const crosses = (tokens: IToken[], at: number) => tokens.some((t) => t.startOffset < at && t.endOffset! + 1 > at);
  if (crosses(oldTokens, head) || crosses(oldTokens, oldTail) || crosses(newTokens, head) || crosses(newTokens, newTail)) return undefined;
  const oldHead = countBefore(oldTokens, head);
  const newHead = countBefore(newTokens, head);
  const oldAfter = oldTokens.length - countBefore(oldTokens, oldTail);
  const newAfter = newTokens.length - countBefore(newTokens, newTail);
  if (oldHead !== newHead || oldAfter !== newAfter) return undefined;
  for (let i = 0; i < oldHead; i++) if (oldTokens[i].image !== newTokens[i].image) return undefined;
  for (let i = 1; i <= oldAfter; i++) {
    const a = oldTokens[oldTokens.length - i];
    const b = newTokens[newTokens.length - i];
    if (a.image !== b.image || a.startOffset + delta !== b.startOffset) return undefined;
  }
  const window = newTokens.slice(newHead, newTokens.length - newAfter);
  for (const t of window) {
    t.startOffset += lineStart;
    t.endOffset! += lineStart;
  }
  return { tokens: window, replaced: oldTokens.length - oldHead - oldAfter };
}

/** How many tokens start before `offset` (tokens are in order). */
function countBefore(tokens: IToken[], offset: number): number {
  let n = 0;
  while (n < tokens.length && tokens[n].startOffset < offset) n++;
  return n;
}

/**
 * Moves the syntax tree's spans (moveSpan), in place, skipping the new step (already at its
 * place). Spans may be shared between nodes, so each is moved once; a node that ends before
 * `from` holds nothing to move.
 */
function moveSpans(ast: A.SourceFile, from: number, delta: number, skip?: A.Step): void {
  if (delta === 0) return;
  const seen = new Set<object>();
  const visit = (value: unknown): void => {
    if (typeof value !== 'object' || value === null || value === skip || seen.has(value)) return;
    seen.add(value);
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    const record = value as Record<string, unknown>;
    if (typeof record.start === 'number' && typeof record.end === 'number') {
      moveSpan(record as unknown as Span, from, delta);
      return;
    }
    const span = record.span as { end: number } | undefined;
    if (span && span.end < from) return;
    for (const key in record) visit(record[key]);
  };
  visit(ast);
}
