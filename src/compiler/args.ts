/** Evaluating argument expressions and binding them to a layer's (or section's) argument specs. */
import type { Arg, BinaryOp, BlockDecl, Expr, LayerStep } from './ast.ts';
import { closestName, diagnostic, type Diagnostic } from './diagnostics.ts';
import type { ArgSpec, ArgValue, Args } from './layers/types.ts';
import type { Span } from './source.ts';
import { lookupLayer } from './layers/index.ts';

export type Value =
  | { kind: 'number'; value: number }
  | { kind: 'dims'; values: number[] }
  | { kind: 'name'; name: string }
  | { kind: 'string'; value: string }
  | { kind: 'list'; items: Value[] }
  /** A layer or block with arguments (`leakyrelu(0.2)`), passed to a block parameter; its arguments are evaluated where it is written. */
  | { kind: 'layer'; name: string; nameSpan: Span; args: EvaluatedArg[] };

/** An argument worked out where it was written: a layer value's own (`leakyrelu(c/8)`, in its caller's scope). */
export interface EvaluatedArg {
  name?: string;
  nameSpan?: Span;
  value: Value;
  valueSpan: Span;
  span: Span;
}

export type Env = ReadonlyMap<string, Value>;

export function showValue(v: Value): string {
  switch (v.kind) {
    case 'number': return String(v.value);
    case 'dims': return v.values.join('x');
    case 'name': return v.name;
    case 'string': return JSON.stringify(v.value);
    case 'list': return `[${v.items.map(showValue).join(', ')}]`;
    case 'layer': return `${v.name}(${v.args.map((a) => (a.name ? `${a.name}=` : '') + showValue(a.value)).join(', ')})`;
  }
}

/** Evaluates an expression; block parameters come from `env`, other names stay names (e.g. `same`). */
export function evaluate(expr: Expr, env: Env, diags: Diagnostic[]): Value | undefined {
  switch (expr.kind) {
    case 'number':
      if (!Number.isFinite(expr.value)) {
        diags.push(diagnostic('invalidNumber', expr.span, { text: String(expr.value) }));
        return undefined;
      }
      return { kind: 'number', value: expr.value };
    case 'dims': return { kind: 'dims', values: expr.values };
    case 'string': return { kind: 'string', value: expr.value };
    case 'name': return expr.name === '' ? undefined : env.get(expr.name) ?? { kind: 'name', name: expr.name };
    case 'list': {
      const items = expr.items.map((e) => evaluate(e, env, diags));
      return items.every((i) => i !== undefined) ? { kind: 'list', items: items as Value[] } : undefined;
    }
    case 'negate': {
      const v = numeric(evaluate(expr.operand, env, diags), expr.operand, diags);
      return v === undefined ? undefined : { kind: 'number', value: -v };
    }
    case 'binary': return binary(expr, env, diags);
    case 'call': return call(expr, env, diags);
  }
}

function binary(expr: Extract<Expr, { kind: 'binary' }>, env: Env, diags: Diagnostic[]): Value | undefined {
  const left = evaluate(expr.left, env, diags);
  const right = evaluate(expr.right, env, diags);
  // `dense 10 // logits`: a comment meant, read as floor division (it follows a value).
  const word = expr.op === '//' && [left, right].find((v) => v?.kind === 'name');
  if (word && word.kind === 'name') {
    const d = diagnostic('unknownName', expr.span, { name: word.name }, {
      hint: '"//" right after a value divides (rounding down); to start a comment here, write "#"',
      fixes: [{ title: 'make it a comment', span: expr.opSpan, text: '#' }],
    });
    commentsMeant.add(d);
    diags.push(d);
    return undefined;
  }
  const l = numeric(left, expr.left, diags);
  const r = numeric(right, expr.right, diags);
  if (l === undefined || r === undefined) return undefined;
  if (r === 0 && (expr.op === '/' || expr.op === '//' || expr.op === '%')) {
    diags.push(diagnostic('divisionByZero', expr.span, {}));
    return undefined;
  }
  return { kind: 'number', value: arithmetic[expr.op](l, r) };
}

