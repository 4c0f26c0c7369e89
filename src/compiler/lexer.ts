/** Tokens of the .cnn language, in one ordered array (keywords before Identifier, Dims before Number). */
import { createToken, Lexer, type TokenType } from 'chevrotain';

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
/** Comments go to the `comments` group: the parser never sees them; the formatter and the editor read them. */
export const Comment = createToken({ name: 'Comment', pattern: /(?:#|\/\/)[^\r\n]*/, group: 'comments' });
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
/** `std.resnet` in an import; after NumberLiteral, so that `.5` stays a number. */
export const Dot = createToken({ name: 'Dot', pattern: /\./ });

export const allTokens: TokenType[] = [
  WhiteSpace, BlockComment, Comment,
  ...keywords, Identifier,
  Dims, NumberLiteral, StringLiteral,
  Arrow, LBrace, RBrace, LParen, RParen, LBracket, RBracket, Comma, Colon, Equals, Pipe, Plus, Minus, Star, Slash, Dot,
];

export const cnnLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });

export const openers = new Set<TokenType>([LBrace, LParen, LBracket]);
export const closers = new Set<TokenType>([RBrace, RParen, RBracket]);
