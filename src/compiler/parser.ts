/**
 * Parsing: the lexer, token-stream recovery (recovery.ts), the grammar (grammar.ts) and the syntax
 * tree (ast-builder.ts) for a whole file, one train-section line, or the steps the language
 * server's incremental path re-parses; syntax errors as diagnostics.
 */
import { createTokenInstance, type IRecognitionException, type IToken, type TokenType, tokenMatcher, EOF } from 'chevrotain';
import * as T from './lexer.ts';
import type * as A from './ast.ts';
import { AstBuilder } from './ast-builder.ts';
import { diagnostic, type Diagnostic } from './diagnostics.ts';
import { parserInstance } from './grammar.ts';
import { closeOpenBodies, limitNesting, tokenSpan, virtualBraces } from './recovery.ts';
import { lineEndOf, lineStartOf } from './source.ts';

const MAX_SYNTAX_ERRORS = 50;

export interface ParseResult {
  ast: A.SourceFile;
  diagnostics: Diagnostic[];
}

export function parse(text: string): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const lexed = T.cnnLexer.tokenize(text);
  for (const e of lexed.errors.slice(0, MAX_SYNTAX_ERRORS)) {
    const span = { start: e.offset, end: e.offset + Math.max(1, e.length) };
    diagnostics.push(diagnostic('unexpectedCharacter', span, { text: text.slice(span.start, Math.min(span.end, span.start + 20)) }));
  }
  if (lexed.errors.length > MAX_SYNTAX_ERRORS) {
    diagnostics.push(diagnostic('tooManyErrors', { start: 0, end: 0 }, { shown: MAX_SYNTAX_ERRORS, total: lexed.errors.length }));
  }
  const bodies = closeOpenBodies(lexed.tokens, text);
  diagnostics.push(...bodies.closed.slice(0, MAX_SYNTAX_ERRORS).map((c) => c.diagnostic));
  if (bodies.closed.length > MAX_SYNTAX_ERRORS) {
    diagnostics.push(diagnostic('tooManyErrors', { start: 0, end: 0 }, { shown: MAX_SYNTAX_ERRORS, total: bodies.closed.length }));
  }
  let tokens = limitNesting(bodies.tokens, diagnostics);
  parserInstance.input = tokens;
  let cst = parserInstance.file();
  let errors = parserInstance.errors;
  const comments = commentsMeant(tokens, errors, text);
  if (comments.length) {
    // Read as the comments they were meant to be, so that nothing else on their lines is reported.
    for (const c of comments) diagnostics.push(diagnostic('divisionNotComment', tokenSpan(c.slash, text.length), {}, {
      hint: 'to start a comment here, write "#"',
      fixes: [{ title: 'make it a comment', span: tokenSpan(c.slash, text.length), text: '#' }],
    }));
    const dropped = new Set(comments.flatMap((c) => c.tokens));
    tokens = tokens.filter((t) => !dropped.has(t));
    parserInstance.input = tokens;
    cst = parserInstance.file();
    errors = parserInstance.errors;
  }
  for (const e of errors.slice(0, MAX_SYNTAX_ERRORS)) diagnostics.push(syntaxError(e, text));
  if (errors.length > MAX_SYNTAX_ERRORS) {
    diagnostics.push(diagnostic('tooManyErrors', { start: 0, end: 0 }, { shown: MAX_SYNTAX_ERRORS, total: errors.length }));
  }
  const builder = new AstBuilder(text);
  const ast = builder.file(cst);
  diagnostics.push(...builder.diagnostics);
  return { ast, diagnostics };
}

/**
 * The `//` that divide (they follow a value) but are followed on their line by a syntax error
 * (`dense 10 // the logits`): comments meant, with the tokens from each to the end of its line.
 * Not where a block comment opens after one on its line, since a `//` comment would swallow its `/*`.
 */
function commentsMeant(tokens: IToken[], errors: readonly { token: IToken }[], text: string): { slash: IToken; tokens: IToken[] }[] {
  const found = new Map<IToken, IToken[]>();
  for (const { token } of errors) {
    if (token.isInsertedInRecovery || Number.isNaN(token.startOffset)) continue;
    const start = lineStartOf(text, token.startOffset);
    const slash = tokens.find((t) => t.tokenType === T.FloorDiv && t.startOffset >= start && t.startOffset < token.startOffset);
    if (!slash || found.has(slash)) continue;
    const end = lineEndOf(text, slash.startOffset);
    if (text.slice(slash.startOffset, end).includes('/*')) continue;
    found.set(slash, tokens.filter((t) => t.startOffset >= slash.startOffset && t.startOffset < end));
  }
  return [...found].map(([slash, line]) => ({ slash, tokens: line }));
}


/** One train-section line on its own (`optimizer: sgd lr=0.1`, a command-line override); undefined unless it is exactly one. */
export function parseTrainEntry(text: string): A.TrainEntry | undefined {
  const lexed = T.cnnLexer.tokenize(text);
  if (lexed.errors.length > 0 || lexed.tokens.length === 0) return undefined;
  parserInstance.input = lexed.tokens;
  const cst = parserInstance.trainEntry();
  if (parserInstance.errors.length > 0) return undefined;
  const entry = new AstBuilder(text).trainEntry(cst);
  // The rule stops where the entry does; anything after it is not part of one line.
  return entry && entry.span.end === lexed.tokens[lexed.tokens.length - 1].endOffset! + 1 ? entry : undefined;
}