/** Reports of a `//` that was probably meant to start a comment: the arguments after it are its words. */
const commentsMeant = new WeakSet<Diagnostic>();

/** Python's floor division and remainder of floats (CPython's float_divmod), so that sizes ported from PyTorch code come out the same. */
function divmod(a: number, b: number): [number, number] {
  let mod = a % b;
  let div = (a - mod) / b;
  if (mod && b < 0 !== mod < 0) {
    mod += b;
    div -= 1;
  }
  let floor = Math.floor(div);
  if (div - floor > 0.5) floor += 1;
  return [floor + 0, mod + 0]; // + 0: no signed zeros (Python's -0.0), which sizes have no use for
}

const arithmetic: Record<BinaryOp, (l: number, r: number) => number> = {
  '+': (l, r) => l + r,
  '-': (l, r) => l - r,
  '*': (l, r) => l * r,
  '/': (l, r) => l / r,
  '//': (l, r) => divmod(l, r)[0],
  '%': (l, r) => divmod(l, r)[1],
};

/** Python's round(): to the nearest integer, halves to the even one. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor; // exact in binary floating point
  return rest > 0.5 || (rest === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
}

/** torchvision's `_make_divisible(v, divisor, min_value=None)`: v rounded to a multiple of the divisor, never more than 10% down. */
function makeDivisible(v: number, divisor: number, min = divisor): number {
  let result = Math.max(min, divmod(Math.trunc(v + divisor / 2), divisor)[0] * divisor);
  if (result < 0.9 * v) result += divisor;
  return result;
}

/** The functions of expressions: name, how many arguments, what they compute. */
export const functions: Record<string, { min: number; max: number; signature: string; apply: (x: number[]) => number; doc: string }> = {
  floor: { min: 1, max: 1, signature: 'floor(x)', apply: ([x]) => Math.floor(x), doc: 'the largest integer ≤ x' },
  ceil: { min: 1, max: 1, signature: 'ceil(x)', apply: ([x]) => Math.ceil(x), doc: 'the smallest integer ≥ x' },
  round: { min: 1, max: 1, signature: 'round(x)', apply: ([x]) => roundHalfEven(x), doc: 'the nearest integer, halves to the even one (as Python\'s round)' },
  min: { min: 1, max: Infinity, signature: 'min(a, b, ...)', apply: (x) => Math.min(...x), doc: 'the smallest argument' },
  max: { min: 1, max: Infinity, signature: 'max(a, b, ...)', apply: (x) => Math.max(...x), doc: 'the largest argument' },
  make_divisible: {
    min: 2, max: 3, signature: 'make_divisible(v, d[, min])', apply: ([v, d, min]) => makeDivisible(v, d, min),
    doc: 'v rounded to the nearest multiple of d, at least min (default d), and raised by d if that lost more than 10% (torchvision\'s _make_divisible)',
  },
};

/** A function's value, or a layer value (`leakyrelu(0.2)`) with its arguments evaluated here. */
function call(expr: Extract<Expr, { kind: 'call' }>, env: Env, diags: Diagnostic[]): Value | undefined {
  const args: EvaluatedArg[] = [];
  for (const a of expr.args) {
    const value = evaluate(a.value, env, diags);
    if (value === undefined) return undefined;
    args.push({ name: a.name, nameSpan: a.nameSpan, value, valueSpan: a.value.span, span: a.span });
  }
  const fn = functions[expr.callee];
  if (!fn) return { kind: 'layer', name: expr.callee, nameSpan: expr.calleeSpan, args };
  if (args.length < fn.min || args.length > fn.max || args.some((a) => a.name !== undefined)) {
    diags.push(diagnostic('functionArguments', expr.span, { signature: fn.signature, got: args.length }));
    return undefined;
  }
  const numbers = args.map((a) => numeric(a.value, a.valueSpan, diags));
  if (!numbers.every((n) => n !== undefined)) return undefined;
  const value = fn.apply(numbers as number[]);
  if (!Number.isFinite(value)) {
    diags.push(diagnostic('invalidNumber', expr.span, { text: String(value) }));
    return undefined;
  }
  return { kind: 'number', value };
}

