/** Printing diagnostics for people (with the source line and a caret underline) and for machines. */
import type { Diagnostic } from '../compiler/diagnostics.ts';
import { LineMap } from '../compiler/source.ts';

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

export function formatDiagnostic(file: string, lines: LineMap, d: Diagnostic, style: Style): string {
  const start = lines.position(d.span.start);
  const end = lines.position(d.span.end);
  const sev = d.severity === 'error' ? style.red('error') : d.severity === 'warning' ? style.yellow('warning') : style.cyan('info');
  const out = [`${style.bold(`${file}:${start.line + 1}:${start.character + 1}`)}: ${sev} ${d.code}: ${d.message}`];
  const text = lines.lineText(start.line);
  if (start.line < lines.lineCount && text.length < 500) {
    const width = end.line === start.line ? Math.max(1, end.character - start.character) : Math.max(1, text.length - start.character);
    const gutter = String(start.line + 1).padStart(4);
    out.push(`${style.dim(gutter + ' |')} ${text}`, `${style.dim(' '.repeat(4) + ' |')} ${' '.repeat(start.character)}${style.red('^'.repeat(width))}`);
  }
  if (d.hint) out.push(`     ${style.cyan('hint')}: ${d.hint}`);
  for (const r of d.related ?? []) {
    const p = lines.position(r.span.start);
    out.push(`     ${style.dim(`${file}:${p.line + 1}:${p.character + 1}`)}: ${r.message}`);
  }
  return out.join('\n');
}

/**
 * Prints diagnostics of one file for people, each followed by a blank line: the one way every
 * command shows them.
 */
export function printDiagnostics(out: Output, file: string, text: string, diagnostics: readonly Diagnostic[]): void {
  if (diagnostics.length === 0) return;
  const lines = new LineMap(text);
  const style = styleFor(out);
  out.write(diagnostics.map((d) => formatDiagnostic(file, lines, d, style) + '\n\n').join(''));
}

/** A diagnostic with line/column ranges (1-based lines and columns, as editors show them). */
export function diagnosticJson(file: string, lines: LineMap, d: Diagnostic) {
  const at = (offset: number) => {
    const p = lines.position(offset);
    return { line: p.line + 1, column: p.character + 1, offset };
  };
  return {
    file,
    code: d.code,
    severity: d.severity,
    message: d.message,
    range: { start: at(d.span.start), end: at(d.span.end) },
    ...(d.hint ? { hint: d.hint } : {}),
    ...(d.related ? { related: d.related.map((r) => ({ message: r.message, range: { start: at(r.span.start), end: at(r.span.end) } })) } : {}),
    ...(d.fixes ? { fixes: d.fixes.map((f) => ({ title: f.title, range: { start: at(f.span.start), end: at(f.span.end) }, text: f.text })) } : {}),
  };
}
