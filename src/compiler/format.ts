/**
 * The formatter: one layout for .cnn source, computed from the token stream with its comments.
 *
 * - 2-space indentation inside braces; `model`, `block` and `train` bodies always on their own lines,
 *   one blank line between top-level declarations, at most one blank line kept elsewhere.
 * - Chains: ` -> ` between steps; a chain breaks where the source broke it (anywhere between two
 *   steps) and wherever a line would pass 100 columns, and a broken line starts with `-> `.
 * - Nested bodies (`residual { ... }`, `concat { a | b }`) stay on one line when the source had
 *   them on one line, without comments, and they fit; otherwise they open a block, where branches
 *   after the first start with `| ` at the brace's indentation, so that all branches line up; an
 *   empty first branch is the `|` that ends the brace's line (`concat { |`).
 * - `key=value` and call arguments `f(a, b)` without inner spaces; `+`/`-` spaced inside brackets,
 *   parentheses and repeat counts, tight among space-separated layer arguments (`conv c*4 1x1`).
 * - Comments are kept where they are: a comment after code stays at the end of that line, a comment
 *   on its own line stays on its own line, indented with the code that follows it. End-of-line
 *   comments in one paragraph are aligned two spaces after the longest of their lines' code.
 *
 * Only whitespace ever changes: a file with syntax errors is refused (null), and the result is
 * re-lexed and compared token by token (comments included) before it is returned.
 */
import type { IToken, TokenType } from 'chevrotain';
import * as T from './lexer.ts';
import { combinatorList } from './combinators/index.ts';
import { assertNever } from './model.ts';
import { parse } from './parser.ts';
import { hasLineBreak } from './source.ts';

export const FORMAT_WIDTH = 100;
const INDENT = '  ';

/** The formatted text, or null when the file has syntax errors (or, defensively, when formatting would change a token). */
export function format(text: string): string | null {
  if (parse(text).diagnostics.some((d) => d.code.startsWith('CNN1'))) return null;
  const lexed = T.cnnLexer.tokenize(text);
  if (lexed.errors.length) return null;
  let out: string;
  try {
    out = new Formatter(text, lexed.tokens, lexed.groups.comments ?? []).file();
  } catch {
    return null;
  }
  return sameTokens(text, out) ? out : null;
}

/** Whether two texts have the same tokens and comments: what makes a reformatting safe. */
export function sameTokens(a: string, b: string): boolean {
  const la = T.cnnLexer.tokenize(a);
  const lb = T.cnnLexer.tokenize(b);
  if (la.errors.length !== lb.errors.length || la.tokens.length !== lb.tokens.length) return false;
  for (let i = 0; i < la.tokens.length; i++) {
    if (la.tokens[i].tokenType !== lb.tokens[i].tokenType || la.tokens[i].image !== lb.tokens[i].image) return false;
  }
  const ca = (la.groups.comments ?? []).map(commentText);
  const cb = (lb.groups.comments ?? []).map(commentText);
  return ca.length === cb.length && ca.every((c, i) => c === cb[i]);
}

function commentText(c: IToken): string {
  const t = c.image.replace(/\r\n?/g, '\n');
  return c.tokenType === T.Comment ? t.trimEnd() : t;
}

const wordChar = /[A-Za-z0-9_.]/;
/** Two line breaks with only spaces between; a CR that is part of CRLF is not a break of its own. */
const BLANK_LINE = /(?:\r\n|\r(?!\n)|\n)[ \t\f\v]*(?:\r\n|\r(?!\n)|\n)/;

/** Output lines with lazy line breaks, so that comments can attach to the line they were on. */
class Writer {
  readonly lines: string[] = [];
  line = '';
  /** Indentation level for lines that start a layout unit (a step, a declaration, a `}`). */
  indent = 0;
  /** Level of the current output line. */
  lineIndent = 0;
  /** Width of the first line, when measuring. */
  stopped = false;
  private want: number | null = null; // layout asks for a break before the next token, at this level
  private forced = false; // a line comment ended the line
  private blank = false; // a blank line is wanted before the next line
  private anchor = 0; // level of the last line started by the layout
  private lastEnd = 0; // source offset just past the last emitted token or comment
  private afterOpen = false; // the last thing emitted was `{`
  private flushed = -1; // comments before tokens up to this index are out
  /** Output line index -> width of its code, for lines that end with a comment after code. */
  private readonly trailing = new Map<number, number>();

