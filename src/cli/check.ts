/** `cnnc check FILE...`: diagnostics for each file; exit status 1 when any has an error. */
import type { Command } from 'commander';
import { hasErrors } from '../compiler/diagnostics.ts';
import { LineMap } from '../compiler/source.ts';
import { layerKinds } from '../compiler/layers/index.ts';
import { checkFileAt } from './io.ts';
import { diagnosticJson, formatDiagnostic, styleFor } from './report.ts';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check .cnn files: syntax, names, arguments and every tensor shape')
    .argument('[files...]', '.cnn files to check')
    .option('--json', 'print diagnostics as JSON')
    .option('--list-layers', 'list the layer kinds and their arguments')
    .action((files: string[], opts: { json?: boolean; listLayers?: boolean }) => {
      if (opts.listLayers) return listLayers();
      if (files.length === 0) program.error('error: give at least one .cnn file');
      let failed = false;
      const json: unknown[] = [];
      const style = styleFor(process.stdout);
      for (const file of files) {
        const result = checkFileAt(file);
        const lines = new LineMap(result.text);
        failed ||= hasErrors(result.diagnostics);
        if (opts.json) json.push({ file, models: result.models.map((m) => m.name), diagnostics: result.diagnostics.map((d) => diagnosticJson(file, lines, d)) });
        else for (const d of result.diagnostics) console.log(formatDiagnostic(file, lines, d, style) + '\n');
      }
      if (opts.json) console.log(JSON.stringify({ files: json }, null, 2));
      else if (!failed) console.log(`${files.length} file${files.length > 1 ? 's' : ''} checked: no errors`);
      process.exitCode = failed ? 1 : 0;
    });
}

function listLayers(): void {
  for (const kind of layerKinds) {
    const aliases = kind.aliases?.length ? ` (also ${kind.aliases.join(', ')})` : '';
    console.log(`${kind.name}${aliases}: ${kind.doc}`);
    for (const a of kind.args) {
      const def = a.default === undefined ? (a.required ? 'required' : '') : `default ${JSON.stringify(a.default)}`;
      console.log(`    ${a.positional ? a.name.toUpperCase() : a.name + '='}  ${a.doc}${def ? ` [${def}]` : ''}`);
    }
  }
}
