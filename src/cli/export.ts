/**
 * `cnnc export FILE --torch -o DIR`: the models of a file as a PyTorch package (model.py,
 * train.py, README.md; src/compiler/emit/torch/). DIR is new, empty, or one a previous export
 * wrote: its record (.cnnc-export.json, the sha256 of each file written) lets a new export replace
 * those files, but not one changed since, nor a file of the same name that it did not write.
 * Other files in DIR (checkpoints, runs) are left alone.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { torchPackage } from '../compiler/emit/torch/index.ts';
import { UserError } from '../errors.ts';
import { ensureWritableDir, writeFileAtomic } from '../runtime/files.ts';
import { checkFileForWriting, pickModel } from './io.ts';
import { checkOutputDir } from './outputs.ts';

export interface ExportOptions {
  model?: string;
  torch?: boolean;
  output?: string;
}

export const EXPORT_RECORD = '.cnnc-export.json';

interface ExportRecord {
  generator: 'cnnc export';
  /** File name -> sha256 (hex) of what the export wrote. */
  files: Record<string, string>;
}

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

/** Returns the exit status. Diagnostics go to stderr, the line saying what was written to stdout. */
export function exportCommand(file: string, opts: ExportOptions): number {
  if (!opts.torch) throw new UserError('export: name the target with --torch (a PyTorch package, the only target so far), e.g. cnnc export model.cnn --torch -o out/');
  if (!opts.output) throw new UserError('export: give the folder for the package with -o DIR');
  const dir = opts.output;
  checkOutputDir(dir, '-o', 'the PyTorch package');
  const result = checkFileForWriting(file);
  if (!result) return 1;
  const model = pickModel(result, opts.model);
  const files = torchPackage({ file, source: result.sources, models: result.models, model });
  checkReplaceable(dir, files);
  ensureWritableDir(dir);
  for (const [name, text] of files) writeFileAtomic(path.join(dir, name), text);
  const record: ExportRecord = { generator: 'cnnc export', files: Object.fromEntries([...files].map(([name, text]) => [name, sha256(text)])) };
  writeFileAtomic(path.join(dir, EXPORT_RECORD), JSON.stringify(record, null, 2) + '\n');
  const others = result.models.length > 1 ? ` (model.py has all ${result.models.length} models of ${path.basename(file)})` : '';
  console.log(`${dir}: PyTorch package for ${model.name}: ${[...files.keys()].join(', ')}${others}`);
  return 0;
}

/** The files of DIR (none when it does not exist yet; checkOutputDir has seen it is a folder). */
function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Refuses, before anything is written, a folder with files but no export record, and a package
 * file that is there but is neither what the last export wrote nor what this one writes (an edit,
 * or a file of the user's). What a failed export left half-replaced passes: each file is one or
 * the other.
 */
function checkReplaceable(dir: string, files: ReadonlyMap<string, string>): void {
  const present = entries(dir);
  if (present.length === 0) return;
  if (!present.includes(EXPORT_RECORD)) {
    throw new UserError(`is a folder with other files in it (${present.slice(0, 3).join(', ')}${present.length > 3 ? ', ...' : ''}); export into a new or empty folder, or one a previous cnnc export wrote`, dir);
  }
  const record = readRecord(dir);
  for (const [name, text] of files) {
    if (!present.includes(name)) continue;
    const have = hashOf(path.join(dir, name));
    if (have === undefined || (have !== record.files[name] && have !== sha256(text))) {
      throw new UserError(`${name} is not the file cnnc export wrote there (changed since, or someone else's); move it away to export again`, dir);
    }
  }
}

/** The sha256 of a file; undefined for what cannot be read as one (a folder of that name). */
function hashOf(file: string): string | undefined {
  try {
    return sha256(readFileSync(file));
  } catch {
    return undefined;
  }
}

function readRecord(dir: string): ExportRecord {
  const file = path.join(dir, EXPORT_RECORD);
  try {
    const record = JSON.parse(readFileSync(file, 'utf8')) as ExportRecord;
    if (record?.generator === 'cnnc export' && record.files && typeof record.files === 'object') return record;
  } catch { /* reported below */ }
  throw new UserError('is not the record of a cnnc export; remove it, or export into another folder', file);
}
