/**
 * Recovery before the parse, on the token stream: bodies whose `{` was left open are closed where
 * the indentation says they end, and brackets that nest too deep are cut off, each with its
 * diagnostic. (Recovery inside the parse is chevrotain's, in grammar.ts.)
 */
import { createTokenInstance, EOF, type IToken, type TokenType } from 'chevrotain';
import * as T from './lexer.ts';
import { combinatorList } from './combinators/index.ts';
import { diagnostic, type Diagnostic } from './diagnostics.ts';
import { lineStartOf, NextLineBreak, type Span } from './source.ts';

const MAX_NESTING = 64;

/** How many `{` are still open after `tokens`, from `depth` open before them (a `}` with none open closes nothing). */
export function bracesLeftOpen(tokens: readonly IToken[], depth = 0): number {
  for (const t of tokens) {
    if (t.tokenType === T.LBrace) depth++;
    else if (t.tokenType === T.RBrace) depth = Math.max(0, depth - 1);
  }
  return depth;
}

/** A body that closeOpenBodies closed: its `{`, the virtual `}` it added, and the report. */
export interface ClosedBody {
  brace: IToken;
  /** The virtual `}`: zero-width, right after the body's last token. */
  close: IToken;
  diagnostic: Diagnostic;
}

/**
 * Recovery for a step's `{` left open (`residual {` typed without its `}`), so that it does not take
 * the rest of the model as its body: when the file's braces leave some `{` unmatched, a step's body
 * still open at the first token of a later line indented no deeper than the line of its `{` (a
 * line that does not start with `}` at that depth) is closed before that line, by a virtual `}`
 * right after the body's last token, and reported there. Only the `{` of a body (after `repeat`,
 * `residual`, `concat`, `add`, `gate` or `frozen`) is closed this way, never a model's, block's,
 * train section's or a stray one, and no more bodies than braces are missing. A file whose braces
 * match is returned as it is.
 */
export function closeOpenBodies(tokens: IToken[], text: string): { tokens: IToken[]; closed: ClosedBody[] } {
  let missing = bracesLeftOpen(tokens);
  if (missing === 0) return { tokens, closed: [] };
  const out: IToken[] = [];
  const closed: ClosedBody[] = [];
  const open: { brace: IToken; indent: number; step: boolean }[] = [];
  let header = false; // after `model`, `block` or `train`: the next `{` opens a declaration or section
  let body = false; // after `repeat`, `residual`, `concat`, `add`, `gate` or `frozen`: the next `{` opens a step's body
  let lineIndent = 0; // the column of the first token on the current line
  const breaks = new NextLineBreak(text);
  for (const t of tokens) {
    const previous = out[out.length - 1];
    if (!previous || breaks.after(previous.endOffset! + 1) < t.startOffset) {
      lineIndent = t.startOffset - lineStartOf(text, t.startOffset);
      // Close the innermost bodies this line is not inside: a `}` at their depth is their own.
      for (let top = open[open.length - 1]; previous && missing > 0 && top?.step && (lineIndent < top.indent || (lineIndent === top.indent && t.tokenType !== T.RBrace)); top = open[open.length - 1]) {
        const close = createTokenInstance(T.RBrace, '}', previous.endOffset! + 1, previous.endOffset!, NaN, NaN, NaN, NaN);
        virtualBraces.add(close);
        out.push(close);
        closed.push({ brace: top.brace, close, diagnostic: diagnostic('unclosedBody', tokenSpan(top.brace, text.length), {}, {
          hint: 'add the "}" where the body ends',
          fixes: [{ title: 'close the body here', span: { start: close.startOffset, end: close.startOffset }, text: ' }' }],
        }) });
        open.pop();
        missing--;
      }
    }
    out.push(t);
    if (t.tokenType === T.Model || t.tokenType === T.Block || t.tokenType === T.Train) [header, body] = [true, false];
    else if (BODY_KEYWORDS.has(t.tokenType)) body = true;
    else if (t.tokenType === T.LBrace) {
      // A `{` that opens no body (`relu {`) is only an error, and left to the parser.
      open.push({ brace: t, indent: lineIndent, step: body && !header });
      [header, body] = [false, false];
    } else if (t.tokenType === T.RBrace || t.tokenType === T.Arrow || t.tokenType === T.Pipe) {
      if (t.tokenType === T.RBrace) open.pop();
      body = false;
    }
  }
  return { tokens: out, closed };
}

/** The keywords that open a step with a body (`repeat`, `residual`, ...). */
export const BODY_KEYWORDS = new Set<TokenType>(combinatorList.map((c) => c.token));

/** The `}` tokens closeOpenBodies adds (zero-width, after the body's last token). */
export const virtualBraces = new WeakSet<IToken>();

/** Cuts the token stream where brackets nest too deep, so no input can exhaust the stack. */
export function limitNesting(tokens: IToken[], diagnostics: Diagnostic[], depthAtStart = 0): IToken[] {
  let depth = depthAtStart;
  let minusRun = 0;
  for (let i = 0; i < tokens.length; i++) {
    const type = tokens[i].tokenType;
    if (T.openers.has(type)) depth++;
    else if (T.closers.has(type)) depth = Math.max(0, depth - 1);
    minusRun = type === T.Minus ? minusRun + 1 : 0;
    if (depth > MAX_NESTING || minusRun > MAX_NESTING) {
      diagnostics.push(diagnostic('nestingTooDeep', tokenSpan(tokens[i], Infinity), { limit: MAX_NESTING }));
      return tokens.slice(0, i);
    }
  }
  return tokens;
}

/** A token's range in the text; the end of the text for EOF and the tokens recovery invents. */
export function tokenSpan(token: IToken, textLength: number): Span {
  if (token.tokenType === EOF || Number.isNaN(token.startOffset)) return { start: textLength, end: textLength };
  return { start: token.startOffset, end: (token.endOffset ?? token.startOffset) + 1 };
}
