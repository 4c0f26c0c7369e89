/**
 * Checking the successive versions of one document (the language server's path). When an edit
 * stays inside one step of a model's or block's chain, only that step is parsed again and spliced
 * into the previous syntax tree, whose later offsets are moved in place; the checker then reuses
 * every top-level step whose input did not change (step-cache.ts). Any other edit, and any text
 * with syntax errors, takes the full path; the result always equals `check(text)` (tested).
 */
import type { IToken } from 'chevrotain';
import type * as A from './ast.ts';
import { checkFile } from './checker.ts';
import { cnnLexer } from './lexer.ts';
import { parse, parseStep, type ParseResult } from './parser.ts';
import { moveSpan, StepCache } from './step-cache.ts';
import type { Span } from './source.ts';
import type { CheckResult } from '../index.ts';

/** A version that parsed without any diagnostic: the base that later versions are parsed from. */
interface CleanVersion {
  text: string;
  ast: A.SourceFile;
}

export class DocumentChecker {
  private base: CleanVersion | undefined;
  private readonly cache = new StepCache();
  /** How the latest update parsed: 'full', 'step' (one step re-parsed) or 'trivia' (no token changed). */
  lastParse: 'full' | 'step' | 'trivia' = 'full';

  constructor(private readonly file = '<input>') {}

  /**
   * The check of `text`. It is parsed from the last clean version when the edit since then allows
   * (the versions between, with syntax errors, are checked on their own and leave the base and
   * the cache alone), so typing through a broken state and out of it stays on the fast path.
   * The base's tree is moved in place: a result must not be used after the next update.
   */
  update(text: string): CheckResult {
    const reused = this.base && this.reparse(this.base, text);
    let parsed: ParseResult;
    let cache: StepCache | undefined = this.cache;
    if (reused) parsed = { ast: reused, diagnostics: [] };
    else {
      this.lastParse = 'full';
      parsed = parse(text);
      if (parsed.diagnostics.length === 0) this.cache.clear();
      else cache = undefined;
    }
    if (parsed.diagnostics.length === 0) this.base = { text, ast: parsed.ast };
    const diagnostics = [...parsed.diagnostics];
    const models = checkFile(parsed.ast, diagnostics, cache);
    diagnostics.sort((a, b) => a.span.start - b.span.start);
    return { file: this.file, text, ast: parsed.ast, models, diagnostics };
  }

  /** The base's tree brought up to `text`, or undefined when the edit needs a full parse. */
  private reparse(last: CleanVersion, text: string): A.SourceFile | undefined {
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
  // Binary searches over native slice comparisons: far faster than a loop over characters.
  const longest = (same: (n: number) => boolean, max: number) => {
    let lo = 0;
    let hi = max;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (same(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const start = longest((n) => before.slice(0, n) === after.slice(0, n), limit);
  const suffix = longest((n) => before.slice(before.length - n) === after.slice(after.length - n), limit - start);
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
 * place) and every node that ends before `from`. Each span object is moved once: a clean tree
 * (the only kind this path takes) has one span object per node; only recovery shares them.
 */
function moveSpans(ast: A.SourceFile, from: number, delta: number, skip?: A.Step): void {
  if (delta === 0) return;
  const move = (span: Span | undefined) => span && moveSpan(span, from, delta);
  const expr = (e: A.Expr): void => {
    if (e.span.end < from) return;
    move(e.span);
    switch (e.kind) {
      case 'list': e.items.forEach(expr); break;
      case 'negate': expr(e.operand); break;
      case 'binary': expr(e.left); expr(e.right); break;
    }
  };
  const args = (list: A.Arg[]) => {
    for (const a of list) {
      if (a.span.end < from) continue;
      move(a.span);
      move(a.nameSpan);
      expr(a.value);
    }
  };
  const chain = (c: A.Chain): void => {
    if (c.span.end < from) return;
    move(c.span);
    for (const s of c.steps) step(s);
  };
  const step = (s: A.Step): void => {
    if (s === skip || s.span.end < from) return;
    move(s.span);
    move(s.label?.span);
    switch (s.kind) {
      case 'layer': move(s.nameSpan); args(s.args); break;
      case 'repeat': move(s.keywordSpan); if (s.count) expr(s.count); chain(s.body); break;
      case 'residual': move(s.keywordSpan); args(s.args); chain(s.body); break;
      case 'concat': case 'add': move(s.keywordSpan); s.branches.forEach(chain); break;
      case 'gate': case 'frozen': move(s.keywordSpan); chain(s.body); break;
    }
  };
  for (const b of ast.blocks) {
    if (b.span.end < from) continue;
    move(b.span);
    move(b.nameSpan);
    b.params.forEach((p) => move(p.span));
    chain(b.body);
  }
  for (const m of ast.models) {
    if (m.span.end < from) continue;
    move(m.span);
    move(m.nameSpan);
    if (m.input) {
      move(m.input.span);
      if (m.input.dims) expr(m.input.dims);
      args(m.input.args);
    }
    chain(m.body);
    if (m.train) {
      move(m.train.span);
      for (const e of m.train.entries) {
        move(e.span);
        move(e.keySpan);
        args(e.values);
      }
    }
  }
}
