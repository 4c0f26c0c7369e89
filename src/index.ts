/** The programmatic API: check a source text and get its checked models and diagnostics. */
import { parse } from './compiler/parser.ts';
import { checkFile } from './compiler/checker.ts';
import type { Diagnostic } from './compiler/diagnostics.ts';
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
  const diagnostics = [...parsed.diagnostics];
  const models = checkFile(parsed.ast, diagnostics);
  diagnostics.sort((a, b) => a.span.start - b.span.start);
  return { file, text, ast: parsed.ast, models, diagnostics };
}

export type { CheckedModel } from './compiler/model.ts';
export type { Diagnostic } from './compiler/diagnostics.ts';