function numeric(v: Value | undefined, at: Expr | Span, diags: Diagnostic[]): number | undefined {
  if (v === undefined) return undefined;
  if (v.kind === 'number') return v.value;
  const span = 'kind' in at ? at.span : at;
  if (v.kind === 'name') diags.push(diagnostic('unknownName', span, { name: v.name }));
  else if (v.kind === 'layer' && !lookupLayer(v.name)) diags.push(unknownFunction(v));
  else diags.push(diagnostic('wrongArgumentType', span, { layer: 'expression', arg: 'operand', value: showValue(v), expected: 'a number' }, layerHint(v)));
  return undefined;
}

/** `flor(x)` where a number is needed: a misspelt function (a layer value would be a layer's name). */
export function unknownFunction(v: Extract<Value, { kind: 'layer' }>): Diagnostic {
  const guess = closestName(v.name, Object.keys(functions));
  return diagnostic('unknownFunction', v.nameSpan, { name: v.name }, {
    hint: guess ? `did you mean "${guess}"?` : `the functions are ${Object.keys(functions).join(', ')}`,
    fixes: guess ? [{ title: `change to "${guess}"`, span: v.nameSpan, text: guess }] : undefined,
  });
}

/** The hint for a layer given where a number is needed. */
function layerHint(v: Value): { hint?: string } {
  return v.kind === 'layer' || (v.kind === 'name' && lookupLayer(v.name)) ? { hint: `${showValue(v)} is a layer; a layer can be a block's argument and used there as a step` } : {};
}

export interface BoundArgs {
  values: Args;
  /** Where each argument was written, so later diagnostics can point at it. */
  spans: Record<string, Span>;
  ok: boolean;
}

/**
 * Binds positional and named arguments to specs: fills defaults, converts types, checks ranges.
 * `owner` names the layer in messages; `ownerSpan` is where missing arguments are reported;
 * `syntax` says how an owner without arguments is written instead (a combinator's braces).
 */
export function bindArgs(specs: readonly ArgSpec[], args: readonly AnyArg[], owner: string, ownerSpan: Span, env: Env, diags: Diagnostic[], syntax?: string): BoundArgs {
  const values: Args = {};
  const spans: Record<string, Span> = {};
  let ok = true;
  const positional = specs.filter((s) => s.positional);
  let next = 0;
  const given = new Set<string>();
  for (const arg of args) {
    let spec: ArgSpec | undefined;
    if (arg.name === undefined) {
      spec = positional[next++];
      if (!spec) {
        const next = arg.value.kind === 'name' ? arg.value.name : undefined;
        const hint = next && lookupLayer(next) ? `is "->" missing before ${next}?` : usage(specs, owner, syntax);
        const fixes = next && lookupLayer(next) ? [{ title: `insert "->" before ${next}`, span: { start: arg.span.start, end: arg.span.start }, text: '-> ' }] : undefined;
        diags.push(diagnostic('tooManyArguments', arg.span, { layer: owner, max: positional.length }, { hint, fixes }));
        ok = false;
        continue;
      }
    } else {
      spec = specs.find((s) => s.name === arg.name);
      if (!spec) {
        const guess = closestName(arg.name, specs.map((s) => s.name));
        const nameSpan = arg.nameSpan ?? arg.span;
        diags.push(diagnostic('unknownOption', nameSpan, { layer: owner, option: arg.name }, {
          hint: guess ? `did you mean "${guess}"?` : options(specs, owner),
          fixes: guess ? [{ title: `change to "${guess}"`, span: nameSpan, text: guess }] : undefined,
        }));
        ok = false;
        continue;
      }
    }
    if (given.has(spec.name)) {
      diags.push(diagnostic('duplicateOption', arg.span, { layer: owner, option: spec.name }));
      ok = false;
      continue;
    }
    given.add(spec.name);
    const raw = valueOf(arg, env, diags);
    if (!raw && commentsMeant.has(diags[diags.length - 1])) return { values, spans, ok: false }; // the rest is its comment's words
    const converted = raw && convert(spec, raw, owner, valueSpanOf(arg), diags);
    if (converted === undefined) {
      ok = false;
      continue;
    }
    values[spec.name] = converted;
    spans[spec.name] = arg.span;
  }
  for (const spec of specs) {
    if (given.has(spec.name)) continue;
    if (spec.required) {
      diags.push(diagnostic('missingArgument', ownerSpan, { layer: owner, arg: `${spec.name} (${spec.doc})` }, { hint: usage(specs, owner) }));
      ok = false;
    } else if (spec.default !== undefined) {
      values[spec.name] = spec.default;
    }
  }
  return { values, spans, ok };
}