  constructor(
    private readonly text: string,
    private readonly tokens: IToken[],
    private readonly commentsBefore: IToken[][],
    readonly measuring = false,
  ) {}

  get col(): number {
    const nl = this.line.lastIndexOf('\n');
    return this.line.length - nl - 1;
  }

  private get hasContent(): boolean {
    return this.line.trim() !== '';
  }

  newline(level = this.indent): void {
    if (!this.measuring) this.want = level;
  }

  blankLine(): void {
    if (this.measuring) return;
    this.blank = true;
    this.want = this.indent;
  }

  /** Writes token i: its comments first, then a pending line break, then the token. */
  tok(i: number, space = true, home = false): void {
    if (this.stopped) return;
    const token = this.tokens[i];
    if (!this.measuring) {
      this.flush(i, home);
      if (this.want !== null || this.forced) {
        const level = this.want ?? (home ? this.indent : this.anchor + 1);
        if (this.want !== null) this.anchor = level;
        this.nl(level, token.startOffset, token.tokenType === T.RBrace);
      }
    }
    this.put(token.image, space);
    this.lastEnd = token.startOffset + token.image.length;
    this.afterOpen = token.tokenType === T.LBrace;
  }

  private put(image: string, space: boolean): void {
    if (!this.hasContent) this.line += image;
    else {
      const prev = this.line[this.line.length - 1];
      // A dot only ever stands between two names (`std.resnet`): the names need no space around it.
      const dotted = image === '.' || prev === '.';
      const glue = (!dotted && wordChar.test(prev) && wordChar.test(image[0])) || (prev === '-' && image[0] === '>') || (prev === '/' && (image[0] === '*' || image[0] === '/')) || (prev === '*' && image[0] === '/');
      this.line += (space || glue ? ' ' : '') + image;
    }
  }

  /** Comments in the source before token i (index tokens.length: the end of the file). */
  flush(i: number, home: boolean): void {
    if (this.measuring) return;
    for (let k = this.flushed + 1; k <= i; k++) {
      for (const c of this.commentsBefore[k] ?? []) {
        const image = commentText(c);
        const trailing = this.hasContent && !hasLineBreak(this.text.slice(this.lastEnd, c.startOffset));
        if (trailing) {
          if (c.tokenType === T.Comment) this.trailing.set(this.lines.length, this.line.trimEnd().length);
          this.line += ' ' + image;
        }
        else {
          const level = this.want ?? (home ? this.indent : this.anchor + 1);
          const want = this.want;
          if (this.hasContent) this.nl(level, c.startOffset, false);
          else this.line = INDENT.repeat(level);
          this.want = want; // the token after the comment still goes where the layout put it
          this.line += image;
          this.afterOpen = false;
        }
        this.forced ||= c.tokenType === T.Comment || !trailing;
        this.lastEnd = c.startOffset + c.image.length;
      }
    }
    this.flushed = Math.max(this.flushed, i);
  }

  private nl(level: number, nextStart: number, closing: boolean): void {
    if (this.hasContent) {
      this.lines.push(this.line.trimEnd());
      const sourceBlank = BLANK_LINE.test(this.text.slice(this.lastEnd, nextStart));
      if ((this.blank || sourceBlank) && !this.afterOpen && !closing) this.lines.push('');
    }
    this.line = INDENT.repeat(level);
    this.lineIndent = level;
    this.want = null;
    this.forced = false;
    this.blank = false;
  }

  /** End-of-line comments in one paragraph (no blank line between them) get one column. */
  private alignComments(): void {
    const rows = [...this.trailing.keys()].sort((a, b) => a - b);
    for (let r = 0; r < rows.length;) {
      let end = r;
      while (end + 1 < rows.length && !this.lines.slice(rows[end] + 1, rows[end + 1]).includes('')) end++;
      const run = rows.slice(r, end + 1);
      const column = Math.max(...run.map((row) => this.trailing.get(row)!)) + 2;
      for (const row of run) {
        const width = this.trailing.get(row)!;
        const line = this.lines[row];
        this.lines[row] = line.slice(0, width) + ' '.repeat(column - width) + line.slice(width).trimStart();
      }
      r = end + 1;
    }
  }

