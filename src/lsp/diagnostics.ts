/** Diagnostics for one document, as LSP publishes them. */
import type { Diagnostic as LspDiagnostic } from 'vscode-languageserver';
import type { Analysis } from './analysis.ts';
import { toLspDiagnostic } from './convert.ts';

/** The file's diagnostics (the checker keeps them sorted by position); capped so that a broken file cannot flood the client. */
export function documentDiagnostics(analysis: Analysis, uri: string, limit = 500): LspDiagnostic[] {
  return analysis.result.diagnostics.slice(0, limit).map((d) => toLspDiagnostic(analysis.lines, uri, d));
}
