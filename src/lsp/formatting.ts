/** Document formatting through the formatter; a file with syntax errors is left as it is. */
import type { TextEdit } from 'vscode-languageserver';
import { format } from '../compiler/format.ts';
import type { Analysis } from './analysis.ts';

export function formatDocument(analysis: Analysis): TextEdit[] {
  const out = format(analysis.text);
  if (out === null || out === analysis.text) return [];
  return [{ range: { start: { line: 0, character: 0 }, end: analysis.lines.position(analysis.text.length) }, newText: out }];
}
