/**
 * The catalog of diagnostics. Codes by phase: CNN1xxx syntax, CNN2xxx names and arguments,
 * CNN3xxx shapes and sizes, CNN4xxx emit and runtime. Each entry is a message template;
 * `diagnostic()` turns one into data with a range, a hint and, where one exists, a fix.
 */
import type { SourceSet, Span } from './source.ts';

export type Severity = 'error' | 'warning' | 'info';

/** A machine-applicable edit that implements a hint (used by quick fixes in the editor). */
export interface Fix {
  title: string;
  span: Span;
  text: string;
}

export interface Related {
  span: Span;
  message: string;
}

export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  span: Span;
  hint?: string;
  related?: Related[];
  fixes?: Fix[];
}

interface Entry<P> {
  code: string;
  severity: Severity;
  message: (p: P) => string;
}

function entry<P = undefined>(code: string, severity: Severity, message: (p: P) => string): Entry<P> {
  return { code, severity, message };
}

type Shape = readonly number[];
const sizeText = (n: number) => (Number.isFinite(n) && n >= 1e15 ? n.toExponential(2) : n.toLocaleString('en-US'));
const fmt = (s: Shape) => s.join('×');

export const catalog = {
  // 1xxx: syntax
  unexpectedCharacter: entry<{ text: string }>('CNN1001', 'error', (p) => `unexpected character ${JSON.stringify(p.text)}`),
  syntaxError: entry<{ detail: string }>('CNN1002', 'error', (p) => p.detail),
  nestingTooDeep: entry<{ limit: number }>('CNN1003', 'error', (p) => `brackets nest deeper than ${p.limit} levels; the rest of the file is not read`),
  tooManyErrors: entry<{ shown: number; total: number }>('CNN1004', 'error', (p) => `${p.total} syntax errors; only the first ${p.shown} are shown`),
  invalidNumber: entry<{ text: string }>('CNN1005', 'error', (p) => `${JSON.stringify(p.text)} is not a finite number`),
  unclosedBody: entry('CNN1006', 'error', () => 'this "{" is never closed: its body is taken to end before the next line indented no deeper than this one'),
  missingArrow: entry<{ names: string }>('CNN1008', 'error', (p) => `"->" is missing before ${p.names}`),
  divisionNotComment: entry('CNN1007', 'error', () => 'this "//" follows a value, so it divides, but what follows it on the line does not parse: it is read as a comment'),

  // 2xxx: names and arguments
  unknownLayer: entry<{ name: string }>('CNN2001', 'error', (p) => `unknown layer or block "${p.name}"`),
  unknownOption: entry<{ layer: string; option: string }>('CNN2002', 'error', (p) => `${p.layer} has no option "${p.option}"`),
  missingArgument: entry<{ layer: string; arg: string }>('CNN2003', 'error', (p) => `${p.layer} needs an argument: ${p.arg}`),
  argumentOutOfRange: entry<{ layer: string; arg: string; value: string; range: string }>(
    'CNN2004', 'error', (p) => `${p.layer} ${p.arg} = ${p.value} is out of range: it must be ${p.range}`),
  wrongArgumentType: entry<{ layer: string; arg: string; value: string; expected: string }>(
    'CNN2005', 'error', (p) => `${p.layer} ${p.arg} = ${p.value} is not ${p.expected}`),
  tooManyArguments: entry<{ layer: string; max: number }>('CNN2006', 'error', (p) => (p.max === 0 ? `${p.layer} takes no arguments` : `${p.layer} takes at most ${p.max} positional argument${p.max === 1 ? '' : 's'}`)),
  blockArity: entry<{ block: string; least: number; most: number; got: number }>(
    'CNN2007', 'error', (p) => `block ${p.block} takes ${p.least === p.most ? p.least : `${p.least} to ${p.most}`} argument${p.most === 1 ? '' : 's'} but is given ${p.got}`),
  recursiveBlock: entry<{ cycle: string }>('CNN2008', 'error', (p) => `block recursion: ${p.cycle}; blocks cannot use themselves`),
  duplicateName: entry<{ what: string; name: string }>('CNN2009', 'error', (p) => `${p.what} "${p.name}" is declared twice`),
  unknownName: entry<{ name: string }>('CNN2010', 'error', (p) => `"${p.name}" is not a block parameter in scope`),
  duplicateOption: entry<{ layer: string; option: string }>('CNN2011', 'error', (p) => `${p.layer} option "${p.option}" is given twice`),
  expansionTooLarge: entry<{ limit: number; what: string }>('CNN2012', 'error', (p) => `the model expands to more than ${p.limit} ${p.what}`),
  missingInput: entry<{ model: string }>('CNN2013', 'error', (p) => `model ${p.model} has no input shape`),
  emptyModel: entry<{ model: string }>('CNN2014', 'warning', (p) => `model ${p.model} has no layers`),
  notALayer: entry<{ name: string; value: string }>('CNN2015', 'error', (p) => `"${p.name}" is a block parameter holding ${p.value}, not a layer or block`),
  unknownTrainField: entry<{ field: string }>('CNN2016', 'error', (p) => `the train section has no field "${p.field}"`),
  badInput: entry<{ detail: string }>('CNN2017', 'error', (p) => p.detail),
  noModels: entry('CNN2018', 'warning', () => 'the file declares no model'),
  divisionByZero: entry('CNN2019', 'error', () => 'division by zero'),
  optionWithoutEffect: entry<{ field: string; option: string; kind: string }>(
    'CNN2020', 'warning', (p) => `${p.field} option "${p.option}" has no effect with ${p.kind}`),
  useTooLarge: entry<{ use: string; size: number; limit: number }>(
    'CNN2022', 'error', (p) => `${p.use} would expand to ${sizeText(p.size)} layers, over the limit of ${p.limit.toLocaleString('en-US')}; it is not expanded`),
  functionArguments: entry<{ signature: string; got: number }>(
    'CNN2023', 'error', (p) => `${p.signature} is given ${p.got} argument${p.got === 1 ? '' : 's'}`),
  unknownFunction: entry<{ name: string }>('CNN2024', 'error', (p) => `"${p.name}" is not a function`),
  conflictingArguments: entry<{ layer: string; detail: string }>('CNN2025', 'error', (p) => `${p.layer} ${p.detail}`),
  // 21xx: imports
  importUnreadable: entry<{ file: string; reason: string }>('CNN2101', 'error', (p) => `cannot import "${p.file}": ${p.reason}`),
  importCycle: entry<{ cycle: string }>('CNN2102', 'error', (p) => `import cycle: ${p.cycle}; files cannot import themselves`),
  importRepeated: entry<{ file: string }>('CNN2103', 'warning', (p) => `"${p.file}" is already imported by this file`),
  importClash: entry<{ name: string; file: string; other: string }>(
    'CNN2104', 'error', (p) => `block "${p.name}" of ${p.file} clashes with the block of the same name in ${p.other}`),
  unknownLibrary: entry<{ name: string }>('CNN2105', 'error', (p) => `there is no library "${p.name}"`),
  importsTooLarge: entry<{ limit: string }>('CNN2106', 'error', (p) => `the imports reach more than ${p.limit}; the rest are not read`),
  moreDiagnostics: entry<{ hidden: number; errors: number }>(
    'CNN2021', 'error', (p) => `${p.hidden.toLocaleString('en-US')} more problems (${p.errors.toLocaleString('en-US')} errors) are not shown; fix the ones above first`),

  // 3xxx: shapes and sizes
  kernelTooLarge: entry<{ layer: string; what: string; kernel: string; input: string }>(
    'CNN3001', 'error', (p) => `${p.layer} ${p.what} ${p.kernel} is larger than its padded input ${p.input}`),
  denseOnNonFlat: entry<{ layer: string; shape: Shape }>(
    'CNN3002', 'error', (p) => `${p.layer} needs a flat vector but gets a ${fmt(p.shape)} tensor`),
  residualMismatch: entry<{ input: Shape; output: Shape }>(
    'CNN3003', 'error', (p) => `residual add: the shortcut carries ${fmt(p.input)} but the body gives ${fmt(p.output)}`),
  concatMismatch: entry<{ first: Shape; other: Shape; index: number }>(
    'CNN3004', 'error', (p) => `concat: branch 1 gives ${fmt(p.first)} but branch ${p.index} gives ${fmt(p.other)}; all but the channel count must match`),
  addMismatch: entry<{ first: Shape; other: Shape; index: number }>(
    'CNN3005', 'error', (p) => `add: branch 1 gives ${fmt(p.first)} but branch ${p.index} gives ${fmt(p.other)}; shapes must be equal`),
  groupsMismatch: entry<{ layer: string; groups: number; channels: number; what: string }>(
    'CNN3006', 'error', (p) => `${p.layer} groups = ${p.groups} does not divide the ${p.what} ${p.channels}`),
  dropsRows: entry<{ layer: string; detail: string }>('CNN3007', 'warning', (p) => `${p.layer} ${p.detail}`),
  tensorTooLarge: entry<{ shape: string; elements: string }>(
    'CNN3008', 'error', (p) => `tensor ${p.shape} has ${p.elements} elements per sample, over the 2^31 limit`),
  paramsOverflow: entry<{ count: string }>('CNN3009', 'error', (p) => `the parameter count ${p.count} is over 2^53 and cannot be counted exactly`),
  spatialOnFlat: entry<{ layer: string; shape: Shape }>(
    'CNN3010', 'error', (p) => `${p.layer} needs a C×H×W tensor but gets ${fmt(p.shape)}`),
  gateMismatch: entry<{ input: Shape; gate: Shape }>(
    'CNN3011', 'error', (p) => `gate: ${fmt(p.gate)} does not broadcast against the input ${fmt(p.input)}`),
  emptyOutput: entry<{ layer: string; detail: string }>('CNN3012', 'error', (p) => `${p.layer} ${p.detail}`),
  indivisibleChannels: entry<{ layer: string; channels: number; divisor: number; why: string }>(
    'CNN3013', 'error', (p) => `${p.layer} needs a multiple of ${p.divisor} channels (${p.why}) but gets ${p.channels}`),
  splitSizes: entry<{ detail: string }>('CNN3020', 'error', (p) => `split: ${p.detail}`),
  splitMismatch: entry<{ first: Shape; other: Shape; index: number }>(
    'CNN3021', 'error', (p) => `split: branch 1 gives ${fmt(p.first)} but branch ${p.index} gives ${fmt(p.other)}; all but the channel count must match`),

  // 4xxx: emit and runtime
  notEmittable: entry<{ detail: string }>('CNN4001', 'error', (p) => p.detail),
} satisfies Record<string, Entry<never>>;

