/** Between compiler data (offset spans, diagnostics) and LSP data (line/character ranges). */
import { DiagnosticSeverity, type Diagnostic as LspDiagnostic, type Location, type Position, type Range } from 'vscode-languageserver';
import type { Diagnostic } from '../compiler/diagnostics.ts';
import type { LineMap, Span } from '../compiler/source.ts';

export function toRange(lines: LineMap, span: Span): Range {
  return { start: lines.position(span.start), end: lines.position(span.end) };
}

export function toSpan(lines: LineMap, range: Range): Span {
  return { start: lines.offset(range.start), end: lines.offset(range.end) };
}

const severities = { error: DiagnosticSeverity.Error, warning: DiagnosticSeverity.Warning, info: DiagnosticSeverity.Information } as const;

/**
 * `data.key` lets a code action find the compiler diagnostic (and its fixes) again. `where` places
 * related spans, which may lie in files the document imports (Analysis.location).
 */
export function toLspDiagnostic(lines: LineMap, uri: string, d: Diagnostic, where = (span: Span): Location => ({ uri, range: toRange(lines, span) })): LspDiagnostic {
  const message = d.hint ? `${d.message}\nhint: ${d.hint}` : d.message;
  return {
    range: toRange(lines, d.span),
    severity: severities[d.severity],
    code: d.code,
    source: 'cnnc',
    message,
    relatedInformation: d.related?.map((r) => ({ location: where(r.span), message: r.message })),
    data: { key: diagnosticKey(d) },
  };
}

export function diagnosticKey(d: Diagnostic): string {
  return `${d.code}:${d.span.start}:${d.span.end}`;
}

export const plural = (n: number, word: string) => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;

/** 9408 -> "9,408"; big counts also get a short form: 25,557,032 (25.6 M). */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function short(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [size, unit] of units) if (Math.abs(n) >= size) return `${(n / size).toFixed(n / size >= 100 ? 0 : n / size >= 10 ? 1 : 2)} ${unit}`;
  return String(n);
}
