/** The syntax tree: what the user wrote, with spans, before names are resolved or shapes inferred. */
import type { Span } from './source.ts';

export type Expr =
  | { kind: 'number'; value: number; span: Span }
  | { kind: 'dims'; values: number[]; span: Span }
  | { kind: 'name'; name: string; span: Span }
  | { kind: 'string'; value: string; span: Span }
  | { kind: 'list'; items: Expr[]; span: Span }
  | { kind: 'negate'; operand: Expr; span: Span }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr; opSpan: Span; span: Span }
  /** `max(c, 8)`, `leakyrelu(0.2)`: a function, or a layer or block with arguments (a value a block parameter may take). */
  | { kind: 'call'; callee: string; calleeSpan: Span; args: Arg[]; span: Span };

export type BinaryOp = '+' | '-' | '*' | '/' | '//' | '%';

/** `value` (positional) or `name=value`. */
export interface Arg {
  name?: string;
  nameSpan?: Span;
  value: Expr;
  span: Span;
}

/** `conv 32 3x3 pad=same`, `vgg(64)`: a layer kind or a block, told apart by the checker. */
export interface LayerStep extends Labelled {
  kind: 'layer';
  name: string;
  nameSpan: Span;
  args: Arg[];
}

/** Any step may carry a label (`stem: conv 64 7x7`), which names it in the model and the checkpoint. */
interface Labelled {
  label?: { name: string; span: Span };
  span: Span;
}

export interface RepeatStep extends Labelled { kind: 'repeat'; count: Expr | undefined; body: Chain; keywordSpan: Span }
export interface ResidualStep extends Labelled { kind: 'residual'; args: Arg[]; body: Chain; keywordSpan: Span }
/** `concat`, `add` and `split`: branches on the input (split: on parts of it); an empty branch passes its input. */
export interface BranchStep extends Labelled { kind: 'concat' | 'add' | 'split'; args: Arg[]; branches: Chain[]; keywordSpan: Span }
export interface GateStep extends Labelled { kind: 'gate'; body: Chain; keywordSpan: Span }
export interface FrozenStep extends Labelled { kind: 'frozen'; body: Chain; keywordSpan: Span }

export type Step = LayerStep | RepeatStep | ResidualStep | BranchStep | GateStep | FrozenStep;

export interface Chain {
  steps: Step[];
  span: Span;
}

/** `c`, or `k=3` with a default, worked out at each use that does not give it (after the parameters before it). */
export interface BlockParam { name: string; span: Span; default?: Expr }

export interface BlockDecl {
  kind: 'block';
  name: string;
  nameSpan: Span;
  params: BlockParam[];
  body: Chain;
  span: Span;
}

export interface InputDecl {
  dims: Expr | undefined;
  args: Arg[];
  span: Span;
}

/** One line of a `train { ... }` section: `optimizer: sgd lr=0.1 momentum=0.9`. */
export interface TrainEntry {
  key: string;
  keySpan: Span;
  values: Arg[];
  span: Span;
}

export interface TrainSection { entries: TrainEntry[]; span: Span }

export interface ModelDecl {
  kind: 'model';
  name: string;
  nameSpan: Span;
  input: InputDecl | undefined;
  body: Chain;
  train: TrainSection | undefined;
  span: Span;
}

/**
 * `import "blocks.cnn"` (a file, relative to the importing one), `import std` (the whole standard
 * library) or `import std.resnet` (one file of it). Undefined target: recovery left no target.
 */
export interface ImportDecl {
  kind: 'import';
  target: { kind: 'file'; path: string } | { kind: 'library'; name: string; module?: string } | undefined;
  /** The target as written (the string, or `std.resnet`); the keyword's span when it is missing. */
  targetSpan: Span;
  span: Span;
}

export interface SourceFile {
  imports: ImportDecl[];
  models: ModelDecl[];
  blocks: BlockDecl[];
  span: Span;
}

/** The names an expression uses (block parameters, words like `same`, layers and functions it calls), where they are written. */
export function* namesIn(e: Expr): Generator<{ name: string; span: Span }> {
  switch (e.kind) {
    case 'name': if (e.name) yield { name: e.name, span: e.span }; break;
    case 'call': yield { name: e.callee, span: e.calleeSpan }; for (const a of e.args) yield* namesIn(a.value); break;
    case 'list': for (const i of e.items) yield* namesIn(i); break;
    case 'negate': yield* namesIn(e.operand); break;
    case 'binary': yield* namesIn(e.left); yield* namesIn(e.right); break;
    default: break;
  }
}