export type CatalogKey = keyof typeof catalog;
type ParamsOf<K extends CatalogKey> = Parameters<(typeof catalog)[K]['message']>[0] extends undefined ? Record<string, never> : Parameters<(typeof catalog)[K]['message']>[0];

export interface DiagnosticExtras {
  hint?: string;
  related?: Related[];
  fixes?: Fix[];
}

export function diagnostic<K extends CatalogKey>(key: K, span: Span, params: ParamsOf<K>, extras: DiagnosticExtras = {}): Diagnostic {
  const e = catalog[key] as Entry<ParamsOf<K>>;
  return { code: e.code, severity: e.severity, message: e.message(params), span, ...extras };
}

/** A step (or argument that names a layer) with no "->" before it: one report, with the arrow as its fix. */
export function missingArrow(name: string, span: Span, more: { name: string; span: Span }[] = []): Diagnostic {
  const all = [{ name, span }, ...more];
  const names = all.map((a) => a.name);
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  return diagnostic('missingArrow', span, { names: list }, {
    hint: 'a step ends at "->", not at the end of a line: without it, what follows reads as more of the step before',
    fixes: all.map((a) => ({ title: `insert "->" before ${a.name}`, span: { start: a.span.start, end: a.span.start }, text: '-> ' })),
  });
}