  finish(): string {
    this.flush(this.tokens.length, true);
    if (this.hasContent) this.lines.push(this.line.trimEnd());
    this.alignComments();
    while (this.lines.length && this.lines[0] === '') this.lines.shift();
    return this.lines.length ? this.lines.join('\n') + '\n' : '';
  }
}

class Formatter {
  private readonly commentsBefore: IToken[][];
  private readonly match = new Map<number, number>(); // `{` index -> its `}` index
  private readonly widths = new Map<number, number>();
  /** The first token of the latest top-level declaration written. */
  private previousDeclaration = -1;

  constructor(
    private readonly text: string,
    private readonly tokens: IToken[],
    comments: IToken[],
  ) {
    this.commentsBefore = Array.from({ length: tokens.length + 1 }, () => []);
    let k = 0;
    for (const c of comments) {
      while (k < tokens.length && tokens[k].startOffset < c.startOffset) k++;
      this.commentsBefore[k].push(c);
    }
    const open: number[] = [];
    tokens.forEach((t, i) => {
      if (t.tokenType === T.LBrace) open.push(i);
      else if (t.tokenType === T.RBrace && open.length) this.match.set(open.pop()!, i);
    });
  }

  file(): string {
    const w = new Writer(this.text, this.tokens, this.commentsBefore);
    let i = 0;
    while (i < this.tokens.length) {
      // Imports in a row stay in a row; every other declaration gets a blank line before it.
      if (i > 0 && this.is(i, T.Import) && this.is(this.previousDeclaration, T.Import)) w.newline();
      else if (i > 0) w.blankLine();
      this.previousDeclaration = i;
      if (this.is(i, T.Model)) i = this.model(i, w);
      else if (this.is(i, T.Block)) i = this.block(i, w);
      else if (this.is(i, T.Import)) i = this.importDecl(i, w);
      else throw new Error(`unexpected ${this.tokens[i].image}`);
    }
    return w.finish();
  }

  /** `import "file.cnn"` or `import std.resnet`, on a line of its own. */
  private importDecl(i: number, w: Writer): number {
    w.tok(i++, true, true);
    w.tok(i++);
    while (this.is(i, T.Dot) || this.is(i - 1, T.Dot)) w.tok(i++, false);
    return i;
  }

  private is(i: number, ...types: TokenType[]): boolean {
    const t = this.tokens[i];
    return t !== undefined && types.includes(t.tokenType);
  }

  private expect(i: number, type: TokenType): void {
    if (!this.is(i, type)) throw new Error(`expected ${type.name} at token ${i}`);
  }

  private model(i: number, w: Writer): number {
    w.tok(i, true, true);
    w.tok(i + 1);
    this.expect(i + 2, T.LBrace);
    w.tok(i + 2);
    i += 3;
    const saved = w.indent;
    w.indent = w.lineIndent + 1;
    w.newline();
    if (this.is(i, T.Input)) {
      i = this.inputDecl(i, w);
      w.newline();
    }
    if (this.is(i, T.Arrow)) {
      w.tok(i, true, true);
      i = this.chain(i + 1, w, false, w.indent, false);
    } else if (!this.is(i, T.Train, T.RBrace)) i = this.chain(i, w, true, w.indent, false);
    if (this.is(i, T.Train)) {
      w.newline();
      i = this.train(i, w);
    }
    return this.close(i, w, saved);
  }

  /** Writes the `}` at token i (comments before it stay inside), restoring the outer indentation. */
  private close(i: number, w: Writer, saved: number): number {
    this.expect(i, T.RBrace);
    w.flush(i, true);
    w.indent = Math.max(0, w.indent - 1);
    w.newline();
    w.tok(i, true, true);
    w.indent = saved;
    return i + 1;
  }

  private block(i: number, w: Writer): number {
    w.tok(i, true, true);
    w.tok(i + 1);
    i += 2;
    if (this.is(i, T.LParen)) i = this.callArgs(i, w); // parameters as arguments: `c`, `k=3`
    this.expect(i, T.LBrace);
    w.tok(i++);
    const saved = w.indent;
    w.indent = w.lineIndent + 1;
    w.newline();
    if (!this.is(i, T.RBrace)) i = this.chain(i, w, true, w.indent, false);
    return this.close(i, w, saved);
  }