/**
 * Parses, with recovery, tokens that replace steps directly inside a model's or block's chain
 * (the language server's incremental path; incremental.ts checks the result). The tokens are
 * parsed where they stand: inside `model {` or `block {`, after a placeholder step and `->` unless
 * they are the chain's first step, so the rules, the follow sets recovery resynchronises on and
 * every lookahead decision are those of the whole file's parse; the placeholders have no place in
 * the text and leave nothing in the tree. Undefined when an error falls outside the tokens (the
 * parse looked past them) or there are too many: the caller then parses the whole file.
 */
export function parseStepsRecovering(tokens: IToken[], text: string, owner: 'model' | 'block', first: boolean): { steps: A.Step[]; diagnostics: Diagnostic[] } | undefined {
  const parsed = parseInPlace(tokens, text, owner, first, true);
  const decl = parsed && (owner === 'model' ? parsed.ast.models[0] : parsed.ast.blocks[0]);
  return decl && { steps: decl.body.steps, diagnostics: parsed.diagnostics };
}

/**
 * Parses, with recovery, the rest of the file from a step of a model's or block's chain on: the
 * incremental path for an edit whose syntax error recovery carries past the steps it touched.
 * Placed as in parseStepsRecovering, but the tokens run to the end of the file (the owner's own
 * `}` among them). The owner comes back as the result's first model or block, holding only the
 * steps from the tokens on, with spans that start at them; undefined as for parseStepsRecovering.
 */
export function parseRestRecovering(tokens: IToken[], text: string, owner: 'model' | 'block', first: boolean): ParseResult | undefined {
  return parseInPlace(tokens, text, owner, first, false);
}

function parseInPlace(tokens: IToken[], text: string, owner: 'model' | 'block', first: boolean, closed: boolean): ParseResult | undefined {
  if (tokens.length === 0 || limitNesting(tokens, [], 1).length !== tokens.length) return undefined;
  // A model's first step follows its input line, which would take a leading `name = value` (or a
  // second `input`, or the optional `->`) that the placeholder context has no input line to take.
  if (first && owner === 'model' && (tokenMatcher(tokens[0], T.Input) || tokenMatcher(tokens[0], T.Arrow) || (tokens.length > 1 && tokenMatcher(tokens[1], T.Equals)))) return undefined;
  const placeholder = (type: TokenType, image: string) => createTokenInstance(type, image, NaN, NaN, NaN, NaN, NaN, NaN);
  const head = [placeholder(owner === 'model' ? T.Model : T.Block, owner), placeholder(T.Identifier, 'x'), placeholder(T.LBrace, '{')];
  if (!first) head.push(placeholder(T.Identifier, 'x'), placeholder(T.Arrow, '->'));
  parserInstance.input = closed ? [...head, ...tokens, placeholder(T.RBrace, '}')] : [...head, ...tokens];
  const cst = parserInstance.file();
  const errors = parserInstance.errors;
  // Closed, the parse must not have looked past the tokens, nor stumbled on a virtual `}` (which
  // may sit at their edge too), but for one that closes an empty body (`residual {`): its error,
  // a missing step, ends there. Open, the parse may reach the end of the file.
  const own = new Set(tokens);
  const emptyBody = (t: IToken) => tokens[tokens.indexOf(t) - 1]?.tokenType === T.LBrace;
  const placed = (t: IToken) => (own.has(t) && !(closed && virtualBraces.has(t) && !emptyBody(t))) || (!closed && t.tokenType === EOF);
  // A `//` before a syntax error may be a comment meant, which only the whole file's parse reads as one.
  if (errors.length > MAX_SYNTAX_ERRORS || !errors.every((e) => placed(e.token)) || (errors.length && tokens.some((t) => t.tokenType === T.FloorDiv))) return undefined;
  const builder = new AstBuilder(text);
  const ast = builder.file(cst);
  if ((owner === 'model' ? ast.models : ast.blocks).length === 0) return undefined;
  const diagnostics = errors.map((e) => syntaxError(e, text));
  return { ast, diagnostics: [...diagnostics, ...builder.diagnostics] };
}

/** A parse error as a diagnostic at its token. */
function syntaxError(e: IRecognitionException, text: string): Diagnostic {
  return diagnostic('syntaxError', tokenSpan(e.token, text.length), { detail: describeParseError(e.message, e.token) });
}

function describeParseError(message: string, token: IToken): string {
  const found = token.tokenType === EOF ? 'the end of the file' : JSON.stringify(token.image);
  const expecting = message.match(/Expecting (?:token of type --> (\w+) <--|: one of these possible Token sequences)/);
  if (expecting?.[1]) return `expected ${tokenDescription(expecting[1])} but found ${found}`;
  return token.tokenType === EOF ? 'the file ends in the middle of a declaration' : `unexpected ${found} here`;
}

const tokenWords: Record<string, string> = {
  RBrace: '"}"', LBrace: '"{"', RParen: '")"', LParen: '"("', RBracket: '"]"', Identifier: 'a name',
  Arrow: '"->"', Colon: '":"', Equals: '"="', Comma: '","', Dims: 'a shape like 3x224x224',
  StringLiteral: 'a quoted file name',
};
const tokenDescription = (name: string) => tokenWords[name] ?? name;