/** The most diagnostics a check reports; the rest are counted in one closing diagnostic. */
export const MAX_DIAGNOSTICS = 200;

/**
 * A check's diagnostics as reported: in text order, each reported once (a block used many times
 * reports its own mistakes once), each inside the text, at most MAX_DIAGNOSTICS and then one
 * that counts the rest.
 */
export function finishDiagnostics(diags: readonly Diagnostic[], sources: SourceSet): Diagnostic[] {
  const unique = uniqueDiagnostics(diags.map((d) => insideText(d, sources)));
  unique.sort((a, b) => a.span.start - b.span.start);
  if (unique.length <= MAX_DIAGNOSTICS) return unique;
  const hidden = unique.slice(MAX_DIAGNOSTICS);
  const errors = hidden.filter((d) => d.severity === 'error').length;
  const more = diagnostic('moreDiagnostics', hidden[0].span, { hidden: hidden.length, errors });
  return [...unique.slice(0, MAX_DIAGNOSTICS), errors ? more : { ...more, severity: 'warning' }];
}

/**
 * Each diagnostic once (the same code, range and message), in the order first reported. A mistake
 * in a block reported from several uses is one diagnostic with the uses it came from as related
 * locations (the first MAX_USES of them).
 */
export function uniqueDiagnostics(diags: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Map<string, number>();
  const out: Diagnostic[] = [];
  for (const d of diags) {
    const key = `${d.code} ${d.span.start} ${d.span.end} ${d.message}`;
    const at = seen.get(key);
    if (at === undefined) {
      seen.set(key, out.length);
      out.push(d);
    } else if (d !== out[at] && d.related?.length) out[at] = withRelated(out[at], d.related);
  }
  return out;
}

