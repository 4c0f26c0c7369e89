/**
 * `cnnc compile FILE --triton DIR`: the model's folder in a Triton Inference Server model
 * repository, DIR/<model>/ with config.pbtxt, labels.txt (for classes) and 1/model.onnx (the graph
 * `compile -o` writes). cnnc model names are ASCII identifiers, so they are valid Triton model names
 * (folder and URL) as they stand.
 *
 * The folder is written whole or not at all: its files go into a hidden folder beside it
 * (DIR/.<model>.cnnc-tmp-PID), which then takes its place by rename. An existing folder is replaced
 * only when cnnc wrote it and nothing in it changed since: config.pbtxt's first line holds the
 * sha256 of every file; any other file, or a changed one, is refused, since replacing would lose it.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { CompiledInference } from '../compiler/emit/inference.ts';
import { DEFAULT_MAX_BATCH, INSTANCE_KINDS, LABELS_FILE, MODEL_FILE, tritonModel, VERSION, type InstanceKind } from '../compiler/emit/triton.ts';
import type { CheckedModel } from '../compiler/model.ts';
import type { SourceInput } from '../compiler/source.ts';
import { UserError } from '../errors.ts';
import { alive, describeFsError, ensureWritableDir, writeFileAtomic } from '../runtime/files.ts';
import { checkOutputDir } from './outputs.ts';
import { formatBytes } from './summary.ts';

export interface TritonCliOptions {
  triton?: string;
  maxBatch?: number;
  tritonKind?: string;
}

const CONFIG_FILE = 'config.pbtxt';
const MANIFEST = '# cnnc-files:';
/** max_batch_size is an int32 in Triton's ModelConfig. */
const MAX_INT32 = 2 ** 31 - 1;

/** The --triton options, checked with -o and --train before any work; DIR must be writable. */
export function checkTritonOptions(opts: TritonCliOptions & { output?: string; train?: boolean }): void {
  if (opts.triton === undefined) {
    const stray = opts.maxBatch !== undefined ? '--max-batch' : opts.tritonKind !== undefined ? '--triton-kind' : undefined;
    if (stray) throw new UserError(`${stray} only applies with --triton DIR (a Triton model repository)`);
    return;
  }
  if (opts.train) throw new UserError('--triton writes an inference model for Triton; it does not combine with --train');
  if (opts.output !== undefined) throw new UserError('--triton DIR writes the ONNX graph itself (DIR/<model>/1/model.onnx); leave out -o');
  if (opts.maxBatch !== undefined && opts.maxBatch > MAX_INT32) throw new UserError(`--max-batch ${opts.maxBatch}: Triton takes at most ${MAX_INT32}`);
  if (opts.tritonKind !== undefined && !INSTANCE_KINDS.includes(opts.tritonKind as InstanceKind)) {
    throw new UserError(`--triton-kind ${opts.tritonKind}: expected ${INSTANCE_KINDS.slice(0, -1).join(', ')} or ${INSTANCE_KINDS.at(-1)}`);
  }
  checkOutputDir(opts.triton, '--triton', 'the Triton model repository');
}

export interface TritonWrite {
  dir: string;
  model: CheckedModel;
  compiled: CompiledInference;
  file: string;
  source: SourceInput;
  opts: TritonCliOptions;
}

