/** Printing diagnostics for people (with the source line and a caret underline) and for machines. */
import type { Diagnostic } from '../compiler/diagnostics.ts';
import type { SourceSet, Span } from '../compiler/source.ts';

export interface Style {
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

const wrap = (code: number) => (s: string) => `\x1b[${code}m${s}\x1b[0m`;
export const colours: Style = { red: wrap(31), yellow: wrap(33), cyan: wrap(36), bold: wrap(1), dim: wrap(2) };
export const plain: Style = { red: (s) => s, yellow: (s) => s, cyan: (s) => s, bold: (s) => s, dim: (s) => s };

/** Where diagnostics go: process.stdout, process.stderr, or a test's collector. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Colours only when writing to a terminal, and never when NO_COLOR is set. */
export function styleFor(stream: Output): Style {
  return stream.isTTY && !process.env.NO_COLOR ? colours : plain;
}

/** `file:line:column`, in the file the offset lies in. */
function place(sources: SourceSet, offset: number): string {
  const { source, position } = sources.locate(offset);
  return `${source.name}:${position.line + 1}:${position.character + 1}`;
}

export function formatDiagnostic(sources: SourceSet, d: Diagnostic, style: Style): string {
  const { source, position: start } = sources.locate(d.span.start);
  const lines = sources.lines(source);
  const end = lines.position(d.span.end - source.base);
  const sev = d.severity === 'error' ? style.red('error') : d.severity === 'warning' ? style.yellow('warning') : style.cyan('info');
  const out = [`${style.bold(place(sources, d.span.start))}: ${sev} ${d.code}: ${d.message}`];
  const text = lines.lineText(start.line);
  if (start.line < lines.lineCount && text.length < 500) {
    const width = end.line === start.line ? Math.max(1, end.character - start.character) : Math.max(1, text.length - start.character);
    const gutter = String(start.line + 1).padStart(4);
    out.push(`${style.dim(gutter + ' |')} ${text}`, `${style.dim(' '.repeat(4) + ' |')} ${' '.repeat(start.character)}${style.red('^'.repeat(width))}`);
  }
  if (d.hint) out.push(`     ${style.cyan('hint')}: ${d.hint}`);
  for (const r of d.related ?? []) out.push(`     ${style.dim(place(sources, r.span.start))}: ${r.message}`);
  return out.join('\n');
}

/**
 * Prints a check's diagnostics for people, each followed by a blank line: the one way every
 * command shows them. Each names the file it lies in: the one checked, or one it imports.
 */
export function printDiagnostics(out: Output, sources: SourceSet, diagnostics: readonly Diagnostic[]): void {
  if (diagnostics.length === 0) return;
  const style = styleFor(out);
  out.write(diagnostics.map((d) => formatDiagnostic(sources, d, style) + '\n\n').join(''));
}

/** A diagnostic with line/column ranges (1-based lines and columns, as editors show them) and offsets, in the file it lies in. */
export function diagnosticJson(sources: SourceSet, d: Diagnostic) {
  const at = (offset: number) => {
    const { source, position } = sources.locate(offset);
    return { line: position.line + 1, column: position.character + 1, offset: offset - source.base };
  };
  const range = (span: Span) => ({ start: at(span.start), end: at(span.end) });
  const file = (span: Span) => sources.of(span.start).name;
  return {
    file: file(d.span),
    code: d.code,
    severity: d.severity,
    message: d.message,
    range: range(d.span),
    ...(d.hint ? { hint: d.hint } : {}),
    ...(d.related ? { related: d.related.map((r) => ({ message: r.message, file: file(r.span), range: range(r.span) })) } : {}),
    ...(d.fixes ? { fixes: d.fixes.map((f) => ({ title: f.title, file: file(f.span), range: range(f.span), text: f.text })) } : {}),
  };
}