/** The uses of a block named in one diagnostic, at most. */
export const MAX_USES = 10;

/** `d` with the related locations of `more` it does not have (a copy: reported diagnostics are shared). */
function withRelated(d: Diagnostic, more: readonly Related[]): Diagnostic {
  const have = d.related ?? [];
  const key = (r: Related) => `${r.span.start} ${r.span.end} ${r.message}`;
  const keys = new Set(have.map(key));
  let uses = have.filter(isUse).length;
  const added = more.filter((r) => !keys.has(key(r)) && (!isUse(r) || uses++ < MAX_USES));
  return added.length ? { ...d, related: [...have, ...added] } : d;
}

const USE = 'in use ';
/** The related location of the block use a diagnostic came from (`in use vgg(64)`). */
export const useRelated = (span: Span, text: string): Related => ({ span, message: USE + text });
const isUse = (r: Related) => r.message.startsWith(USE);

/**
 * The diagnostic with its range inside the text it starts in: recovery can build a node from no
 * tokens, whose span then ends before it starts or lies past the end; such a range becomes the
 * point it starts at.
 */
function insideText(d: Diagnostic, sources: SourceSet): Diagnostic {
  const { start, end } = d.span;
  const { base, text } = sources.of(start);
  const last = base + text.length;
  if (base <= start && start <= end && end <= last) return d;
  const at = Math.max(base, Math.min(start, last));
  return { ...d, span: { start: at, end: Math.max(at, Math.min(end, last)) } };
}

export function hasErrors(diags: readonly Diagnostic[]): boolean {
  return diags.some((d) => d.severity === 'error');
}

/** Edit distance where swapping two neighbours counts as one edit (typing slips like rleu). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  if (name.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const limit = name.length <= 3 ? 1 : Math.max(2, Math.floor(name.length / 3));
  if (best !== undefined && bestDistance <= limit) return best;
  // A stretched spelling of a short name (`paddding` for `pad`).
  return [...candidates].find((c) => c.length >= 3 && lower.startsWith(c.toLowerCase()));
}
