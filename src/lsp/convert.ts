/** Between compiler data (offset spans, diagnostics) and LSP data (line/character ranges). */
import { DiagnosticSeverity, type Diagnostic as LspDiagnostic, type Position, type Range } from 'vscode-languageserver';
import type { Diagnostic } from '../compiler/diagnostics.ts';
import type { Span } from '../compiler/source.ts';

/**
 * Lines as the LSP counts them: `\r\n`, `\n` and a lone `\r` each end a line (the client's
 * TextDocument applies edits by the same rule, so both sides agree on every position). Kept here
 * rather than taken from the compiler's LineMap so that the protocol's rule holds whatever rule
 * the command line's messages use. Characters are UTF-16 code units, as JavaScript strings are.
 */
export class DocumentLines {
  /** Offset of each line's first character. */
  private readonly starts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++; // \r\n: one line end
      if (c === 10 || c === 13) this.starts.push(i + 1);
    }
  }

  get lineCount(): number {
    return this.starts.length;
  }

  /** The position of an offset (clamped into the text). */
  position(offset: number): Position {
    const clamped = Math.max(0, Math.min(Number.isFinite(offset) ? offset : 0, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: clamped - this.starts[lo] };
  }

  /**
   * The offset of a position, by the LSP's rules: a line past the last means the end of the text,
   * a character past the line's end means the line's end (never the next line).
   */
  offset(pos: Position): number {
    if (pos.line >= this.starts.length) return this.text.length;
    if (pos.line < 0) return 0;
    const start = this.starts[pos.line];
    return start + Math.max(0, Math.min(pos.character, this.contentEnd(pos.line) - start));
  }

  /** A line's text without its line end. */
  lineText(line: number): string {
    if (line < 0 || line >= this.starts.length) return '';
    return this.text.slice(this.starts[line], this.contentEnd(line));
  }

  /** The offset where a line's line end (if any) begins. */
  private contentEnd(line: number): number {
    const next = this.starts[line + 1];
    if (next === undefined) return this.text.length;
    return this.text.charCodeAt(next - 1) === 10 && this.text.charCodeAt(next - 2) === 13 ? next - 2 : next - 1;
  }
}

export function toRange(lines: DocumentLines, span: Span): Range {
  return { start: lines.position(span.start), end: lines.position(span.end) };
}

export function toSpan(lines: DocumentLines, range: Range): Span {
  return { start: lines.offset(range.start), end: lines.offset(range.end) };
}

const severities = { error: DiagnosticSeverity.Error, warning: DiagnosticSeverity.Warning, info: DiagnosticSeverity.Information } as const;

/** `data.key` lets a code action find the compiler diagnostic (and its fixes) again. */
export function toLspDiagnostic(lines: DocumentLines, uri: string, d: Diagnostic): LspDiagnostic {
  const message = d.hint ? `${d.message}\nhint: ${d.hint}` : d.message;
  return {
    range: toRange(lines, d.span),
    severity: severities[d.severity],
    code: d.code,
    source: 'cnnc',
    message,
    relatedInformation: d.related?.map((r) => ({ location: { uri, range: toRange(lines, r.span) }, message: r.message })),
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