/** How to write the owner's arguments; for an owner without any, to leave them out. */
function usage(specs: readonly ArgSpec[], owner: string, syntax?: string): string {
  if (specs.length === 0) return syntax ? `remove it; ${syntax}` : 'remove it';
  const pos = specs.filter((s) => s.positional).map((s) => (s.required ? s.name.toUpperCase() : `[${s.name.toUpperCase()}]`));
  return `usage: ${[owner, ...pos].join(' ')}${specs.some((s) => !s.positional) ? ' [options]' : ''}; ${options(specs, owner)}`;
}

function options(specs: readonly ArgSpec[], owner: string): string {
  return specs.length ? `${owner} takes ${specs.map((s) => s.name).join(', ')}` : `${owner} takes no arguments`;
}

const boolNames: Record<string, boolean> = { on: true, off: false, true: true, false: false, yes: true, no: false };

function reportBadType(spec: ArgSpec, v: Value, owner: string, span: Span, diags: Diagnostic[], expected: string): undefined {
  const words = ['enum', 'bool', 'pad'].includes(spec.type);
  if (v.kind === 'name' && !words && !lookupLayer(v.name)) diags.push(diagnostic('unknownName', span, { name: v.name }));
  else if (v.kind === 'layer' && !lookupLayer(v.name)) diags.push(unknownFunction(v));
  else diags.push(diagnostic('wrongArgumentType', span, { layer: owner, arg: spec.name, value: showValue(v), expected }, v.kind === 'number' && !words && !Number.isInteger(v.value) ? fractionHint : layerHint(v)));
  return undefined;
}

/** For a number that is not a whole one where one is needed (`c/3`). */
const fractionHint = { hint: '"/" divides exactly; "//" divides rounding down, and round(x), floor(x) and ceil(x) give whole numbers' };

function inRange(spec: ArgSpec, n: number, owner: string, span: Span, diags: Diagnostic[]): boolean {
  const low = spec.min === undefined || (spec.minExclusive ? n > spec.min : n >= spec.min);
  const high = spec.max === undefined || (spec.maxExclusive ? n < spec.max : n <= spec.max);
  if (low && high) return true;
  diags.push(diagnostic('argumentOutOfRange', span, { layer: owner, arg: spec.name, value: String(n), range: describeRange(spec) }));
  return false;
}

function allInRange(spec: ArgSpec, values: readonly number[], owner: string, span: Span, diags: Diagnostic[]): boolean {
  for (const n of values) if (!inRange(spec, n, owner, span, diags)) return false;
  return true;
}

function numbersOf(v: Value): number[] | undefined {
  if (v.kind === 'number') return [v.value];
  if (v.kind === 'dims') return v.values;
  if (v.kind === 'list' && v.items.every((i) => i.kind === 'number')) return v.items.map((i) => (i as { value: number }).value);
  return undefined;
}

