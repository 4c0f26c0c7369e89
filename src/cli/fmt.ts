/** `cnnc fmt FILE...`: the canonical layout (src/compiler/format.ts); print, rewrite in place, or check. */
import { readFileSync, statSync } from 'node:fs';
import { format } from '../compiler/format.ts';
import { parse } from '../compiler/parser.ts';
import { SourceSet } from '../compiler/source.ts';
import { UserError } from '../errors.ts';
import { realFs, writeFileAtomic } from '../runtime/files.ts';
import { readSource } from '../compiler/host.ts';
import { printDiagnostics } from './report.ts';

export interface FmtOptions {
  write?: boolean;
  check?: boolean;
}

/** Prints, rewrites or checks; returns the exit status. */
export function fmtCommand(files: string[], opts: FmtOptions): number {
  if (opts.write && opts.check) throw new UserError('--write and --check cannot be used together');
  if (!opts.write && !opts.check && files.length > 1) throw new UserError('give one file to print, or --write or --check for several');
  if (files.includes('-') && (opts.write || files.length > 1)) throw new UserError('- (stdin) can only be printed or checked alone');
  let failed = false;
  const changed: string[] = [];
  // Every file is handled, even after one that cannot be read or has syntax errors.
  for (const file of files) {
    const text = readInput(file);
    const out = text === undefined ? null : format(text);
    if (text === undefined || out === null) {
      if (text !== undefined) reportSyntaxErrors(file, text);
      failed = true;
    } else if (opts.check) {
      if (out !== text) changed.push(file);
    } else if (opts.write) {
      if (out !== text) {
        writeFileAtomic(file, out, realFs, modeOf(file));
        changed.push(file);
      }
    } else process.stdout.write(out);
  }
  if (opts.check) {
    for (const f of changed) console.log(f);
    if (changed.length) console.error(`cnnc fmt: ${changed.length} file${changed.length > 1 ? 's' : ''} would be reformatted`);
  } else if (opts.write && changed.length) console.error(`cnnc fmt: reformatted ${changed.length} file${changed.length > 1 ? 's' : ''}`);
  return failed || (opts.check && changed.length) ? 1 : 0;
}

/** The text of a file or of stdin (-); undefined, after saying why, when it cannot be read. */
function readInput(file: string): string | undefined {
  try {
    if (file !== '-') return readSource(file);
    try {
      return readFileSync(0, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read standard input (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    console.error(`cnnc: error: ${e.message}`);
    return undefined;
  }
}

function reportSyntaxErrors(file: string, text: string): void {
  const syntax = parse(text).diagnostics.filter((d) => d.code.startsWith('CNN1'));
  printDiagnostics(process.stderr, new SourceSet(file, text), syntax);
  console.error(`cnnc fmt: ${file}: not formatted: ${syntax.length ? 'it has syntax errors' : 'the formatter could not keep every token (please report this file)'}`);
}

/** The file's permission bits, which a rewrite in place keeps (the default when it cannot be read). */
function modeOf(file: string): number {
  try {
    return statSync(file).mode & 0o7777;
  } catch {
    return 0o666;
  }
}
