/** The syntax tree: grammar.ts's concrete syntax tree to the AST of ast.ts. */
import type { CstElement, CstNode, IToken } from 'chevrotain';
import type * as A from './ast.ts';
import { missingArrow, type Diagnostic } from './diagnostics.ts';
import type { Span } from './source.ts';

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
export class AstBuilder {
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
          kind: this.token(inner, 'Concat') ? 'concat' : this.token(inner, 'Add') ? 'add' : 'split',
          args: this.nodes(inner, 'arg').map((a) => this.arg(a)),
          branches: this.branches(inner),
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

  /** The branches between `{`, each `|` and `}`; an empty one is an empty chain just after its `{` or `|`. */
  private branches(node: CstNode): A.Chain[] {
    const chains = this.nodes(node, 'chain');
    const starts = [...this.tokens(node, 'LBrace'), ...this.tokens(node, 'Pipe')].map((t) => t.endOffset! + 1).sort((a, b) => a - b);
    // Recovery may have left separators out: the chains as they are.
    if (starts.length !== 1 + ((node.children.Pipe as IToken[] | undefined)?.length ?? 0)) return chains.map((c) => this.chain(c));
    return starts.map((start, i) => {
      const end = starts[i + 1] ?? Infinity;
      const c = chains.find((ch) => (ch.location?.startOffset ?? NaN) >= start && (ch.location?.startOffset ?? NaN) < end);
      return c ? this.chain(c) : { steps: [], span: { start, end: start } };
    });
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
