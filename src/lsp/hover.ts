/**
 * Hovers: what a layer does to its input (shapes, the output size formula with the numbers filled
 * in, parameters, MACs, receptive field), what a block use expands to, a model's totals, and the
 * documentation of layer kinds, options and train fields.
 */
import { MarkupKind, type Hover, type Position } from 'vscode-languageserver';
import type * as A from '../compiler/ast.ts';
import { blockSignature, showExpr } from '../compiler/args.ts';
import { combinatorOf, nodeRules } from '../compiler/combinators/index.ts';
import { lookupLayer } from '../compiler/layers/index.ts';
import { formatShape, product, type ArgSpec, type Args, type LayerKind, type Shape } from '../compiler/layers/types.ts';
import { sizeFormula } from '../compiler/layers/window.ts';
import { layers, type LayerNode, type Node, type SeqNode } from '../compiler/model.ts';
import { rfText } from '../compiler/summary.ts';
import { trainFields } from '../compiler/train-config.ts';
import { locate, type Analysis, type Use } from './analysis.ts';
import { count, short, toRange } from './convert.ts';

const MAX_USES = 6;
const MAX_EXPANSION_ROWS = 40;

export function hover(analysis: Analysis, position: Position): Hover | null {
  const offset = analysis.offset(position);
  const target = locate(analysis.ast, offset);
  if (!target) return null;
  let text: string | undefined;
  let span = undefined as A.Step['span'] | undefined;
  switch (target.kind) {
    case 'layer': {
      const { step, arg } = target;
      const kind = lookupLayer(step.name);
      const block = analysis.block(step.name);
      if (arg?.name && arg.nameSpan && offset >= arg.nameSpan.start && offset <= arg.nameSpan.end && kind) {
        const spec = kind.args.find((s) => s.name === arg.name);
        text = spec ? optionDoc(kind.name, spec) : undefined;
        span = arg.nameSpan;
      } else if (kind) {
        text = layerHover(kind, analysis.index.layerUses(step));
        span = step.span;
      } else if (block) {
        text = callHover(block, analysis.index.callUses(step));
        span = step.span;
      }
      break;
    }
    case 'composite':
      text = compositeHover(target.step, analysis.index.compositeUses(target.step));
      span = target.step.keywordSpan;
      break;
    case 'block': {
      const uses = analysis.blockUses(target.decl.name);
      text = blockHeader(target.decl) + '\n\n' + (uses.length ? usesTable(uses) : '_not used by any model_');
      span = target.decl.nameSpan;
      break;
    }
    case 'param':
    {
      const def = target.block.params.find((p) => p.name === target.name)?.default;
      text = `\`${target.name}\`: parameter of block \`${blockSignature(target.block)}\`${def ? `, by default \`${showExpr(def)}\`` : ''}`;
    }
      span = target.span;
      break;
    case 'model': {
      const model = analysis.result.models.find((m) => m.nameSpan.start === target.decl.nameSpan.start);
      if (model) {
        const t = model.totals;
        text = [
          `**model ${model.name}**`,
          '',
          `${shape(model.input)} → ${shape(model.output)}`,
          '',
          `params ${count(t.trainable)} trainable, ${count(t.nonTrainable)} non-trainable (${short(t.paramBytes)}B)`,
          `MACs ${short(t.macs)} · activations ${short(t.activationBytes)}B per sample`,
        ].join('  \n');
      }
      span = target.decl.nameSpan;
      break;
    }
    case 'input':
      text = '**input** C×H×W (or a vector length N), with optional `mean=`, `std=` (per channel) and `classes=` (names in label order)';
      span = target.decl.input?.span;
      break;
    case 'train': {
      const entry = target.entry;
      if (!entry) break;
      const specs = trainFields[entry.key as keyof typeof trainFields];
      if (!specs) break;
      const arg = target.arg;
      const spec = arg?.name ? specs.find((s) => s.name === arg.name) : undefined;
      text = spec ? optionDoc(`train ${entry.key}`, spec) : [`**${entry.key}** (train)`, '', ...specs.map((s) => specLine(s))].join('\n');
      span = spec && arg?.nameSpan ? arg.nameSpan : entry.keySpan;
      break;
    }
  }
  if (!text) return null;
  return { contents: { kind: MarkupKind.Markdown, value: text }, range: span ? toRange(analysis.lines, span) : undefined };
}

const shape = (s: readonly number[] | null) => (s ? formatShape(s) : '?');


function blockHeader(b: A.BlockDecl): string {
  return `**block ${blockSignature(b)}**`;
}

export function specLine(s: ArgSpec): string {
  const written = s.positional ? s.name.toUpperCase() : `${s.name}=`;
  const values = s.type === 'bool' ? 'on | off' : s.type === 'pad' ? 'same | valid | P | PHxPW | [t, l, b, r]' : s.values?.join(' | ');
  const def = s.default !== undefined ? ` (default ${showDefault(s.default)})` : s.required ? ' (required)' : '';
  return `- \`${written}\` ${s.doc}${values && !listsValues(s.doc, values) ? `: ${values}` : ''}${def}`;
}

/** Whether a doc already is (or starts with) the value list, as `pad`'s does: then it is not shown twice. */
function listsValues(doc: string, values: string): boolean {
  return doc.includes(values.split(' | ').slice(0, 2).join(' | '));
}

function showDefault(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (Array.isArray(v)) return v.every((x) => x === v[0]) ? String(v[0]) : v.join('x');
  return String(v);
}

function optionDoc(owner: string, spec: ArgSpec): string {
  return `**${owner}** option\n\n${specLine(spec)}`;
}

export function layerDoc(kind: LayerKind): string {
  const aliases = kind.aliases?.length ? ` (also ${kind.aliases.join(', ')})` : '';
  const args = kind.args.map(specLine);
  return [`**${kind.name}**${aliases}: ${kind.doc}`, ...(args.length ? ['', ...args] : [])].join('\n');
}

function paramCount(node: LayerNode): { trainable: number; buffers: number } {
  let trainable = 0;
  let buffers = 0;
  for (const p of node.params) {
    if (p.trainable) trainable += product(p.shape);
    else buffers += product(p.shape);
  }
  return { trainable, buffers };
}

/** The facts of one checked layer: shapes, formula, params, MACs, receptive field. */
function layerFacts(node: LayerNode): string[] {
  const lines = [`\`${node.text}\` — \`${node.path}\``, `${shape(node.input)} → ${shape(node.output)}`];
  if (node.error) lines.push(`⚠ ${node.error.message}`);
  const window = node.window;
  const formula = node.layer.sizeFormula ?? (window && ((input: Shape, _args: Args, i: 0 | 1, out: number) => sizeFormula(input, window, i, out)));
  if (formula && node.input && node.output && node.input.length === 3 && node.output.length === 3) {
    const h = formula(node.input, node.args, 0, node.output[1]);
    const w = formula(node.input, node.args, 1, node.output[2]);
    if (h === w) lines.push(`H, W: \`${h}\``);
    else lines.push(`H: \`${h}\``, `W: \`${w}\``);
  }
  if (node.output) {
    const { trainable, buffers } = paramCount(node);
    const parts = [`params ${count(trainable)}${buffers ? ` (+${count(buffers)} buffers)` : ''}${node.frozen ? ' frozen' : ''}`];
    if (node.macs) parts.push(`MACs ${short(node.macs)}`);
    if (node.rf) parts.push(`receptive field ${rfText(node.rf.size, true)} (jump ${rfText(node.rf.jump, true)})`);
    lines.push(parts.join(' · '));
  }
  return lines;
}

function layerHover(kind: LayerKind, uses: Use<LayerNode>[]): string {
  const sections: string[] = [];
  const distinct = new Map<string, Use<LayerNode>[]>();
  for (const u of uses) {
    const k = JSON.stringify([u.node.text, u.node.input, u.node.output, u.node.error?.message]);
    distinct.set(k, [...(distinct.get(k) ?? []), u]);
  }
  let shown = 0;
  for (const group of distinct.values()) {
    if (shown++ >= MAX_USES) {
      sections.push(`_… ${distinct.size - MAX_USES} more_`);
      break;
    }
    const facts = layerFacts(group[0].node);
    if (group.length > 1) facts[0] += ` and ${group.length - 1} more use${group.length > 2 ? 's' : ''} alike`;
    sections.push(facts.join('  \n'));
  }
  if (uses.length === 0) sections.push('_no shapes: not used by a model, or after an error_');
  return [...sections, '---', layerDoc(kind)].join('\n\n');
}

function expansionRows(seq: SeqNode, base: string): string[] {
  const rows: [string, string, string][] = [];
  let more = false;
  for (const l of layers(seq)) {
    if (rows.length >= MAX_EXPANSION_ROWS) {
      more = true;
      break;
    }
    const name = l.path.startsWith(base + '.') ? l.path.slice(base.length + 1) : l.path;
    rows.push([name, l.text, shape(l.output)]);
  }
  const w0 = Math.min(40, Math.max(0, ...rows.map((r) => r[0].length)));
  const w1 = Math.min(40, Math.max(0, ...rows.map((r) => r[1].length)));
  const lines = rows.map(([n, t, s]) => `${n.padEnd(w0)}  ${t.padEnd(w1)}  ${s}`);
  if (more) lines.push('…');
  return lines;
}

function seqTotals(seq: SeqNode): { params: number; macs: number } {
  let params = 0;
  let macs = 0;
  for (const l of layers(seq)) {
    params += paramCount(l).trainable;
    macs += l.macs;
  }
  return { params, macs };
}

function callHover(block: A.BlockDecl, uses: Use<SeqNode>[]): string {
  const parts = [blockHeader(block)];
  if (uses.length === 0) parts.push('_no expansion: not used by a model, or after an error_');
  uses.slice(0, 3).forEach((u) => {
    const seq = u.node;
    const t = seqTotals(seq);
    const title = `\`${seq.origin?.kind === 'block' ? seq.origin.text : block.name}\` — \`${seq.path}\`: ${shape(seq.input)} → ${shape(seq.output)}, params ${count(t.params)}, MACs ${short(t.macs)}`;
    parts.push(title, '```\n' + expansionRows(seq, seq.path).join('\n') + '\n```');
  });
  if (uses.length > 3) parts.push(`_… ${uses.length - 3} more uses_`);
  return parts.join('\n\n');
}

function usesTable(uses: Use<SeqNode>[]): string {
  const rows = uses.slice(0, MAX_USES * 2).map((u) => {
    const t = seqTotals(u.node);
    const text = u.node.origin?.kind === 'block' ? u.node.origin.text : '';
    return `- \`${text}\` in ${u.model.name} (\`${u.node.path}\`): ${shape(u.node.input)} → ${shape(u.node.output)}, params ${count(t.params)}`;
  });
  if (uses.length > MAX_USES * 2) rows.push(`- … ${uses.length - MAX_USES * 2} more`);
  return rows.join('\n');
}

function compositeHover(step: Exclude<A.Step, A.LayerStep>, uses: Use[]): string {
  const parts = [`**${combinatorOf(step).doc}**`];
  for (const u of uses.slice(0, MAX_USES)) {
    const n: Node = u.node;
    let params = 0;
    let macs = 0;
    for (const l of layers(n)) {
      params += paramCount(l).trainable;
      macs += l.macs;
    }
    const detail = n.kind === 'layer' || n.kind === 'seq' ? '' : nodeRules(n).hover?.(n) ?? '';
    parts.push(`\`${n.path}\`: ${shape(n.input)} → ${shape(n.output)}${detail}  \nparams ${count(params)} · MACs ${short(macs)}${n.error ? `  \n⚠ ${n.error.message}` : ''}`);
  }
  if (uses.length > MAX_USES) parts.push(`_… ${uses.length - MAX_USES} more uses_`);
  return parts.join('\n\n');
}
