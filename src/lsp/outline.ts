/** Document symbols (models, blocks, train sections, labelled steps) and folding ranges (braces, comment runs). */
import { blockSignature } from '../compiler/args.ts';
import { FoldingRangeKind, SymbolKind, type DocumentSymbol, type FoldingRange } from 'vscode-languageserver';
import * as T from '../compiler/lexer.ts';
import { formatShape } from '../compiler/layers/types.ts';
import { stepsOf, type Analysis } from './analysis.ts';
import { count, toRange } from './convert.ts';

export function documentSymbols(analysis: Analysis): DocumentSymbol[] {
  const range = (span: { start: number; end: number }) => toRange(analysis.lines, span);
  const labels = (chain: Parameters<typeof stepsOf>[0]): DocumentSymbol[] =>
    [...stepsOf(chain)].flatMap(({ step }) => (step.label ? [{ name: step.label.name, kind: SymbolKind.Field, range: range(step.span), selectionRange: range(step.label.span), detail: step.kind === 'layer' ? step.name : step.kind }] : []));
  const symbols: DocumentSymbol[] = [];
  for (const block of analysis.ast.blocks) {
    if (!block.name) continue;
    symbols.push({
      name: block.name,
      detail: blockSignature(block).slice(block.name.length),
      kind: SymbolKind.Function,
      range: range(block.span),
      selectionRange: range(block.nameSpan),
      children: [
        ...block.params.map((p) => ({ name: p.name, kind: SymbolKind.Variable, range: range(p.span), selectionRange: range(p.span) })),
        ...labels(block.body),
      ],
    });
  }
  for (const model of analysis.ast.models) {
    if (!model.name) continue;
    const checked = analysis.result.models.find((m) => m.nameSpan.start === model.nameSpan.start);
    const children: DocumentSymbol[] = [];
    if (model.input) children.push({ name: 'input', kind: SymbolKind.Property, range: range(model.input.span), selectionRange: range(model.input.span), detail: checked?.input ? formatShape(checked.input) : undefined });
    children.push(...labels(model.body));
    if (model.train) {
      children.push({
        name: 'train',
        kind: SymbolKind.Namespace,
        range: range(model.train.span),
        selectionRange: range({ start: model.train.span.start, end: model.train.span.start + 5 }),
        children: model.train.entries.map((e) => ({ name: e.key, kind: SymbolKind.Property, range: range(e.span), selectionRange: range(e.keySpan) })),
      });
    }
    symbols.push({
      name: model.name,
      detail: checked ? `${checked.input ? formatShape(checked.input) : '?'} → ${checked.output ? formatShape(checked.output) : '?'}, ${count(checked.totals.trainable)} params` : undefined,
      kind: SymbolKind.Class,
      range: range(model.span),
      selectionRange: range(model.nameSpan),
      children,
    });
  }
  symbols.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  return symbols;
}

export function foldingRanges(analysis: Analysis): FoldingRange[] {
  const lexed = T.cnnLexer.tokenize(analysis.text);
  const line = (offset: number) => analysis.lines.position(offset).line;
  const ranges: FoldingRange[] = [];
  const open: number[] = [];
  for (const t of lexed.tokens) {
    if (t.tokenType === T.LBrace) open.push(t.startOffset);
    else if (t.tokenType === T.RBrace && open.length) {
      const start = line(open.pop()!);
      const end = line(t.startOffset) - 1; // keep the closing brace visible
      if (end > start) ranges.push({ startLine: start, endLine: end });
    }
  }
  // runs of line comments on consecutive lines, and block comments over several lines
  let run: { start: number; end: number } | undefined;
  const flush = () => {
    if (run && run.end > run.start) ranges.push({ startLine: run.start, endLine: run.end, kind: FoldingRangeKind.Comment });
    run = undefined;
  };
  for (const c of lexed.groups.comments ?? []) {
    const start = line(c.startOffset);
    const end = line(c.startOffset + c.image.length);
    const ownLine = analysis.lines.lineText(start).trimStart().startsWith(c.image.slice(0, 2));
    if (c.tokenType === T.BlockComment) {
      flush();
      if (end > start) ranges.push({ startLine: start, endLine: end, kind: FoldingRangeKind.Comment });
      continue;
    }
    if (!ownLine) continue;
    if (run && start === run.end + 1) run.end = start;
    else {
      flush();
      run = { start, end: start };
    }
  }
  flush();
  return ranges.sort((a, b) => a.startLine - b.startLine);
}
