/**
 * Regenerates the tables in grammar/REFERENCE.md from the code they describe, so they cannot drift:
 *
 *   <!-- layers:start --> ... <!-- layers:end -->   every layer kind (src/compiler/layers/)
 *   <!-- train:start -->  ... <!-- train:end -->    every train-section field and option (src/compiler/train-config.ts)
 *   <!-- codes:start -->  ... <!-- codes:end -->    every diagnostic code (src/compiler/diagnostics.ts)
 *
 * Usage: node --import tsx scripts/layer-table.ts [--check]
 * With --check it writes nothing and exits with status 1 when the file is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { layerKinds } from '../src/compiler/layers/index.ts';
import type { ArgSpec, ArgValue } from '../src/compiler/layers/types.ts';
import { trainFields } from '../src/compiler/train-config.ts';
import { catalog } from '../src/compiler/diagnostics.ts';

export const referencePath = join(dirname(fileURLToPath(import.meta.url)), '..', 'grammar', 'REFERENCE.md');

/** Table cells: pipes would end the cell and newlines the row. */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (s: string) => `\`${s}\``;

function showDefault(v: ArgValue | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (Array.isArray(v)) return v.every((x) => x === v[0]) ? String(v[0]) : v.length === 2 ? v.join('x') : `[${v.join(', ')}]`;
  if (typeof v === 'number' && v !== 0 && Math.abs(v) < 1e-3) return v.toExponential();
  return String(v);
}

function typeText(spec: ArgSpec): string {
  switch (spec.type) {
    case 'int': return 'integer';
    case 'number': return 'number';
    case 'kernel': return 'K or KHxKW';
    case 'pad': return 'same, valid, P, PHxPW or [t, l, b, r]';
    case 'bool': return 'on/off';
    case 'enum': return spec.values ? spec.values.join(' | ') : 'strings';
  }
}

function rangeText(spec: ArgSpec): string {
  const parts: string[] = [];
  if (spec.min !== undefined) parts.push(`${spec.minExclusive ? '>' : '≥'} ${spec.min}`);
  if (spec.max !== undefined) parts.push(`${spec.maxExclusive ? '<' : '≤'} ${spec.max}`);
  return parts.join(', ');
}

/** How one argument is written: `FILTERS`, `[SLOPE]`, `stride=`. */
function argForm(spec: ArgSpec): string {
  if (!spec.positional) return `${spec.name}=`;
  return spec.required ? spec.name.toUpperCase() : `[${spec.name.toUpperCase()}]`;
}

function argLine(spec: ArgSpec): string {
  const facts = [typeText(spec)];
  const range = rangeText(spec);
  if (range) facts.push(range);
  if (spec.required) facts.push('required');
  else if (spec.default !== undefined) facts.push(`default ${code(showDefault(spec.default))}`);
  return `${code(argForm(spec))} ${facts.join(', ')}: ${spec.doc}`;
}

export function renderLayerTable(): string {
  const rows = ['| Kind | Aliases | Arguments (positional first, then `name=value` options) | Description |', '|---|---|---|---|'];
  for (const kind of layerKinds) {
    const aliases = (kind.aliases ?? []).map(code).join(', ') || '—';
    const args = kind.args.length ? kind.args.map(argLine).join('<br>') : 'none';
    rows.push(`| ${code(kind.name)} | ${aliases} | ${cell(args)} | ${cell(kind.doc)} |`);
  }
  return rows.join('\n');
}

export function renderTrainTable(): string {
  const rows = ['| Field | Written as | Type | Range | Default | Meaning |', '|---|---|---|---|---|---|'];
  for (const [field, specs] of Object.entries(trainFields)) {
    for (const spec of specs) {
      const form = spec.positional ? `${field}: ${spec.name.toUpperCase()}` : `${spec.name}=`;
      const def = spec.default === undefined ? (field === 'freeze' ? 'none' : '') : code(showDefault(spec.default));
      rows.push(`| ${code(field)} | ${code(form)} | ${cell(typeText(spec))} | ${rangeText(spec)} | ${def} | ${cell(spec.doc)} |`);
    }
  }
  return rows.join('\n');
}

/** A message template with its parameters shown as `{name}`. */
function template(message: (p: never) => string): string {
  const placeholder = (name: string) => {
    const text = `{${name}}`;
    return { toString: () => text, toJSON: () => text, join: () => text, [Symbol.toPrimitive]: () => text };
  };
  const params = new Proxy({}, { get: (_t, key) => (typeof key === 'string' ? placeholder(key) : undefined) });
  return String(message(params as never));
}

export function renderCodesTable(): string {
  const rows = ['| Code | Severity | Name | Message |', '|---|---|---|---|'];
  const entries = Object.entries(catalog).sort(([, a], [, b]) => a.code.localeCompare(b.code));
  for (const [name, entry] of entries) {
    rows.push(`| ${entry.code} | ${entry.severity} | ${code(name)} | ${cell(template(entry.message as (p: never) => string))} |`);
  }
  return rows.join('\n');
}

export const sections: Record<string, () => string> = { layers: renderLayerTable, train: renderTrainTable, codes: renderCodesTable };

/** The document with every marked section regenerated; throws if a marker pair is missing. */
export function updateReference(text: string): string {
  let out = text;
  for (const [name, render] of Object.entries(sections)) {
    const start = `<!-- ${name}:start -->`;
    const end = `<!-- ${name}:end -->`;
    const i = out.indexOf(start);
    const j = out.indexOf(end);
    if (i < 0 || j < i) throw new Error(`REFERENCE.md: missing or misordered markers ${start} ... ${end}`);
    out = `${out.slice(0, i + start.length)}\n${render()}\n${out.slice(j)}`;
  }
  return out;
}

function main(args: string[]): void {
  const text = readFileSync(referencePath, 'utf8');
  const updated = updateReference(text);
  if (args.includes('--check')) {
    if (updated !== text) {
      console.error(`${referencePath} is out of date: run node --import tsx scripts/layer-table.ts`);
      process.exit(1);
    }
    console.log(`${referencePath} is up to date`);
    return;
  }
  if (updated !== text) writeFileSync(referencePath, updated);
  console.log(updated !== text ? `updated ${referencePath}` : `${referencePath} was up to date`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