function convert(spec: ArgSpec, v: Value, owner: string, span: Span, diags: Diagnostic[]): ArgValue | undefined {
  switch (spec.type) {
    case 'number':
      if (v.kind !== 'number') return reportBadType(spec, v, owner, span, diags, 'a number');
      return inRange(spec, v.value, owner, span, diags) ? v.value : undefined;
    case 'int':
      if (v.kind !== 'number' || !Number.isInteger(v.value)) return reportBadType(spec, v, owner, span, diags, 'an integer');
      return inRange(spec, v.value, owner, span, diags) ? v.value : undefined;
    case 'kernel': {
      const pair = v.kind === 'number' ? [v.value, v.value] : v.kind === 'dims' && v.values.length === 2 ? v.values : undefined;
      if (!pair || !pair.every(Number.isInteger)) return reportBadType(spec, v, owner, span, diags, 'a size K or KHxKW');
      return allInRange(spec, pair, owner, span, diags) ? [pair[0], pair[1]] : undefined;
    }
    case 'pad': {
      if (v.kind === 'name') return v.name === 'same' || v.name === 'valid' ? v.name : reportBadType(spec, v, owner, span, diags, 'same, valid or a number of pixels');
      const nums = numbersOf(v);
      if (!nums || !nums.every(Number.isInteger) || ![1, 2, 4].includes(nums.length)) {
        return reportBadType(spec, v, owner, span, diags, 'same, valid, P, PHxPW or [top, left, bottom, right]');
      }
      if (!allInRange(spec, nums, owner, span, diags)) return undefined;
      const [t, l, b, r] = nums.length === 1 ? [nums[0], nums[0], nums[0], nums[0]] : nums.length === 2 ? [nums[0], nums[1], nums[0], nums[1]] : nums;
      return [t, l, b, r];
    }
    case 'bool':
      if (v.kind === 'name' && v.name in boolNames) return boolNames[v.name];
      if (v.kind === 'number' && (v.value === 0 || v.value === 1)) return v.value === 1;
      return reportBadType(spec, v, owner, span, diags, 'on or off');
    case 'enum':
      if ((v.kind === 'name' || v.kind === 'string') && spec.values?.includes(v.kind === 'name' ? v.name : v.value)) return v.kind === 'name' ? v.name : v.value;
      return reportBadType(spec, v, owner, span, diags, `one of ${spec.values?.join(', ')}`);
  }
}

function describeRange(spec: ArgSpec): string {
  const parts: string[] = [];
  if (spec.min !== undefined) parts.push(`${spec.minExclusive ? '>' : '≥'} ${spec.min}`);
  if (spec.max !== undefined) parts.push(`${spec.maxExclusive ? '<' : '≤'} ${spec.max}`);
  if (spec.min !== undefined && spec.max !== undefined) return `in ${spec.minExclusive ? '(' : '['}${spec.min}, ${spec.max}${spec.maxExclusive ? ')' : ']'}`;
  return parts.join(' and ');
}

/** An argument as written (evaluated in the scope's env) or as a layer value carries it (evaluated already). */
export type AnyArg = Arg | EvaluatedArg;

const isEvaluated = (a: AnyArg): a is EvaluatedArg => 'valueSpan' in a;
export const valueSpanOf = (a: AnyArg): Span => (isEvaluated(a) ? a.valueSpan : a.value.span);
export const valueOf = (a: AnyArg, env: Env, diags: Diagnostic[]): Value | undefined => (isEvaluated(a) ? a.value : evaluate(a.value, env, diags));

/**
 * The parameters of a block use, from its arguments (positional, then by name) and the defaults
 * of those not given, each worked out in the block's scope as it stands after the arguments and
 * the parameters before it; undefined, with the problem reported, when the arguments do not fit.
 */
