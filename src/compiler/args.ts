/** Evaluating argument expressions and binding them to a layer's (or section's) argument specs. */
import type { Arg, Expr } from './ast.ts';
import { closestName, diagnostic, type Diagnostic } from './diagnostics.ts';
import type { ArgSpec, ArgValue, Args } from './layers/types.ts';
import type { Span } from './source.ts';
import { lookupLayer } from './layers/index.ts';

export type Value =
  | { kind: 'number'; value: number }
  | { kind: 'dims'; values: number[] }
  | { kind: 'name'; name: string }
  | { kind: 'string'; value: string }
  | { kind: 'list'; items: Value[] };

export type Env = ReadonlyMap<string, Value>;

export function showValue(v: Value): string {
  switch (v.kind) {
    case 'number': return String(v.value);
    case 'dims': return v.values.join('x');
    case 'name': return v.name;
    case 'string': return JSON.stringify(v.value);
    case 'list': return `[${v.items.map(showValue).join(', ')}]`;
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
    case 'binary': {
      const l = numeric(evaluate(expr.left, env, diags), expr.left, diags);
      const r = numeric(evaluate(expr.right, env, diags), expr.right, diags);
      if (l === undefined || r === undefined) return undefined;
      if (expr.op === '/' && r === 0) {
        diags.push(diagnostic('divisionByZero', expr.span, {}));
        return undefined;
      }
      const value = expr.op === '+' ? l + r : expr.op === '-' ? l - r : expr.op === '*' ? l * r : l / r;
      return { kind: 'number', value };
    }
  }
}

function numeric(v: Value | undefined, expr: Expr, diags: Diagnostic[]): number | undefined {
  if (v === undefined) return undefined;
  if (v.kind === 'number') return v.value;
  if (v.kind === 'name') diags.push(diagnostic('unknownName', expr.span, { name: v.name }));
  else diags.push(diagnostic('wrongArgumentType', expr.span, { layer: 'expression', arg: 'operand', value: showValue(v), expected: 'a number' }));
  return undefined;
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
export function bindArgs(specs: readonly ArgSpec[], args: readonly Arg[], owner: string, ownerSpan: Span, env: Env, diags: Diagnostic[], syntax?: string): BoundArgs {
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
    const raw = evaluate(arg.value, env, diags);
    const converted = raw && convert(spec, raw, owner, arg.value.span, diags);
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
  if (v.kind === 'name' && !['enum', 'bool', 'pad'].includes(spec.type)) diags.push(diagnostic('unknownName', span, { name: v.name }));
  else diags.push(diagnostic('wrongArgumentType', span, { layer: owner, arg: spec.name, value: showValue(v), expected }));
  return undefined;
}

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
