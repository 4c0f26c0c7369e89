/** `cnnc check FILE...`: diagnostics for each file; exit status 1 when any has an error or cannot be read. */
import { hasErrors, type Diagnostic } from '../compiler/diagnostics.ts';
import type { SourceSet } from '../compiler/source.ts';
import { layerKinds } from '../compiler/layers/index.ts';
import { UserError } from '../errors.ts';
import { checkFileAt } from './io.ts';
import { diagnosticJson, printDiagnostics } from './report.ts';

export interface CheckOptions {
  json?: boolean;
  listLayers?: boolean;
}

type FileResult = { file: string; sources: SourceSet; models: string[]; diagnostics: Diagnostic[] } | { file: string; error: string };

/** Every file is checked, even after one that cannot be read; returns the exit status. */
export function checkCommand(files: string[], opts: CheckOptions): number {
  if (opts.listLayers) return listLayers();
  if (files.length === 0) throw new UserError('check: give at least one .cnn file (or --list-layers)');
  const results = files.map(checkOne);
  if (opts.json) console.log(JSON.stringify({ files: results.map(jsonOf) }, null, 2));
  else {
    for (const r of results) {
      if ('error' in r) console.error(`cnnc: error: ${r.error}`);
      else printDiagnostics(process.stdout, r.sources, r.diagnostics);
    }
    console.log(countLine(results));
  }
  return results.some(failed) ? 1 : 0;
}

function checkOne(file: string): FileResult {
  try {
    const r = checkFileAt(file);
    return { file, sources: r.sources, models: r.models.map((m) => m.name), diagnostics: r.diagnostics };
  } catch (e) {
    if (e instanceof UserError) return { file, error: e.message };
    throw e;
  }
}

const failed = (r: FileResult) => 'error' in r || hasErrors(r.diagnostics);

function jsonOf(r: FileResult) {
  if ('error' in r) return { file: r.file, error: r.error };
  return { file: r.file, models: r.models, diagnostics: r.diagnostics.map((d) => diagnosticJson(r.sources, d)) };
}

/** "3 files checked: 1 with errors, 1 could not be read" or "2 files checked: no errors". */
function countLine(results: FileResult[]): string {
  const unread = results.filter((r) => 'error' in r).length;
  const withErrors = results.filter((r) => !('error' in r) && hasErrors(r.diagnostics)).length;
  const parts = [withErrors ? `${withErrors} with errors` : '', unread ? `${unread} could not be read` : ''].filter(Boolean);
  const n = results.length;
  return `${n} file${n === 1 ? '' : 's'} checked: ${parts.length ? parts.join(', ') : 'no errors'}`;
}

function listLayers(): number {
  for (const kind of layerKinds) {
    const aliases = kind.aliases?.length ? ` (also ${kind.aliases.join(', ')})` : '';
    console.log(`${kind.name}${aliases}: ${kind.doc}`);
    for (const a of kind.args) {
      const def = a.default === undefined ? (a.required ? 'required' : '') : `default ${JSON.stringify(a.default)}`;
      console.log(`    ${a.positional ? a.name.toUpperCase() : a.name + '='}  ${a.doc}${def ? ` [${def}]` : ''}`);
    }
  }
  return 0;
}