export function bindBlockArgs(block: BlockDecl, args: readonly AnyArg[], span: Span, env: Env, diags: Diagnostic[]): Map<string, Value> | undefined {
  const inner = new Map<string, Value>();
  const arity = (extra: { hint: string }) => diagnostic('blockArity', span, { block: block.name, least: block.params.filter((p) => !p.default).length, most: block.params.length, got: args.length }, {
    ...extra, related: [{ span: block.nameSpan, message: `block ${block.name} is declared here` }],
  });
  const positional = args.filter((a) => a.name === undefined);
  if (positional.length > block.params.length) {
    diags.push(arity({ hint: `declared as ${blockSignature(block)}` }));
    return undefined;
  }
  let ok = true;
  for (const a of args) {
    const param = a.name === undefined ? block.params[positional.indexOf(a)] : block.params.find((p) => p.name === a.name);
    if (!param) {
      diags.push(diagnostic('unknownOption', a.nameSpan ?? a.span, { layer: block.name, option: a.name! }, { hint: `declared as ${blockSignature(block)}` }));
      ok = false;
    } else if (inner.has(param.name)) {
      diags.push(diagnostic('duplicateOption', a.span, { layer: block.name, option: param.name }));
      ok = false;
    } else {
      const v = valueOf(a, env, diags);
      if (v) inner.set(param.name, v);
      else ok = false;
    }
  }
  if (!ok) return undefined;
  const missing = block.params.filter((p) => !inner.has(p.name) && !p.default);
  if (missing.length) {
    diags.push(arity({ hint: `missing ${missing.map((p) => p.name).join(', ')}: declared as ${blockSignature(block)}` }));
    return undefined;
  }
  for (const p of block.params) {
    if (inner.has(p.name)) continue;
    const v = evaluate(p.default!, inner, diags);
    if (!v) return undefined;
    inner.set(p.name, v);
  }
  // In the order of the declaration, as the block's expansion is described (`vgg(64, 3)`).
  return new Map(block.params.map((p) => [p.name, inner.get(p.name)!]));
}

/** `mbconv(c, k=3, act=relu)`: a block's parameters with their defaults. */
export function blockSignature(block: BlockDecl): string {
  return `${block.name}(${block.params.map((p) => (p.default ? `${p.name}=${showExpr(p.default)}` : p.name)).join(', ')})`;
}

const precedence: Record<BinaryOp, number> = { '+': 1, '-': 1, '*': 2, '/': 2, '//': 2, '%': 2 };

/** An expression as text, in the formatter's spacing, with the parentheses its precedence needs. */
export function showExpr(e: Expr): string {
  switch (e.kind) {
    case 'number': return String(e.value);
    case 'dims': return e.values.join('x');
    case 'name': return e.name;
    case 'string': return JSON.stringify(e.value);
    case 'list': return `[${e.items.map(showExpr).join(', ')}]`;
    case 'negate': return `-${e.operand.kind === 'binary' ? `(${showExpr(e.operand)})` : showExpr(e.operand)}`;
    case 'call': return `${e.callee}(${e.args.map((a) => (a.name ? `${a.name}=` : '') + showExpr(a.value)).join(', ')})`;
    case 'binary': {
      const side = (x: Expr, right: boolean) => {
        const wrap = x.kind === 'binary' && (precedence[x.op] < precedence[e.op] || (right && precedence[x.op] === precedence[e.op]));
        return wrap ? `(${showExpr(x)})` : showExpr(x);
      };
      return `${side(e.left, false)}${e.op}${side(e.right, true)}`;
    }
  }
}

/** What a layer step uses: a layer kind or block, by its own name or by the block parameter it names. */
export type Use = { name: string; args: readonly AnyArg[] } | { notALayer: Value };

/**
 * The use a step stands for. A step named by a block parameter (`act`, `act 0.2`) uses what the
 * parameter holds: a layer's or block's name (`act=relu`), or one with arguments
 * (`act=leakyrelu(0.2)`), which come before the step's own; anything else is not a layer.
 */
export function useOf(step: LayerStep, env: Env): Use {
  const v = env.get(step.name);
  if (!v) return { name: step.name, args: step.args };
  if (v.kind === 'name') return { name: v.name, args: step.args };
  if (v.kind === 'layer') return { name: v.name, args: [...v.args, ...step.args] };
  return { notALayer: v };
}