/** Writes DIR/<model>/ and prints its summary line; returns the exit status. */
export function writeTritonCommand({ dir, model, compiled, file, source, opts }: TritonWrite): number {
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const kind = (opts.tritonKind ?? 'gpu') as InstanceKind;
  const { config, labels, note } = tritonModel(model, { maxBatch, kind, file, source });
  const files = new Map<string, string | Uint8Array>([[`${VERSION}/${MODEL_FILE}`, compiled.bytes]]);
  if (labels !== undefined) files.set(LABELS_FILE, labels);
  files.set(CONFIG_FILE, withManifest(config, files));
  const modelDir = path.join(dir, model.name);
  ensureWritableDir(dir);
  removeStaleFolders(dir, model.name);
  replaceFolder(dir, modelDir, files, checkReplaceable(modelDir));
  if (note) console.error(`cnnc: note: ${model.name}: ${note}`);
  const classes = labels === undefined ? '' : `, ${LABELS_FILE} (${model.preprocess.classes!.length} classes)`;
  console.log(`${modelDir}: Triton model ${model.name}: ${VERSION}/${MODEL_FILE} (${compiled.ops} ops, ${formatBytes(compiled.bytes.byteLength)}), ` +
    `${CONFIG_FILE} (onnxruntime backend, max batch ${maxBatch}, KIND_${kind.toUpperCase()})${classes}`);
  return 0;
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** config.pbtxt with its first line listing each file's sha256 (its own: of the lines after it). */
function withManifest(config: string, files: ReadonlyMap<string, string | Uint8Array>): string {
  const entries = [[CONFIG_FILE, sha256(config)], ...[...files].map(([name, data]) => [name, sha256(data)])];
  return `${MANIFEST} ${entries.map(([name, hash]) => `${name}=${hash}`).join(' ')}\n${config}`;
}

/**
 * The sha256 of each file an existing config.pbtxt lists, and the hash its own text after that
 * line has now; undefined when cnnc did not write it.
 */
function readManifest(configFile: string): { listed: Map<string, string>; configNow: string } | undefined {
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch {
    return undefined;
  }
  const newline = text.indexOf('\n');
  if (!text.startsWith(`${MANIFEST} `) || newline < 0) return undefined;
  const entries = text.slice(MANIFEST.length, newline).trim().split(/\s+/).map((e) => e.split('=') as [string, string]);
  return { listed: new Map(entries), configNow: sha256(text.slice(newline + 1)) };
}

/**
 * Whether DIR/<model> exists and may be replaced: a UserError when it is not a folder, was not
 * written by cnnc, or holds anything cnnc did not write (changed since, or another file).
 */
function checkReplaceable(modelDir: string): boolean {
  let isDir: boolean;
  try {
    isDir = lstatSync(modelDir).isDirectory();
  } catch {
    return false;
  }
  if (!isDir) throw new UserError('is not a folder (a file or a link); cnnc will not replace it', modelDir);
  if (readdirSync(modelDir).length === 0) return true; // nothing to lose
  const manifest = readManifest(path.join(modelDir, CONFIG_FILE));
  if (!manifest) throw new UserError(`exists and was not written by cnnc (its ${CONFIG_FILE} has no cnnc-files line); move it away, or choose another --triton folder`, modelDir);
  for (const rel of filesUnder(modelDir)) {
    const where = path.join(modelDir, rel);
    const want = manifest.listed.get(rel);
    if (want === undefined) throw new UserError('was not written by cnnc, and replacing the model folder would lose it; move it away, or choose another --triton folder', where);
    const have = rel === CONFIG_FILE ? manifest.configNow : sha256(readFileSync(where));
    if (have !== want) throw new UserError('was changed since cnnc wrote it, and replacing the model folder would lose the change; move it away, or choose another --triton folder', where);
  }
  return true;
}

/** Every file under `dir`, as paths relative to it with / between folders; an empty folder as `name/`. */
function filesUnder(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = `${prefix}${entry.name}`;
    if (!entry.isDirectory()) out.push(rel);
    else {
      const inner = filesUnder(dir, `${rel}/`);
      out.push(...(inner.length > 0 ? inner : [`${rel}/`]));
    }
  }
  return out;
}

/** Matches the hidden folders a write of `name` uses: .NAME.cnnc-tmp-PID and .NAME.cnnc-old-PID. */
const workFolder = (name: string) => new RegExp(`^\\.${name}\\.cnnc-(?:tmp|old)-(\\d+)$`);

/** Removes the hidden folders that killed writes of this model left in DIR (their process is gone). */
function removeStaleFolders(dir: string, name: string): void {
  const pattern = workFolder(name);
  for (const entry of readdirSync(dir)) {
    const m = pattern.exec(entry);
    if (m && !alive(Number(m[1]))) rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Writes `files` into a hidden folder, then renames it over `modelDir` (moving the old one aside
 * first). The files are fsync'd by their writer; a power cut that loses a rename leaves the old
 * folder or the new one, and a hidden folder the next write removes.
 */
function replaceFolder(dir: string, modelDir: string, files: ReadonlyMap<string, string | Uint8Array>, replacing: boolean): void {
  const name = path.basename(modelDir);
  const tmp = path.join(dir, `.${name}.cnnc-tmp-${process.pid}`);
  const old = path.join(dir, `.${name}.cnnc-old-${process.pid}`);
  try {
    for (const [rel, data] of files) writeFileAtomic(path.join(tmp, rel), data);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new UserError(`not written, and left as it was: ${(e as Error).message}`, modelDir);
  }
  try {
    if (replacing) renameSync(modelDir, old);
    try {
      renameSync(tmp, modelDir);
    } catch (e) {
      if (replacing) renameSync(old, modelDir);
      throw e;
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new UserError(`cannot be replaced: ${describeFsError(e)}; it was left as it was`, modelDir);
  }
  // Best effort: a folder left here is hidden, and the next write of this model removes it.
  try { rmSync(old, { recursive: true, force: true }); } catch { /* see above */ }
}
