/** Reading source files for the CLI, with errors that name the file. */
import { UserError } from '../errors.ts';
import { hasErrors } from '../compiler/diagnostics.ts';
import { check, type CheckResult } from '../index.ts';
import { printDiagnostics } from './report.ts';
import { readSource } from '../compiler/host.ts';

export function checkFileAt(file: string): CheckResult {
  return check(readSource(file), file);
}

/** Picks the model named by --model, or the file's only/first model. */
export function pickModel(result: CheckResult, name?: string) {
  if (result.models.length === 0) throw new UserError('declares no model', result.file);
  if (!name) return result.models[0];
  const m = result.models.find((x) => x.name === name);
  if (!m) throw new UserError(`has no model "${name}" (models: ${result.models.map((x) => x.name).join(', ')})`, result.file);
  return m;
}

/**
 * For commands that write files: checks FILE and prints its diagnostics to stderr; null, after
 * saying that nothing was written, when it has errors.
 */
export function checkFileForWriting(file: string): CheckResult | null {
  const result = checkFileAt(file);
  printDiagnostics(process.stderr, result.sources, result.diagnostics);
  if (!hasErrors(result.diagnostics)) return result;
  console.error(`cnnc: ${file} has errors; nothing written`);
  return null;
}
