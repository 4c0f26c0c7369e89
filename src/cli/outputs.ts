/**
 * Checks of output paths, made before any work starts (before data loads or graphs are built), so
 * that a path that cannot be written fails in a second with one line, and nothing is half-written.
 * They create nothing: the writers create missing folders when there is something to write.
 */
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { describeFsError } from '../runtime/files.ts';

/** Undefined when nothing is there (ENOTDIR: a file stands where a folder of the path would be). */
function stat(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** The first folder up from `p` that exists; a file found there instead is a UserError for `target`. */
function nearestFolder(p: string, target: string): string {
  let dir = path.resolve(p);
  for (let st = stat(dir); !st; st = stat(dir)) dir = path.dirname(dir);
  if (!stat(dir)!.isDirectory()) {
    throw new UserError(`cannot be created: ${path.relative('.', dir) || dir} is a file, not a folder`, target);
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new UserError(`cannot be created in ${path.relative('.', dir) || '.'}: ${describeFsError(e)}`, target);
  }
  return dir;
}

/** `-o FILE`: a file name (not a folder) in a place that can be written. `example` is a file name to suggest. */
export function checkOutputFile(file: string, flag: string, example: string): void {
  const st = stat(file);
  if (st?.isDirectory() || /[/\\]$/.test(file)) {
    const what = st?.isDirectory() ? 'is a folder' : 'ends with /, so it names a folder';
    throw new UserError(`${what}; ${flag} takes a file name, e.g. ${flag} ${path.join(file, example)}`, file);
  }
  if (st) return; // an existing file is replaced atomically by the writer
  nearestFolder(path.dirname(file), file);
}

/** `--out DIR`: a folder, or a name under which one can be created. `what` says what goes in it. */
export function checkOutputDir(dir: string, flag: string, what: string): void {
  const st = stat(dir);
  if (st && !st.isDirectory()) throw new UserError(`is a file, not a folder; ${flag} names the folder for ${what}`, dir);
  if (st) {
    try {
      accessSync(dir, constants.W_OK);
    } catch (e) {
      throw new UserError(`cannot write in the folder: ${describeFsError(e)}`, dir);
    }
    return;
  }
  nearestFolder(dir, dir);
}
