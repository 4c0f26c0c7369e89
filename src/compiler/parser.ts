/**
 * The grammar (a chevrotain CST parser with error recovery, no semantic actions) and the
 * visitor that turns its concrete syntax tree into the AST of ast.ts.
 */
import { CstParser, createTokenInstance, type CstNode, type IToken, type CstElement, type TokenType, tokenMatcher, EOF } from 'chevrotain';
import * as T from './lexer.ts';
import type * as A from './ast.ts';
import { diagnostic, missingArrow, type Diagnostic } from './diagnostics.ts';
import { lineEndOf, lineStartOf, NextLineBreak, type Span } from './source.ts';

const MAX_NESTING = 64;
const MAX_SYNTAX_ERRORS = 50;

class CnnParser extends CstParser {
  /**
   * Alternatives and options are built once and reused: rules run once per token, and building
   * fresh closures each time costs more than the parsing itself.
   */
  private readonly cache = new Map<number, unknown>();
  private once<T>(key: number, make: () => T): T {
    let v = this.cache.get(key) as T | undefined;
    if (v === undefined) this.cache.set(key, (v = make()));
    return v;
  }

  constructor() {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 3, nodeLocationTracking: 'onlyOffset' });
    this.performSelfAnalysis();
  }

  file = this.RULE('file', () => {
    this.MANY(() => this.OR(this.once(1, () => [
      { ALT: () => this.SUBRULE(this.model) },
      { ALT: () => this.SUBRULE(this.block) },
      { ALT: () => this.SUBRULE(this.importDecl) },
    ])));
  });

  /** `import "file.cnn"`, `import std`, `import std.resnet`. */
  importDecl = this.RULE('importDecl', () => {
    this.CONSUME(T.Import);
    this.OR(this.once(14, () => [
      { ALT: () => this.CONSUME(T.StringLiteral) },
      {
        ALT: () => {
          this.CONSUME(T.Identifier, { LABEL: 'library' });
          this.OPTION(() => {
            this.CONSUME(T.Dot);
            this.CONSUME2(T.Identifier, { LABEL: 'module' });
          });
        },
      },
    ]));
  });

  model = this.RULE('model', () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.LBrace);
    this.OPTION(() => this.SUBRULE(this.inputDecl));
    this.OPTION2(() => this.CONSUME(T.Arrow));
    this.OPTION3(() => this.SUBRULE(this.chain));
    this.OPTION4(() => this.SUBRULE(this.trainSection));
    this.CONSUME(T.RBrace);
  });

  inputDecl = this.RULE('inputDecl', () => {
    this.CONSUME(T.Input);
    this.SUBRULE(this.expression);
    this.MANY(this.once(2, () => ({ GATE: () => tokenMatcher(this.LA(2), T.Equals), DEF: () => this.SUBRULE(this.arg) })));
  });

  block = this.RULE('block', () => {
    this.CONSUME(T.Block);
    this.CONSUME(T.Identifier);
    this.OPTION(() => {
      this.CONSUME(T.LParen);
      this.MANY_SEP(this.once(3, () => ({ SEP: T.Comma, DEF: () => this.SUBRULE(this.blockParam) })));
      this.CONSUME(T.RParen);
    });
    this.CONSUME(T.LBrace);
    this.SUBRULE(this.chain);
    this.CONSUME(T.RBrace);
  });

  /** `c`, or `k=3` with a default. */
  blockParam = this.RULE('blockParam', () => {
    this.CONSUME(T.Identifier);
    this.OPTION(() => {
      this.CONSUME(T.Equals);
      this.SUBRULE(this.expression);
    });
  });

  chain = this.RULE('chain', () => {
    this.SUBRULE(this.step);
    // A step that cannot be an argument of the one before (a keyword's, a labelled one, one after a
    // `}`) follows it even without its "->": reported once by the AST builder, parsed as if it were there.
    this.MANY(this.once(16, () => ({
      GATE: () => tokenMatcher(this.LA(1), T.Arrow) || this.arrowMissing(),
      DEF: () => {
        this.OPTION(() => this.CONSUME(T.Arrow));
        this.SUBRULE2(this.step);
      },
    })));
  });

  private arrowMissing(): boolean {
    const next = this.LA(1);
    if (BODY_KEYWORDS.has(next.tokenType)) return true;
    return tokenMatcher(next, T.Identifier) && (tokenMatcher(this.LA(2), T.Colon) || tokenMatcher(this.LA(0), T.RBrace));
  }

  step = this.RULE('step', () => {
    this.OPTION(this.once(4, () => ({
      GATE: () => tokenMatcher(this.LA(2), T.Colon),
      DEF: () => {
        this.CONSUME(T.Identifier, { LABEL: 'label' });
        this.CONSUME(T.Colon);
      },
    })));
    this.OR(this.once(5, () => [
      { ALT: () => this.SUBRULE(this.layerStep) },
      { ALT: () => this.SUBRULE(this.repeatStep) },
      { ALT: () => this.SUBRULE(this.residualStep) },
      { ALT: () => this.SUBRULE(this.branchStep) },
      { ALT: () => this.SUBRULE(this.wrapStep) },
    ]));
  });

  layerStep = this.RULE('layerStep', () => {
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.OPTION2(() => {
      this.CONSUME(T.LParen);
      this.MANY_SEP(this.once(6, () => ({ SEP: T.Comma, DEF: () => this.SUBRULE(this.arg) })));
      this.CONSUME(T.RParen);
    });
    // A `name:` is the label of a next step whose "->" is missing, not an argument.
    this.MANY(this.once(17, () => ({ GATE: () => !tokenMatcher(this.LA(2), T.Colon), DEF: () => this.SUBRULE2(this.arg) })));
  });

  repeatStep = this.RULE('repeatStep', () => {
    this.CONSUME(T.Repeat);
    this.SUBRULE(this.expression);
    this.SUBRULE(this.body);
  });

  residualStep = this.RULE('residualStep', () => {
    this.CONSUME(T.Residual);
    this.MANY(() => this.SUBRULE(this.arg));
    this.SUBRULE(this.body);
  });

  branchStep = this.RULE('branchStep', () => {
    this.OR(this.once(7, () => [{ ALT: () => this.CONSUME(T.Concat) }, { ALT: () => this.CONSUME(T.Add) }]));
    this.CONSUME(T.LBrace);
    this.SUBRULE(this.chain);
    this.MANY(() => {
      this.CONSUME(T.Pipe);
      this.SUBRULE2(this.chain);
    });
    this.CONSUME(T.RBrace);
  });

  /** `gate { ... }` and `frozen { ... }`: one keyword over one body. */
  wrapStep = this.RULE('wrapStep', () => {
    this.OR(this.once(8, () => [{ ALT: () => this.CONSUME(T.Gate) }, { ALT: () => this.CONSUME(T.Frozen) }]));
    this.SUBRULE(this.body);
  });

  body = this.RULE('body', () => {
    this.CONSUME(T.LBrace);
    this.SUBRULE(this.chain);
    this.CONSUME(T.RBrace);
  });

  trainSection = this.RULE('trainSection', () => {
    this.CONSUME(T.Train);
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.trainEntry));
    this.CONSUME(T.RBrace);
  });

  trainEntry = this.RULE('trainEntry', () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    this.MANY(this.once(9, () => ({
      GATE: () => !(tokenMatcher(this.LA(1), T.Identifier) && tokenMatcher(this.LA(2), T.Colon)),
      DEF: () => this.SUBRULE(this.arg),
    })));
  });

  arg = this.RULE('arg', () => {
    this.OPTION(this.once(10, () => ({
      GATE: () => tokenMatcher(this.LA(2), T.Equals),
      DEF: () => {
        this.CONSUME(T.Identifier, { LABEL: 'key' });
        this.CONSUME(T.Equals);
      },
    })));
    this.SUBRULE(this.expression);
  });

  /** Operands and operators of both precedence levels in one rule (the AST builder applies precedence): fewer rule calls per argument. */
  expression = this.RULE('expression', () => {
    this.SUBRULE(this.unary);
    this.MANY(() => {
      this.OR(this.once(11, () => [
        { ALT: () => this.CONSUME(T.Plus) },
        { ALT: () => this.CONSUME(T.Minus) },
        { ALT: () => this.CONSUME(T.Star) },
        { ALT: () => this.CONSUME(T.Slash) },
        { ALT: () => this.CONSUME(T.FloorDiv) },
        { ALT: () => this.CONSUME(T.Percent) },
      ]));
      this.SUBRULE2(this.unary);
    });
  });

  unary = this.RULE('unary', () => {
    this.OR(this.once(13, () => [
      {
        ALT: () => {
          this.CONSUME(T.Minus);
          this.SUBRULE(this.unary);
        },
      },
      { ALT: () => this.CONSUME(T.NumberLiteral) },
      { ALT: () => this.CONSUME(T.Dims) },
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          // `max(c, 8)`: a call only with the `(` right after the name; `conv c (c+1)` is two arguments.
          this.OPTION(this.once(15, () => ({
            GATE: () => tokenMatcher(this.LA(1), T.LParen) && this.LA(1).startOffset === this.LA(0).endOffset! + 1,
            DEF: () => {
              this.CONSUME2(T.LParen);
              this.MANY_SEP2({ SEP: T.Comma, DEF: () => this.SUBRULE(this.arg) });
              this.CONSUME2(T.RParen);
            },
          })));
        },
      },
      { ALT: () => this.CONSUME(T.StringLiteral) },
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.SUBRULE(this.expression);
          this.CONSUME(T.RParen);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.LBracket);
          this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE2(this.expression) });
          this.CONSUME(T.RBracket);
        },
      },
    ]));
  });
}

