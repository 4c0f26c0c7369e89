/**
 * Reading .cnn files: the one bounded read, for the files the command line names and for the
 * files they import, and where the standard library lies (stdlib/, shipped in the package).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';

const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

/** What resolving imports reads through: the disk (nodeHost), or the language server's open documents first. */
export interface ImportHost {
  /** The text of a file; a UserError naming the file and the problem when it cannot be read. */
  read(file: string): string;
  /** The standard library's modules: name (`resnet`) to absolute path, in name order. */
  library(): ReadonlyMap<string, string>;
}

export function readSource(file: string): string {
  let size: number;
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw new UserError('is a directory, not a .cnn file', file);
    size = st.size;
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
  }
  if (size > MAX_SOURCE_BYTES) throw new UserError(`is ${size} bytes; .cnn files larger than 64 MiB are not read`, file);
  return readFileSync(file, 'utf8');
}

/** stdlib/ beside src/ and dist/ (this file is src/compiler/host.ts or dist/compiler/host.js). */
export const LIBRARY_DIR = fileURLToPath(new URL('../../stdlib/', import.meta.url));

let libraryModules: Map<string, string> | undefined;

/** The .cnn files of stdlib/, read once per process (they ship with cnnc and do not change under it). */
function library(): ReadonlyMap<string, string> {
  if (!libraryModules) {
    let names: string[] = [];
    try {
      names = readdirSync(LIBRARY_DIR).filter((f) => f.endsWith('.cnn')).sort();
    } catch { /* an installation without stdlib/: every library import is then reported as unknown */ }
    libraryModules = new Map(names.map((f) => [f.slice(0, -'.cnn'.length), path.join(LIBRARY_DIR, f)]));
  }
  return libraryModules;
}

export const nodeHost: ImportHost = { read: readSource, library };
