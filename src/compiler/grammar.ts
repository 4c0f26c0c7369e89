/**
 * The grammar: a chevrotain CST parser with error recovery and no semantic actions. parser.ts
 * runs it; ast-builder.ts turns its concrete syntax tree into the AST of ast.ts.
 */
import { CstParser, tokenMatcher } from 'chevrotain';
import * as T from './lexer.ts';
import { BODY_KEYWORDS } from './recovery.ts';

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

  /** `concat { a | b }`, `add { ... }`, `split [sizes] { ... }`: branches, any of which may be empty (it passes its input). */
  branchStep = this.RULE('branchStep', () => {
    this.OR(this.once(7, () => [{ ALT: () => this.CONSUME(T.Concat) }, { ALT: () => this.CONSUME(T.Add) }, { ALT: () => this.CONSUME(T.Split) }]));
    this.MANY(() => this.SUBRULE(this.arg));
    this.CONSUME(T.LBrace);
    this.OPTION(() => this.SUBRULE(this.chain));
    this.MANY2(() => {
      this.CONSUME(T.Pipe);
      this.OPTION2(() => this.SUBRULE2(this.chain));
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
