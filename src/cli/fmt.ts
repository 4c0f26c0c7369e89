/** `cnnc fmt FILE...`: the canonical layout (src/compiler/format.ts); print, rewrite in place, or check. */
import type { Command } from 'commander';
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { format } from '../compiler/format.ts';
import { parse } from '../compiler/parser.ts';
import { LineMap } from '../compiler/source.ts';
import { UserError } from '../errors.ts';
import { readSource } from './io.ts';
import { formatDiagnostic, styleFor } from './report.ts';

interface FmtOptions {
  write?: boolean;
  check?: boolean;
}

export function registerFmt(program: Command): void {
  program
    .command('fmt')
    .description('format .cnn files: print the result (one file, or - for stdin), rewrite them (--write), or list those that would change (--check)')
    .argument('<files...>', '.cnn files')
    .option('-w, --write', 'rewrite the files in place (atomically)')
    .option('--check', 'change nothing; exit 1 and list the files whose layout would change')
    .action((files: string[], opts: FmtOptions) => {
      if (opts.write && opts.check) throw new UserError('--write and --check cannot be used together');
      if (!opts.write && !opts.check && files.length > 1) throw new UserError('give one file to print, or --write or --check for several');
      if (files.includes('-') && (opts.write || files.length > 1)) throw new UserError('- (stdin) can only be printed or checked alone');
      let failed = false;
      const changed: string[] = [];
      for (const file of files) {
        const text = file === '-' ? readFileSync(0, 'utf8') : readSource(file);
        const out = format(text);
        if (out === null) {
          failed = true;
          reportSyntaxErrors(file, text);
          continue;
        }
        if (opts.check) {
          if (out !== text) changed.push(file);
        } else if (opts.write) {
          if (out !== text) {
            writeAtomically(file, out);
            changed.push(file);
          }
        } else process.stdout.write(out);
      }
      if (opts.check) {
        for (const f of changed) console.log(f);
        if (changed.length) console.error(`cnnc fmt: ${changed.length} file${changed.length > 1 ? 's' : ''} would be reformatted`);
      } else if (opts.write && changed.length) console.error(`cnnc fmt: reformatted ${changed.length} file${changed.length > 1 ? 's' : ''}`);
      process.exitCode = failed || (opts.check && changed.length) ? 1 : 0;
    });
}

function reportSyntaxErrors(file: string, text: string): void {
  const lines = new LineMap(text);
  const style = styleFor(process.stderr);
  const syntax = parse(text).diagnostics.filter((d) => d.code.startsWith('CNN1'));
  for (const d of syntax) console.error(formatDiagnostic(file, lines, d, style) + '\n');
  console.error(`cnnc fmt: ${file}: not formatted: ${syntax.length ? 'it has syntax errors' : 'the formatter could not keep every token (please report this file)'}`);
}

/** Writes next to the file and renames over it, so a reader never sees half a file. */
function writeAtomically(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.fmt.tmp`);
  try {
    writeFileSync(tmp, text, { mode: statSync(file).mode & 0o7777 });
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw new UserError(`cannot write the formatted file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
  }
}
