/** Diagnostics for one document, as LSP publishes them. */
import type { Diagnostic as LspDiagnostic } from 'vscode-languageserver';
import type { Diagnostic } from '../compiler/diagnostics.ts';
import type { Analysis } from './analysis.ts';
import { toLspDiagnostic, toRange } from './convert.ts';

/** The file's diagnostics (the checker keeps them sorted by position); capped so that a broken file cannot flood the client. */
export function documentDiagnostics(analysis: Analysis, uri: string, limit = 500): LspDiagnostic[] {
  const where = analysis.location.bind(analysis, uri);
  return analysis.result.diagnostics.slice(0, limit).map((d) => {
    const lsp = toLspDiagnostic(analysis.lines, uri, d, where);
    return analysis.isOwn(d.span) ? lsp : imported(analysis, d, lsp, where(d.span));
  });
}

/**
 * A diagnostic in an imported file, as this document shows it: at the import that brought the
 * file in, naming the file and place, with the place itself as related information.
 */
function imported(analysis: Analysis, d: Diagnostic, lsp: LspDiagnostic, at: ReturnType<Analysis['location']>): LspDiagnostic {
  const { sources, imports } = analysis.result;
  const { source, position } = sources.locate(d.span.start);
  const decl = imports.through.get(source);
  return {
    ...lsp,
    range: toRange(analysis.lines, decl ? decl.targetSpan : { start: 0, end: 0 }),
    message: `${source.name}:${position.line + 1}:${position.character + 1}: ${lsp.message}`,
    relatedInformation: [{ location: at, message: d.message }, ...(lsp.relatedInformation ?? [])],
  };
}
