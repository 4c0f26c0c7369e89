/** Tokens of the .cnn language, in one ordered array (keywords before Identifier, Dims before Number). */
import { createToken, Lexer, type IToken, type TokenType } from 'chevrotain';

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/ });

function keyword(word: string): TokenType {
  return createToken({ name: word[0].toUpperCase() + word.slice(1), pattern: new RegExp(word), longer_alt: Identifier });
}

export const Model = keyword('model');
export const Block = keyword('block');
export const Input = keyword('input');
export const Repeat = keyword('repeat');
export const Residual = keyword('residual');
export const Concat = keyword('concat');
export const Add = keyword('add');
export const Gate = keyword('gate');
export const Frozen = keyword('frozen');
export const Split = keyword('split');
export const Train = keyword('train');
export const Import = keyword('import');
export const keywords = [Model, Block, Input, Repeat, Residual, Concat, Add, Gate, Frozen, Split, Train, Import];

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v]+/, group: Lexer.SKIPPED, line_breaks: true });
/**
 * Whether a `//` at `offset` divides: it does when it follows the end of a value in an expression
 * (a number, a name used as a value, or a `)` that closes an expression or a function call);
 * anywhere else it starts a comment. Outside brackets the value must be on the `//`'s own line, and
 * a name is a layer's or block's name, not a value, when it starts its line or follows `->`, `{`,
 * `|`, `:`, `model`, `block`, `import` or `.`; a `)` closes such a name's call form when its `(`
 * follows the name on the same line. Inside an unclosed `(` or `[` (where no step starts) line
 * breaks do not count: `max(\n e // 4, 8)` divides. So a line lexes alone as in its file unless it
 * holds a `//` comment (incremental.ts relexes lines, and leaves those to a whole lex).
 */
function dividesAt(text: string, offset: number, tokens: readonly IToken[]): boolean {
  let i = tokens.length - 1;
  if (i < 0) return false;
  const inBrackets = insideBrackets(tokens);
  if (!inBrackets && lineBreakBetween(text, tokens[i].endOffset! + 1, offset)) return false;
  if (tokens[i].tokenType === RParen) {
    let depth = 0;
    for (; i >= 0 && (inBrackets || i === tokens.length - 1 || !lineBreakBetween(text, tokens[i].endOffset! + 1, tokens[i + 1].startOffset)); i--) {
      const type = tokens[i].tokenType;
      if (type === RParen) depth++;
      else if (type === LParen && --depth === 0) return !(i > 0 && tokens[i - 1].tokenType === Identifier && startsStep(text, tokens, i - 1, inBrackets));
    }
    return true; // opened on an earlier line: an expression's
  }
  return tokens[i].tokenType === NumberLiteral || (tokens[i].tokenType === Identifier && !startsStep(text, tokens, i, inBrackets));
}

const STEP_OPENERS = new Set(['Arrow', 'LBrace', 'Pipe', 'Colon', 'Model', 'Block', 'Import', 'Dot']);

/**
 * Whether the name at tokens[i] stands where a step (or a declaration) is named, not where a value
 * is; at the start of a line only outside brackets (`inBrackets`: inside an unclosed `(` or `[`).
 */
function startsStep(text: string, tokens: readonly IToken[], i: number, inBrackets: boolean): boolean {
  if (i === 0) return true;
  return STEP_OPENERS.has(tokens[i - 1].tokenType.name) || (!inBrackets && lineBreakBetween(text, tokens[i - 1].endOffset! + 1, tokens[i].startOffset));
}

/** The brackets still open after the tokens lexed so far, kept per lex (its token array only grows) so that each `//` costs only the tokens since the last. */
const openSoFar = new WeakMap<readonly IToken[], { upTo: number; open: TokenType[] }>();

/** Whether the innermost bracket still open after `tokens` is a `(` or `[` (not a `{`, nor none). */
function insideBrackets(tokens: readonly IToken[]): boolean {
  let state = openSoFar.get(tokens);
  if (!state || state.upTo > tokens.length) openSoFar.set(tokens, (state = { upTo: 0, open: [] }));
  for (; state.upTo < tokens.length; state.upTo++) {
    const type = tokens[state.upTo].tokenType;
    if (type === LParen || type === LBracket || type === LBrace) state.open.push(type);
    else if (type === RParen || type === RBracket || type === RBrace) state.open.pop();
  }
  const innermost = state.open[state.open.length - 1];
  return innermost === LParen || innermost === LBracket;
}

