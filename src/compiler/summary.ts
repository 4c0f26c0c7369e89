/** Summary rows: the checked tree flattened into a torchinfo-style table, as data. */
import type { Diagnostic } from './diagnostics.ts';
import { formatShape, product } from './layers/types.ts';
import { assertNever, type CheckedModel, type Node, type Receptive } from './model.ts';
import type { Span } from './source.ts';

export interface SummaryRow {
  depth: number;
  name: string; // path
  layer: string; // how it is written: `conv 64 3x3 pad=same`, `residual`, `vgg(64)`
  output: number[] | null;
  params: number; // trainable
  buffers: number; // non-trainable (bn running statistics, frozen parameters)
  macs: number;
  rf: { size: number[]; jump: number[]; global: boolean } | null;
  span: Span;
  error?: Diagnostic;
}

export interface ModelSummary {
  name: string;
  input: number[] | null;
  output: number[] | null;
  params: { trainable: number; nonTrainable: number };
  macs: number;
  paramBytes: number;
  activationBytes: number;
  layers: SummaryRow[];
  /** Rows not inferred because of an earlier error. */
  notInferred: number;
}

export function summarize(model: CheckedModel): ModelSummary {
  const rows: SummaryRow[] = [];
  let notInferred = 0;
  let stopped = false;
  // Rows stop at the first one that failed; the rest are counted, not shown with made-up shapes.
  const add = (row: SummaryRow, header = false) => {
    if (stopped) return void notInferred++;
    rows.push(row);
    if (row.error || (!header && row.output === null)) stopped = true;
  };
  const visit = (node: Node, depth: number) => {
    const base = { depth, name: node.path, output: node.output ? [...node.output] : null, rf: rf(node.rf), span: node.span, error: node.error };
    switch (node.kind) {
      case 'layer': {
        const count = (trainable: boolean) => node.params.filter((p) => p.trainable === trainable && !(trainable && node.frozen)).reduce((s, p) => s + product(p.shape), 0);
        const frozenExtra = node.frozen ? node.params.filter((p) => p.trainable).reduce((s, p) => s + product(p.shape), 0) : 0;
        add({ ...base, layer: node.text + (node.frozen ? ' (frozen)' : ''), params: count(true), buffers: count(false) + frozenExtra, macs: node.macs });
        break;
      }
      case 'seq':
        if (node.origin) {
          add({ ...base, layer: node.origin.kind === 'block' ? node.origin.text : `repeat ${node.origin.count}`, params: 0, buffers: 0, macs: 0, output: null, error: undefined }, true);
        }
        for (const item of node.items) visit(item, node.origin ? depth + 1 : depth);
        break;
      case 'residual':
        visit(node.body, depth + 1);
        if (node.shortcut) visit(node.shortcut, depth + 1);
        add({ ...base, layer: node.shortcut ? 'residual add (projection)' : 'residual add', params: 0, buffers: 0, macs: 0 });
        break;
      case 'concat': case 'add':
        node.branches.forEach((b) => visit(b, depth + 1));
        add({ ...base, layer: `${node.kind} of ${node.branches.length} branches`, params: 0, buffers: 0, macs: 0 });
        break;
      case 'gate':
        visit(node.body, depth + 1);
        add({ ...base, layer: 'gate multiply', params: 0, buffers: 0, macs: 0 });
        break;
      default: assertNever(node);
    }
  };
  for (const item of model.root.items) visit(item, 0);
  return {
    name: model.name,
    input: model.input ? [...model.input] : null,
    output: model.output ? [...model.output] : null,
    params: { trainable: model.totals.trainable, nonTrainable: model.totals.nonTrainable },
    macs: model.totals.macs,
    paramBytes: model.totals.paramBytes,
    activationBytes: model.totals.activationBytes,
    layers: rows,
    notInferred,
  };
}

const rf = (r: Receptive | null) => (r ? { size: [...r.size], jump: [...r.jump], global: r.global ?? false } : null);

/**
 * A receptive-field size or jump pair for display, `3` when both are equal: after upsampling they
 * are fractions of an input pixel, shown to two decimals.
 */
export function rfText(pair: readonly number[], joinEqual = false): string {
  const [a, b] = pair.map((v) => String(Number(v.toFixed(2))));
  return a === b && !joinEqual ? a : `${a}×${b}`;
}

export function shapeText(s: readonly number[] | null): string {
  return s ? formatShape(s) : '?';
}
