/**
 * Inlay hints: each layer step's output shape after the step (`32×28×28`; a step in a block used
 * with different shapes shows them all), concat and repeat outputs after their `}`, parameter
 * counts on block headers (per use) and totals on model headers.
 */
import { InlayHintKind, type InlayHint, type Range } from 'vscode-languageserver';
import { formatShape, product } from '../compiler/layers/types.ts';
import { combinatorOf } from '../compiler/combinators/index.ts';
import { layers, type Node } from '../compiler/model.ts';
import type { Span } from '../compiler/source.ts';
import { allSteps, type Analysis } from './analysis.ts';
import { count, short } from './convert.ts';

const MAX_SHAPES = 3;

function trainableParams(node: Node): number {
  let n = 0;
  for (const l of layers(node)) for (const p of l.params) if (p.trainable) n += product(p.shape);
  return n;
}

export function inlayHints(analysis: Analysis, range?: Range): InlayHint[] {
  const from = range ? analysis.offset(range.start) : 0;
  const to = range ? analysis.offset(range.end) : analysis.text.length;
  const within = (span: Span) => span.end >= from && span.end <= to;
  const hints: InlayHint[] = [];
  const at = (offset: number, label: string, kind: InlayHintKind | undefined, tooltip?: string) =>
    hints.push({ position: analysis.lines.position(offset), label, kind, paddingLeft: true, tooltip });
  const index = analysis.index;

  for (const { step } of allSteps(analysis.ast)) {
    if (!within(step.span)) continue;
    if (step.kind !== 'layer' && !combinatorOf(step).shapeHint) continue;
    const uses = index.stepUses(step);
    const shapes: string[] = [];
    for (const u of uses) {
      if (!u.node.output) continue;
      const s = formatShape(u.node.output);
      if (!shapes.includes(s)) shapes.push(s);
    }
    if (shapes.length === 0) continue;
    const label = shapes.length > MAX_SHAPES ? `${shapes.slice(0, MAX_SHAPES).join(' | ')} | …` : shapes.join(' | ');
    at(step.span.end, label, InlayHintKind.Type, shapes.length > 1 ? `output shape in each use (${uses.length} uses)` : 'output shape');
  }

  for (const block of analysis.ast.blocks) {
    const last = block.params.at(-1);
    const header = last ? last.default?.span ?? last.span : block.nameSpan;
    if (!within(header)) continue;
    const uses = analysis.blockUses(block.name);
    if (uses.length === 0) continue;
    const counts = [...new Set(uses.map((u) => trainableParams(u.node)))];
    const shown = counts.length > MAX_SHAPES ? [...counts.slice(0, MAX_SHAPES).map(count), '…'] : counts.map(count);
    const label = `${shown.join(' | ')} params${uses.length > 1 ? ` (${uses.length} uses)` : ''}`;
    // after the `)` when there is one: the hint sits at the end of the parameter list
    const close = analysis.text.indexOf(')', header.end);
    const brace = analysis.text.indexOf('{', header.end);
    const end = block.params.length && close >= 0 && (brace < 0 || close < brace) ? close + 1 : header.end;
    at(end, label, undefined, uses.map((u) => `${u.node.origin?.kind === 'block' ? u.node.origin.text : ''} in ${u.model.name}: ${count(trainableParams(u.node))} params`).join('\n'));
  }

  for (const model of analysis.result.models) {
    if (!within(model.nameSpan)) continue;
    at(model.nameSpan.end, `${short(model.totals.trainable)} params · ${short(model.totals.macs)} MACs`, undefined,
      `${count(model.totals.trainable)} trainable, ${count(model.totals.nonTrainable)} non-trainable parameters; ${count(model.totals.macs)} multiply-accumulates per sample`);
  }
  hints.sort((a, b) => a.position.line - b.position.line || a.position.character - b.position.character);
  return hints;
}
