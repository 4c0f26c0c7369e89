/** Summary rows: the checked tree flattened into a torchinfo-style table, as data. */
import type { Diagnostic } from './diagnostics.ts';
import { formatShape, product } from './layers/types.ts';
import { nodeRules, seqRules } from './combinators/index.ts';
import type { CheckedModel, Node, Receptive } from './model.ts';
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
      case 'seq': {
        // A block's expansion or a repeat heads its rows; a frozen { } or a branch is only its steps.
        const origin = node.origin;
        const header = origin?.kind === 'block' ? origin.text : origin ? seqRules(origin.kind).header?.(node) : undefined;
        if (header) add({ ...base, layer: header, params: 0, buffers: 0, macs: 0, output: null, error: undefined }, true);
        for (const item of node.items) visit(item, header ? depth + 1 : depth);
        break;
      }
      default: {
        // A combinator's row (its join) follows its children's.
        const rules = nodeRules(node);
        for (const child of rules.children(node)) visit(child, depth + 1);
        add({ ...base, layer: rules.label(node), params: 0, buffers: 0, macs: 0 });
      }
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
