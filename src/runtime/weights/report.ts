/**
 * What a match did, for the user: every pairing (`layer1.0.conv1.weight 64×64×3×3 ->
 * repeat1.0.residual1.basic1.conv1.weight`), the batch norms that were folded, what was initialised
 * as usual and what the file holds that the model does not use. Compact for the terminal (the first
 * lines and counts), in full for a file.
 */
import { formatShape } from '../../compiler/layers/types.ts';
import type { Pairing, WeightMatch } from './match.ts';

export interface ReportOptions {
  /** The first line's word: `init from FILE` (training) or `weights from FILE`. */
  purpose: 'init' | 'weights';
  /** Every line, not the first few of each list. */
  full?: boolean;
  /** Where the full report is, said after a shortened list: "all in runs/M/init-report.txt". */
  more?: string;
}

const COMPACT = 4;

export function formatWeightReport(m: WeightMatch, opts: ReportOptions): string {
  const how = m.by === 'name'
    ? 'by name'
    : `by structure (${m.format}: ${m.layers.matched} of model ${m.model}'s ${m.layers.model} layers with parameters, in the file's order, every shape checked)`;
  const lines = [`${opts.purpose} from ${m.file}: ${m.pairs.length} ${m.pairs.length === 1 ? 'tensor' : 'tensors'} matched ${how}`];
  const list = <T>(items: readonly T[], show: (x: T) => string) => {
    const shown = opts.full ? items : items.slice(0, COMPACT);
    for (const x of shown) lines.push(`    ${show(x)}`);
    if (shown.length < items.length) lines.push(`    … ${items.length - shown.length} more${opts.more ? ` (${opts.more})` : ''}`);
  };
  if (m.by === 'structure' || opts.full) list(m.pairs, pairing);
  if (m.folded.length) {
    lines.push(`  batch norm was folded into the file's convolutions: ${m.folded.length} bn ${m.folded.length === 1 ? 'layer gets' : 'layers get'} the identity with the folded bias ` +
      '(weight 1, bias from the file, running_mean 0, running_var 1 - eps): exact at inference; training from here fine-tunes from folded statistics');
    if (opts.full) list(m.folded, (bn) => bn);
  }
  if (m.initialised.length) {
    lines.push(`  ${m.initialised.length} initialised as usual:`);
    list(m.initialised, (t) => `${t.name} ${formatShape(t.dims)} (${t.why})`);
  }
  if (m.unused.length) {
    lines.push(`  ${m.unused.length} in the file but not used:`);
    list(m.unused, (t) => `${t.name} ${formatShape(t.dims)}`);
  }
  for (const note of m.notes) lines.push(`  note: ${note}`);
  return lines.join('\n');
}

const pairing = (p: Pairing) => `${p.from}${p.dims ? ` ${formatShape(p.dims)}` : ''} -> ${p.to}${p.how ? ` (${p.how})` : ''}`;