  private inputDecl(i: number, w: Writer): number {
    w.tok(i, true, true);
    i = this.expression(i + 1, w, true, false);
    while (this.is(i, T.Identifier) && this.is(i + 1, T.Equals)) i = this.arg(i, w, true, false);
    return i;
  }

  private train(i: number, w: Writer): number {
    w.tok(i, true, true);
    this.expect(i + 1, T.LBrace);
    w.tok(i + 1);
    i += 2;
    const saved = w.indent;
    w.indent = w.lineIndent + 1;
    while (!this.is(i, T.RBrace)) {
      this.expect(i, T.Identifier);
      w.newline();
      w.tok(i, true, true);
      w.tok(i + 1, false);
      i += 2;
      while (!this.is(i, T.RBrace) && !(this.is(i, T.Identifier) && this.is(i + 1, T.Colon))) i = this.arg(i, w, true, false);
    }
    return this.close(i, w, saved);
  }

  /** A branch of a body: a chain, or nothing (an empty branch, which passes its input). */
  private branch(i: number, w: Writer, home: boolean, cont: number, inline: boolean): number {
    return this.is(i, T.Pipe, T.RBrace) ? i : this.chain(i, w, home, cont, inline);
  }

  /** A chain of steps; `cont` is the level of its continuation lines, `inline` forbids breaks. */
  private chain(i: number, w: Writer, home: boolean, cont: number, inline: boolean): number {
    i = this.step(i, w, home);
    while (this.is(i, T.Arrow)) {
      const next = this.tokens[i + 1];
      const brokeInSource = next !== undefined && hasLineBreak(this.text.slice(this.tokens[i - 1].endOffset! + 1, next.startOffset));
      const onNewLine = !inline && !w.measuring && (brokeInSource || w.col + 4 + this.measure(i + 1) > FORMAT_WIDTH);
      if (onNewLine) w.newline(cont);
      w.tok(i, true, onNewLine);
      i = this.step(i + 1, w, false);
    }
    return i;
  }

  /** Width of the step at token i written on one line (up to the `{` of a body that will open a block). */
  private measure(i: number): number {
    let width = this.widths.get(i);
    if (width === undefined) {
      const m = new Writer(this.text, this.tokens, this.commentsBefore, true);
      this.step(i, m, false);
      width = m.line.length;
      this.widths.set(i, width);
    }
    return width;
  }

  private step(i: number, w: Writer, home: boolean): number {
    if (this.is(i, T.Identifier) && this.is(i + 1, T.Colon)) {
      w.tok(i, true, home);
      w.tok(i + 1, false);
      i += 2;
      home = false;
    }
    const t = this.tokens[i];
    if (!t) throw new Error('step expected at the end of the file');
    if (t.tokenType === T.Identifier) return this.layerStep(i, w, home);
    const c = combinatorList.find((k) => k.token === t.tokenType);
    if (!c) throw new Error(`unexpected ${t.image} at the start of a step`);
    w.tok(i++, true, home);
    switch (c.head) {
      case 'expression': i = this.expression(i, w, true, true); break;
      case 'args': while (!this.is(i, T.LBrace)) i = this.arg(i, w, true, false); break;
      case 'none': break;
      default: assertNever(c.head);
    }
    return this.branches(i, w);
  }

  private layerStep(i: number, w: Writer, home: boolean): number {
    w.tok(i++, true, home);
    if (this.is(i, T.LParen)) i = this.callArgs(i, w);
    while (this.is(i, T.Identifier, T.NumberLiteral, T.Dims, T.StringLiteral, T.LParen, T.LBracket, T.Minus)) i = this.arg(i, w, true, false);
    return i;
  }

  /** `(a, k=b)` from the `(` at token i, against what comes before it. */
  private callArgs(i: number, w: Writer): number {
    w.tok(i++, false);
    if (!this.is(i, T.RParen)) {
      i = this.arg(i, w, false, true);
      while (this.is(i, T.Comma)) {
        w.tok(i, false);
        i = this.arg(i + 1, w, true, true);
      }
    }
    this.expect(i, T.RParen);
    w.tok(i, false);
    return i + 1;
  }

