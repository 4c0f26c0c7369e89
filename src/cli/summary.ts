/** `cnnc summary FILE`: the layer table with shapes, parameters, MACs and receptive fields. */
import { hasErrors } from '../compiler/diagnostics.ts';
import { rfText, shapeText, summarize, type ModelSummary } from '../compiler/summary.ts';
import { trainingCost, type TrainingCost } from '../compiler/training-cost.ts';
import { checkFileAt, pickModel } from './io.ts';
import { printDiagnostics, styleFor, type Style } from './report.ts';

export interface SummaryOptions {
  model?: string;
  json?: boolean;
  batch?: number;
}

/** Prints the tables (or JSON) and any diagnostics; returns the exit status. */
export function summaryCommand(file: string, opts: SummaryOptions): number {
  const result = checkFileAt(file);
  const models = opts.model ? [pickModel(result, opts.model)] : result.models;
  const summaries = models.map((m) => ({ ...summarize(m), training: m.output ? trainingCost(m, m.train, opts.batch) : null }));
  if (opts.json) {
    console.log(JSON.stringify({ models: summaries, diagnostics: result.diagnostics.length }, null, 2));
  } else {
    const style = styleFor(process.stdout);
    for (const s of summaries) console.log(renderTable(s, style) + (s.training ? '\n' + renderTraining(s.training) : '') + '\n');
    printDiagnostics(process.stdout, result.sources, result.diagnostics);
  }
  return hasErrors(result.diagnostics) ? 1 : 0;
}

function renderTraining(t: TrainingCost): string {
  return [
    `Training step (batch ${t.batch}):`,
    `  forward + backward MACs: ${formatMacs(t.forwardMacs)} + ${formatMacs(t.backwardMacs)} = ${formatMacs(t.forwardMacs + t.backwardMacs)}`,
    `  saved activations:       ${formatBytes(t.savedActivationBytes)}`,
    `  gradients:               ${formatBytes(t.gradientBytes)}`,
    `  optimizer state:         ${formatBytes(t.optimizerStateBytes)}`,
  ].join('\n');
}

const num = (n: number) => n.toLocaleString('en-US');

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) [bytes, i] = [bytes / 1024, i + 1];
  return `${bytes.toFixed(i === 0 ? 0 : 2)} ${units[i]}`;
}

export function formatMacs(macs: number): string {
  if (macs >= 1e9) return `${(macs / 1e9).toFixed(2)} G`;
  if (macs >= 1e6) return `${(macs / 1e6).toFixed(2)} M`;
  if (macs >= 1e3) return `${(macs / 1e3).toFixed(2)} K`;
  return String(macs);
}

export function renderTable(s: ModelSummary, style: Style): string {
  const header = ['Layer', 'Output shape', 'Params', 'MACs', 'RF / stride'];
  const body = s.layers.map((r) => [
    `${'  '.repeat(r.depth)}${r.layer}`,
    r.error ? '✗' : r.output ? shapeText(r.output) : '',
    r.params || r.buffers ? num(r.params) + (r.buffers ? ` +${num(r.buffers)}` : '') : r.output ? '0' : '',
    r.macs ? formatMacs(r.macs) : r.output ? '0' : '',
    r.rf ? `${r.rf.global ? 'all' : rfText(r.rf.size)} / ${rfText(r.rf.jump)}` : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const rule = '─'.repeat(widths.reduce((a, b) => a + b + 2, -2));
  const out = [style.bold(`model ${s.name}: input ${shapeText(s.input)} → output ${shapeText(s.output)}`), rule, style.bold(line(header)), rule];
  s.layers.forEach((r, i) => {
    out.push(r.error ? style.red(line(body[i])) : line(body[i]));
    if (r.error) out.push(style.red(`${' '.repeat(2 * r.depth + 2)}✗ ${r.error.code}: ${r.error.message}`));
  });
  if (s.notInferred) out.push(style.dim(`  … ${s.notInferred} more row${s.notInferred > 1 ? 's' : ''} not inferred after the error`));
  out.push(rule);
  out.push(`Trainable params:     ${num(s.params.trainable)}`);
  out.push(`Non-trainable params: ${num(s.params.nonTrainable)}`);
  out.push(`Total MACs:           ${num(s.macs)} (${formatMacs(s.macs)})`);
  out.push(`Parameter memory:     ${formatBytes(s.paramBytes)}`);
  out.push(`Activation memory:    ${formatBytes(s.activationBytes)} per sample (float32, every layer output)`);
  return out.join('\n');
}
