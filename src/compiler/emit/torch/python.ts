/**
 * Python text for model.py: literals and calls (what the layer kinds' `torch` forms write with),
 * the helper definitions they ask for (each written once), and module expressions with named
 * children (the combinators' containers), rendered as indented, commented lines.
 */
import type { TorchContext } from '../../layers/types.ts';
import type { Node } from '../../model.ts';

/** A module expression: one line, or a call whose arguments may span lines. */
export type PyExpr = string | PyCall;

export interface PyCall {
  fn: string;
  args: (PyExpr | PyDict)[];
  kwargs?: [string, PyExpr][];
}

/** `{'conv1': ..., 'bn1': ...}`: a container's named children, in order. */
export interface PyDict {
  children: PyChild[];
}

/** One named child module: its name under the container, how it is built, and where it comes from. */
export interface PyChild {
  name: string;
  expr: PyExpr;
  /** The checked node it was written for (a layer, a block's expansion, a combinator). */
  node: Node;
  /** `resnet18.cnn:11  conv c 3x3 stride=s pad=1 bias=off`. */
  comment?: string;
}

export const INDENT = '    ';

/** Python's reserved words: names that cannot be attributes or classes as they are. */
export const PYTHON_KEYWORDS = new Set([
  'False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif',
  'else', 'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or',
  'pass', 'raise', 'return', 'try', 'while', 'with', 'yield',
]);

export function pyLiteral(value: number | boolean | string | readonly number[]): string {
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  // JSON's escapes are Python's; the quotes become single ones.
  if (typeof value === 'string') return `'${JSON.stringify(value).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return String(value); // the shortest text that reads back as the same double
    if (Number.isNaN(value)) throw new Error('model.py: NaN has no literal');
    return value > 0 ? 'math.inf' : '-math.inf';
  }
  return value.length === 1 ? `(${pyLiteral(value[0])},)` : `(${value.map((v) => pyLiteral(v)).join(', ')})`;
}

/** The TorchContext layer forms get: literals, calls, and model.py's helper definitions. */
export class PyWriter implements TorchContext {
  private readonly defs = new Map<string, string>();

  define(name: string, code: string): string {
    const had = this.defs.get(name);
    if (had !== undefined && had !== code) throw new Error(`model.py: two different definitions of ${name}`);
    this.defs.set(name, code);
    return name;
  }

  /** The definitions asked for, in the order first asked. */
  get definitions(): ReadonlyMap<string, string> {
    return this.defs;
  }

  call(fn: string, args: readonly (string | number)[], kwargs: Record<string, string | number | undefined> = {}): string {
    const parts = args.map((a) => (typeof a === 'number' ? pyLiteral(a) : a));
    for (const [k, v] of Object.entries(kwargs)) if (v !== undefined) parts.push(`${k}=${typeof v === 'number' ? pyLiteral(v) : v}`);
    return `${fn}(${parts.join(', ')})`;
  }

  lit(value: number | boolean | string | readonly number[]): string {
    return pyLiteral(value);
  }

  pair(value: readonly [number, number]): string {
    return value[0] === value[1] ? pyLiteral(value[0]) : pyLiteral(value);
  }
}

/** Appends `b` to `a`: b's first line continues a's last. */
function join(a: string[], b: readonly string[]): string[] {
  a[a.length - 1] += b[0];
  a.push(...b.slice(1));
  return a;
}

/**
 * An expression as lines, at `depth` levels of indentation: the first line continues the caller's
 * (after `self.conv1 = ` or `'conv1': `), the others carry their own indentation.
 */
export function renderExpr(e: PyExpr | PyDict, depth: number): string[] {
  if (typeof e === 'string') return [e];
  if ('children' in e) {
    const lines = ['{'];
    for (const c of e.children) lines.push(...renderChild(`${INDENT.repeat(depth + 1)}${pyLiteral(c.name)}: `, c, depth + 1, ','));
    lines.push(`${INDENT.repeat(depth)}}`);
    return lines;
  }
  const parts = [...e.args.map((a) => renderExpr(a, depth)), ...(e.kwargs ?? []).map(([k, v]) => join([`${k}=`], renderExpr(v, depth)))];
  const lines = [`${e.fn}(`];
  parts.forEach((p, i) => join(lines, i === 0 ? p : join([', '], p)));
  return join(lines, [')']);
}

/** `prefix` + the child's expression + `end`, its comment on the first line. */
export function renderChild(prefix: string, c: PyChild, depth: number, end = ''): string[] {
  const lines = join([prefix], renderExpr(c.expr, depth));
  lines[lines.length - 1] += end;
  if (c.comment) lines[0] += `  # ${c.comment}`;
  return lines;
}