  /** Whether the body opening at `{` (token i) must be written as a block. */
  private opensBlock(i: number, w: Writer): boolean {
    const close = this.match.get(i);
    if (close === undefined) throw new Error('unbalanced braces');
    const open = this.tokens[i];
    if (hasLineBreak(this.text.slice(open.startOffset, this.tokens[close].startOffset))) return true;
    for (let k = i + 1; k <= close; k++) if (this.commentsBefore[k].length) return true;
    if (w.measuring) return false;
    const m = new Writer(this.text, this.tokens, this.commentsBefore, true);
    this.inlineBody(i, m);
    return w.col + 1 + m.line.length > FORMAT_WIDTH;
  }

  private inlineBody(i: number, w: Writer): number {
    w.tok(i);
    i = this.branch(i + 1, w, false, 0, true);
    while (this.is(i, T.Pipe)) {
      w.tok(i);
      i = this.branch(i + 1, w, false, 0, true);
    }
    this.expect(i, T.RBrace);
    w.tok(i);
    return i + 1;
  }

  /** `{ chain }` or `{ chain | chain ... }`. */
  private branches(i: number, w: Writer): number {
    this.expect(i, T.LBrace);
    if (!this.opensBlock(i, w)) return this.inlineBody(i, w);
    w.tok(i++);
    if (w.measuring) {
      w.stopped = true;
      return this.match.get(i - 1)! + 1;
    }
    const saved = w.indent;
    const base = w.lineIndent;
    w.indent = base + 1;
    // An empty first branch shows as the `|` after the brace (`concat { |`), the next branch below.
    if (this.is(i, T.Pipe)) w.tok(i++);
    w.newline();
    i = this.branch(i, w, true, base + 1, false);
    while (this.is(i, T.Pipe)) {
      // `|` sits at the brace's level so that every branch's first step lines up.
      w.newline(base);
      w.tok(i, true, true);
      i = this.branch(i + 1, w, false, base + 1, false);
    }
    return this.close(i, w, saved);
  }

  /** `key=value` or a value. `spaced`: `+`/`-` get spaces (inside brackets), else they are tight. */
  private arg(i: number, w: Writer, space: boolean, spaced: boolean): number {
    if (this.is(i, T.Identifier) && this.is(i + 1, T.Equals)) {
      w.tok(i, space);
      w.tok(i + 1, false);
      return this.expression(i + 2, w, false, spaced);
    }
    return this.expression(i, w, space, spaced);
  }

  private expression(i: number, w: Writer, space: boolean, spaced: boolean): number {
    i = this.product(i, w, space, spaced);
    while (this.is(i, T.Plus, T.Minus)) {
      w.tok(i, spaced);
      i = this.product(i + 1, w, spaced, spaced);
    }
    return i;
  }

  private product(i: number, w: Writer, space: boolean, spaced: boolean): number {
    i = this.unary(i, w, space, spaced);
    while (this.is(i, T.Star, T.Slash, T.FloorDiv, T.Percent)) {
      w.tok(i, false);
      i = this.unary(i + 1, w, false, spaced);
    }
    return i;
  }

  private unary(i: number, w: Writer, space: boolean, spaced: boolean): number {
    if (this.is(i, T.Minus)) {
      w.tok(i, space);
      return this.unary(i + 1, w, false, spaced);
    }
    return this.atom(i, w, space);
  }

  private atom(i: number, w: Writer, space: boolean): number {
    if (this.is(i, T.Identifier) && this.is(i + 1, T.LParen) && this.tokens[i + 1].startOffset === this.tokens[i].endOffset! + 1) {
      w.tok(i, space);
      return this.callArgs(i + 1, w); // `max(a, b)`: the `(` stays against the name, or it would be an argument of its own
    }
    if (this.is(i, T.NumberLiteral, T.Dims, T.Identifier, T.StringLiteral)) {
      w.tok(i, space);
      return i + 1;
    }
    if (this.is(i, T.LParen)) {
      w.tok(i, space);
      i = this.expression(i + 1, w, false, true);
      this.expect(i, T.RParen);
      w.tok(i, false);
      return i + 1;
    }
    if (this.is(i, T.LBracket)) {
      w.tok(i++, space);
      if (!this.is(i, T.RBracket)) {
        i = this.expression(i, w, false, true);
        while (this.is(i, T.Comma)) {
          w.tok(i, false);
          i = this.expression(i + 1, w, true, true);
        }
      }
      this.expect(i, T.RBracket);
      w.tok(i, false);
      return i + 1;
    }
    throw new Error(`unexpected ${this.tokens[i]?.image ?? 'end of file'} in an expression`);
  }
}