/** One shared instance: chevrotain parsers are built once and reset per input. */
export const parserInstance = new CnnParser();

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
  for (const e of errors.slice(0, MAX_SYNTAX_ERRORS)) {
    diagnostics.push(diagnostic('syntaxError', tokenSpan(e.token, text.length), { detail: describeParseError(e.message, e.token) }));
  }
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
    if (!isRealToken(token)) continue;
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
  const diagnostics = errors.map((e) => diagnostic('syntaxError', tokenSpan(e.token, text.length), { detail: describeParseError(e.message, e.token) }));
  return { ast, diagnostics: [...diagnostics, ...builder.diagnostics] };
}

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

const BODY_KEYWORDS = new Set<TokenType>([T.Repeat, T.Residual, T.Concat, T.Add, T.Gate, T.Frozen]);

/** The `}` tokens closeOpenBodies adds (zero-width, after the body's last token). */
export const virtualBraces = new WeakSet<IToken>();



/** Cuts the token stream where brackets nest too deep, so no input can exhaust the stack. */
function limitNesting(tokens: IToken[], diagnostics: Diagnostic[], depthAtStart = 0): IToken[] {
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

function tokenSpan(token: IToken, textLength: number): Span {
  if (token.tokenType === EOF || Number.isNaN(token.startOffset)) return { start: textLength, end: textLength };
  return { start: token.startOffset, end: (token.endOffset ?? token.startOffset) + 1 };
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

const NONE: readonly CstElement[] = [];
const OPERATORS = ['Plus', 'Minus', 'Star', 'Slash', 'FloorDiv', 'Percent'];
const MULTIPLICATIVE = new Set(['*', '/', '//', '%']);

/** The first child of `node`, by its children's order of names, that passes `test` (without `flat()`, slow in V8). */
function firstChild<E extends CstElement>(node: CstNode, test: (e: CstElement) => e is E): E | undefined {
  for (const key in node.children) for (const e of node.children[key]) if (test(e)) return e;
  return undefined;
}
const isRealToken = (t: IToken) => !t.isInsertedInRecovery && !Number.isNaN(t.startOffset);

/** The first token under a CST node, by offset. */
function firstToken(node: CstNode): IToken | undefined {
  let first: IToken | undefined;
  for (const key in node.children) {
    for (const e of node.children[key]) {
      const t = 'children' in e ? firstToken(e) : e;
      if (t && !Number.isNaN(t.startOffset) && (!first || t.startOffset < first.startOffset)) first = t;
    }
  }
  return first;
}



/** CST to AST. Recovered nodes may miss children, so every access is defensive. */
class AstBuilder {
  /** Steps written without the "->" before them (the parser takes them as if it were there). */
  readonly diagnostics: Diagnostic[] = [];

  constructor(private readonly text: string) {}

  file(node: CstNode | undefined): A.SourceFile {
    const models = this.nodes(node, 'model').map((m) => this.model(m));
    const blocks = this.nodes(node, 'block').map((b) => this.block(b));
    const imports = this.nodes(node, 'importDecl').map((i) => this.importDecl(i));
    return { imports, models, blocks, span: { start: 0, end: this.text.length } };
  }

  private importDecl(node: CstNode): A.ImportDecl {
    const span = this.span(node);
    const file = this.token(node, 'StringLiteral');
    if (file) return { kind: 'import', target: { kind: 'file', path: file.image.slice(1, -1) }, targetSpan: this.spanOfToken(file, node), span };
    const library = this.token(node, 'library');
    const module = this.token(node, 'module');
    if (!library) return { kind: 'import', target: undefined, targetSpan: this.spanOfToken(this.token(node, 'Import'), node), span };
    const last = module ?? library;
    return {
      kind: 'import',
      target: { kind: 'library', name: library.image, module: module?.image },
      targetSpan: { start: library.startOffset, end: (last.endOffset ?? last.startOffset) + 1 },
      span,
    };
  }

  private model(node: CstNode): A.ModelDecl {
    const name = this.token(node, 'Identifier');
    const inputNode = this.nodes(node, 'inputDecl')[0];
    const trainNode = this.nodes(node, 'trainSection')[0];
    return {
      kind: 'model',
      name: name?.image ?? '',
      nameSpan: this.spanOfToken(name, node),
      input: inputNode && this.inputDecl(inputNode),
      body: this.chainOrEmpty(node),
      train: trainNode && this.trainSection(trainNode),
      span: this.span(node),
    };
  }

  private inputDecl(node: CstNode): A.InputDecl {
    const expr = this.nodes(node, 'expression')[0];
    return { dims: expr && this.expression(expr), args: this.nodes(node, 'arg').map((a) => this.arg(a)), span: this.span(node) };
  }

  private block(node: CstNode): A.BlockDecl {
    const ids = this.tokens(node, 'Identifier');
    return {
      kind: 'block',
      name: ids[0]?.image ?? '',
      nameSpan: this.spanOfToken(ids[0], node),
      params: this.nodes(node, 'blockParam').flatMap((p) => this.blockParam(p) ?? []),
      body: this.chainOrEmpty(node),
      span: this.span(node),
    };
  }

  private blockParam(node: CstNode): A.BlockParam | undefined {
    const name = this.token(node, 'Identifier');
    const value = this.nodes(node, 'expression')[0];
    if (!name) return undefined;
    const param: A.BlockParam = { name: name.image, span: this.spanOfToken(name, node) };
    if (value) param.default = this.expression(value);
    return param;
  }

  private chainOrEmpty(node: CstNode): A.Chain {
    const chain = this.nodes(node, 'chain')[0];
    if (chain) return this.chain(chain);
    const at = this.span(node).end;
    return { steps: [], span: { start: at, end: at } };
  }

  private chain(node: CstNode): A.Chain {
    const nodes = this.nodes(node, 'step');
    const arrows = (node.children.Arrow ?? NONE) as IToken[];
    if (arrows.length < nodes.length - 1) this.missingArrows(nodes, arrows);
    const steps = nodes.map((s) => this.step(s)).filter((s): s is A.Step => s !== undefined);
    return { steps, span: this.span(node) };
  }

  /** Reports each step of a chain that has no "->" between it and the one before. */
  private missingArrows(steps: CstNode[], arrows: IToken[]): void {
    for (let i = 1; i < steps.length; i++) {
      const before = steps[i - 1].location;
      const at = firstToken(steps[i]);
      // Placeholder steps and arrows (the incremental parse's context) have no place in the text.
      if (!before || Number.isNaN(before.startOffset) || !at || !isRealToken(at)) continue;
      if (arrows.some((a) => a.startOffset > before.endOffset! && a.startOffset < at.startOffset)) continue;
      const span = this.spanOfToken(at, steps[i]);
      this.diagnostics.push(missingArrow(at.image, span));
    }
  }

  step(node: CstNode): A.Step | undefined {
    const inner = firstChild(node, (e): e is CstNode => 'children' in e);
    if (!inner) return undefined;
    const step = this.stepBody(inner);
    const label = this.token(node, 'label');
    if (step && label) {
      step.label = { name: label.image, span: this.spanOfToken(label, node) };
      step.span = this.span(node);
    }
    return step;
  }

  private stepBody(inner: CstNode): A.Step | undefined {
    const span = this.span(inner);
    switch (inner.name) {
      case 'layerStep': {
        const name = this.token(inner, 'name');
        if (!name) return undefined;
        return {
          kind: 'layer',
          name: name.image,
          nameSpan: this.spanOfToken(name, inner),
          args: this.nodes(inner, 'arg').map((a) => this.arg(a)),
          span,
        };
      }
      case 'repeatStep': {
        const count = this.nodes(inner, 'expression')[0];
        return { kind: 'repeat', count: count && this.expression(count), body: this.body(inner), span, keywordSpan: this.keywordSpan(inner) };
      }
      case 'residualStep':
        return { kind: 'residual', args: this.nodes(inner, 'arg').map((a) => this.arg(a)), body: this.body(inner), span, keywordSpan: this.keywordSpan(inner) };
      case 'branchStep':
        return {
          kind: this.token(inner, 'Concat') ? 'concat' : 'add',
          branches: this.nodes(inner, 'chain').map((c) => this.chain(c)),
          span,
          keywordSpan: this.keywordSpan(inner),
        };
      case 'wrapStep':
        return { kind: this.token(inner, 'Gate') ? 'gate' : 'frozen', body: this.body(inner), span, keywordSpan: this.keywordSpan(inner) };
      default:
        return undefined;
    }
  }

  private body(node: CstNode): A.Chain {
    const body = this.nodes(node, 'body')[0];
    return body ? this.chainOrEmpty(body) : { steps: [], span: { start: this.span(node).end, end: this.span(node).end } };
  }

  private keywordSpan(node: CstNode): Span {
    const first = firstChild(node, (e): e is IToken => 'image' in e);
    return this.spanOfToken(first, node);
  }

  private trainSection(node: CstNode): A.TrainSection {
    return { entries: this.nodes(node, 'trainEntry').flatMap((e) => this.trainEntry(e) ?? []), span: this.span(node) };
  }

  trainEntry(node: CstNode): A.TrainEntry | undefined {
    const key = this.token(node, 'Identifier');
    if (!key) return undefined;
    return { key: key.image, keySpan: this.spanOfToken(key, node), values: this.nodes(node, 'arg').map((a) => this.arg(a)), span: this.span(node) };
  }

  private arg(node: CstNode): A.Arg {
    const key = this.token(node, 'key');
    const expr = this.nodes(node, 'expression')[0];
    const span = this.span(node);
    const value: A.Expr = expr ? this.expression(expr) : { kind: 'name', name: '', span: { ...span } }; // spans are never shared (incremental.ts moves them in place)
    return key ? { name: key.image, nameSpan: this.spanOfToken(key, node), value, span } : { value, span };
  }

  /** `a op b op c` with * / // % binding tighter than + and -, all left-associative. */
  private expression(node: CstNode): A.Expr {
    const operands = this.nodes(node, 'unary');
    if (operands.length === 1) return this.unary(operands[0]); // the common case: no operator at all
    if (operands.length === 0) return { kind: 'name', name: '', span: this.span(node) };
    const operators = OPERATORS.flatMap((o) => this.tokens(node, o)).sort((a, b) => a.startOffset - b.startOffset);
    type Op = { op: A.BinaryOp; span: Span };
    const binary = ({ op, span }: Op, left: A.Expr, right: A.Expr): A.Expr =>
      ({ kind: 'binary', op, left, right, opSpan: span, span: { start: left.span.start, end: right.span.end } });
    // Recovery may leave fewer operators than gaps: a missing one reads as +, at the gap.
    const terms: A.Expr[] = [this.unary(operands[0])];
    const plusMinus: Op[] = [];
    for (let i = 1; i < operands.length; i++) {
      const right = this.unary(operands[i]);
      const token = operators[i - 1];
      const op: Op = token ? { op: token.image as A.BinaryOp, span: this.spanOfToken(token, node) } : { op: '+', span: { start: right.span.start, end: right.span.start } };
      if (MULTIPLICATIVE.has(op.op)) terms[terms.length - 1] = binary(op, terms[terms.length - 1], right);
      else {
        plusMinus.push(op);
        terms.push(right);
      }
    }
    return terms.reduce((left, right, i) => binary(plusMinus[i - 1], left, right));
  }

  private unary(node: CstNode): A.Expr {
    const span = this.span(node);
    const inner = this.nodes(node, 'unary')[0];
    if (inner) return { kind: 'negate', operand: this.unary(inner), span };
    const num = this.token(node, 'NumberLiteral');
    if (num) return { kind: 'number', value: Number(num.image.replaceAll('_', '')), span };
    const dims = this.token(node, 'Dims');
    if (dims) return { kind: 'dims', values: dims.image.replaceAll('_', '').split('x').map(Number), span };
    const id = this.token(node, 'Identifier');
    if (id && this.token(node, 'LParen')) {
      return { kind: 'call', callee: id.image, calleeSpan: this.spanOfToken(id, node), args: this.nodes(node, 'arg').map((a) => this.arg(a)), span };
    }
    if (id) return { kind: 'name', name: id.image, span };
    const str = this.token(node, 'StringLiteral');
    if (str) return { kind: 'string', value: str.image.slice(1, -1), span };
    const exprs = this.nodes(node, 'expression').map((e) => this.expression(e));
    if (this.token(node, 'LBracket')) return { kind: 'list', items: exprs, span };
    return exprs[0] ?? { kind: 'name', name: '', span };
  }

  /** Children under a rule name are always CST nodes (chevrotain keys them by rule). */
  private nodes(node: CstNode | undefined, name: string): CstNode[] {
    return (node?.children[name] ?? NONE) as CstNode[];
  }

  /** Tokens the user wrote: recovery may insert virtual ones, which have no place in the text. */
  private tokens(node: CstNode, name: string): IToken[] {
    const all = (node.children[name] ?? NONE) as IToken[];
    return all.every(isRealToken) ? all : all.filter(isRealToken);
  }

  private token(node: CstNode, name: string): IToken | undefined {
    const all = node.children[name] as IToken[] | undefined;
    if (!all) return undefined;
    for (const t of all) if (isRealToken(t)) return t;
    return undefined;
  }

  private spanOfToken(token: IToken | undefined, fallback: CstNode): Span {
    return token ? { start: token.startOffset, end: (token.endOffset ?? token.startOffset) + 1 } : this.span(fallback);
  }

  /** The span of the tokens under a node, tracked by chevrotain (NaN when recovery left it empty). */
  private span(node: CstNode): Span {
    const loc = node.location;
    if (!loc || Number.isNaN(loc.startOffset)) return { start: this.text.length, end: this.text.length };
    return { start: loc.startOffset, end: (Number.isNaN(loc.endOffset) ? loc.startOffset : loc.endOffset!) + 1 };
  }
}