function lineBreakBetween(text: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) if (text[k] === '\n' || text[k] === '\r') return true;
  return false;
}

const commentText = /(?:#|\/\/)[^\r\n]*/y;
/** Comments go to the `comments` group: the parser never sees them; the formatter and the editor read them. */
export const Comment = createToken({
  name: 'Comment',
  pattern: {
    exec: (text, offset, tokens) => {
      if (text.startsWith('//', offset) && dividesAt(text, offset, tokens)) return null;
      commentText.lastIndex = offset;
      return commentText.exec(text);
    },
  },
  start_chars_hint: ['#', '/'],
  line_breaks: false,
  group: 'comments',
});
/** `k//2`: floor division, where a `//` follows a value (see dividesAt); elsewhere `//` is a comment. */
export const FloorDiv = createToken({
  name: 'FloorDiv',
  pattern: { exec: (text, offset, tokens) => (text.startsWith('//', offset) && dividesAt(text, offset, tokens) ? ['//'] : null) },
  start_chars_hint: ['/'],
  line_breaks: false,
});
export const BlockComment = createToken({ name: 'BlockComment', pattern: /\/\*[\s\S]*?\*\//, group: 'comments', line_breaks: true });
/** `3x224x224`, `3x3`: sizes written as one token so that `x` never reads as a name. */
export const Dims = createToken({ name: 'Dims', pattern: /\d[\d_]*(?:x\d[\d_]*)+(?![A-Za-z0-9_])/ });
export const NumberLiteral = createToken({ name: 'NumberLiteral', pattern: /(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?/ });
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"[^"\r\n]*"/ });
export const Arrow = createToken({ name: 'Arrow', pattern: /->/ });
export const LBrace = createToken({ name: 'LBrace', pattern: /\{/ });
export const RBrace = createToken({ name: 'RBrace', pattern: /\}/ });
export const LParen = createToken({ name: 'LParen', pattern: /\(/ });
export const RParen = createToken({ name: 'RParen', pattern: /\)/ });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/ });
export const RBracket = createToken({ name: 'RBracket', pattern: /\]/ });
export const Comma = createToken({ name: 'Comma', pattern: /,/ });
export const Colon = createToken({ name: 'Colon', pattern: /:/ });
export const Equals = createToken({ name: 'Equals', pattern: /=/ });
export const Pipe = createToken({ name: 'Pipe', pattern: /\|/ });
export const Plus = createToken({ name: 'Plus', pattern: /\+/ });
export const Minus = createToken({ name: 'Minus', pattern: /-/ });
export const Star = createToken({ name: 'Star', pattern: /\*/ });
export const Slash = createToken({ name: 'Slash', pattern: /\// });
export const Percent = createToken({ name: 'Percent', pattern: /%/ });

/** How the grammar documents show the tokens matched by a function rather than a pattern. */
export const customPatterns = new Map<TokenType, string>([
  [Comment, '/(?:#|\\/\\/)[^\\r\\n]*/   /* but not a "//" that is a FloorDiv */'],
  [FloorDiv, '"//"   /* only right after a value: see "Comments" in REFERENCE.md */'],
]);

/** `std.resnet` in an import; after NumberLiteral, so that `.5` stays a number. */
export const Dot = createToken({ name: 'Dot', pattern: /\./ });

export const allTokens: TokenType[] = [
  WhiteSpace, BlockComment, Comment, FloorDiv,
  ...keywords, Identifier,
  Dims, NumberLiteral, StringLiteral,
  Arrow, LBrace, RBrace, LParen, RParen, LBracket, RBracket, Comma, Colon, Equals, Pipe, Plus, Minus, Star, Slash, Percent, Dot,
];

export const cnnLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });

export const openers = new Set<TokenType>([LBrace, LParen, LBracket]);
export const closers = new Set<TokenType>([RBrace, RParen, RBracket]);
