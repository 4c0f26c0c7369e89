/** The programmatic API: check a source text and get its checked models and diagnostics. */
import { parse } from './compiler/parser.ts';
import { checkFile } from './compiler/checker.ts';
import { finishDiagnostics, type Diagnostic } from './compiler/diagnostics.ts';
import type { CheckedModel } from './compiler/model.ts';
import type { SourceFile } from './compiler/ast.ts';

export interface CheckResult {
  file: string;
  text: string;
  ast: SourceFile;
  models: CheckedModel[];
  diagnostics: Diagnostic[];
}

/** Never throws on any input: every problem becomes a diagnostic. */
export function check(text: string, file = '<input>'): CheckResult {
  const parsed = parse(text);
  const found = [...parsed.diagnostics];
  const models = checkFile(parsed.ast, found);
  return { file, text, ast: parsed.ast, models, diagnostics: finishDiagnostics(found, text.length) };
}

export type { CheckedModel } from './compiler/model.ts';
export type { Diagnostic } from './compiler/diagnostics.ts';
