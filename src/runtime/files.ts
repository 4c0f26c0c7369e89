/**
 * Writing files so that a crash, a kill or a full disk never leaves a half-written file under the
 * final name: every write goes to `NAME.tmp-PID` beside it, is checked to the last byte and fsync'd,
 * then renamed over NAME (and the directory fsync'd, so the rename itself survives a power cut).
 * Any failure removes the temporary file, leaves the previous NAME as it was, and is a UserError
 * naming NAME and the cause. The file system calls are injectable, so tests can simulate short
 * writes and ENOSPC anywhere.
 */
import * as nodeFs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';

/** The synchronous calls the writers use; node:fs by default, a fault-injecting wrapper in tests. */
export interface WriteFs {
  openSync(file: string, flags: string, mode?: number): number;
  writeSync(fd: number, data: Uint8Array, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(file: string): void;
  appendFileSync(file: string, data: string): void;
}

export const realFs: WriteFs = nodeFs;

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EEXIST: 'a file of that name exists',
  EISDIR: 'it is a directory',
  ENOENT: 'no such file or directory',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'the name is too long',
};

/** A file system error as words and its code: "no space left on device (ENOSPC)". */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code) return `${REASONS[code] ?? (e as Error).message.split('\n')[0]} (${code})`;
  return e instanceof Error ? e.message.split('\n')[0] : String(e);
}

/** The temporary name a write of `file` by this process uses. */
export const tempName = (file: string): string => `${file}.tmp-${process.pid}`;

/** Matches the temporary files writeFileAtomic leaves when killed: NAME.tmp-PID. */
const TEMP_FILE = /^(.+)\.tmp-(\d+)$/;

type Data = string | Uint8Array | readonly Uint8Array[];

const chunksOf = (data: Data): readonly Uint8Array[] =>
  typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;

/**
 * Crash injection for test/train-faults.test.ts: with CNNC_TEST_KILL_AT=N the process kills itself
 * with SIGKILL at the N-th point of its writes (after each chunk written, each rename, each append),
 * as kill -9 or a power cut would, at places a timed kill rarely hits. Unset in normal use.
 */
const KILL_AT = Number(process.env.CNNC_TEST_KILL_AT ?? 0);
let writePoints = 0;
function crashPoint(): void {
  if (KILL_AT > 0 && ++writePoints === KILL_AT) process.kill(process.pid, 'SIGKILL');
}

/** write(2) may write fewer bytes than asked (a nearly full disk does): loop until all are written. */
function writeAll(fs: WriteFs, fd: number, chunk: Uint8Array): void {
  let done = 0;
  while (done < chunk.byteLength) {
    const n = fs.writeSync(fd, chunk, done, chunk.byteLength - done);
    // A write that makes no progress would loop forever; the disk is full in all but name.
    if (!(n > 0)) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
    done += n;
  }
  crashPoint();
}

/**
 * Writes `data` to `file` atomically (see the top of this file), creating its directory when
 * missing; `mode` is the new file's (a rewrite in place passes the old one's). Synchronous, so that a signal
 * handler or an exit never runs between writing and renaming.
 */
export function writeFileAtomic(file: string, data: Data, fs: WriteFs = realFs, mode = 0o666): void {
  const tmp = tempName(file);
  try {
    makeDirs(path.dirname(file));
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      for (const c of chunksOf(data)) writeAll(fs, fd, c);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    crashPoint();
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch { /* never created, or already gone */ }
    throw new UserError(`cannot write the file: ${describeFsError(e)}; the file is unchanged`, file);
  }
  syncDirectory(path.dirname(file));
}

/** Makes a rename durable; not every platform can open a directory for fsync, so best effort. */
function syncDirectory(dir: string): void {
  try {
    const fd = nodeFs.openSync(dir, 'r');
    try { nodeFs.fsyncSync(fd); } finally { nodeFs.closeSync(fd); }
  } catch { /* best effort */ }
}

/** Appends text (a log line), with a UserError naming the file on failure. */
export function appendText(file: string, text: string, fs: WriteFs = realFs): void {
  try {
    fs.appendFileSync(file, text);
    crashPoint();
  } catch (e) {
    throw new UserError(`cannot append to the file: ${describeFsError(e)}`, file);
  }
}

/**
 * Creates `dir` (and its parents) and checks that files can be written in it, before any work
 * starts: a read-only place, a missing permission or a file in the way is a UserError naming dir.
 */
export function ensureWritableDir(dir: string): void {
  try {
    makeDirs(dir);
  } catch (e) {
    throw new UserError(`cannot create the directory: ${describeFsError(e)}`, dir);
  }
  try {
    if (!nodeFs.statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    nodeFs.accessSync(dir, nodeFs.constants.W_OK);
  } catch (e) {
    throw new UserError(`cannot write in the directory: ${describeFsError(e)}`, dir);
  }
}

/**
 * mkdir -p. Not mkdirSync's own `recursive`: on Node 20 it loops forever where mkdir fails with
 * ENOENT under an existing directory (/proc/x); this makes each missing directory once.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !nodeFs.existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      nodeFs.mkdirSync(d);
    } catch (e) {
      // Made meanwhile by another process: fine when it is a directory.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !nodeFs.statSync(d).isDirectory()) throw e;
    }
  }
}

/** Whether a process with this id exists (EPERM: it exists but belongs to another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files that killed writes of `names` left in `dir` (NAME.tmp-PID whose
 * process is gone, or is this one: it has not started writing yet). Returns the files removed.
 */
export function removeStaleTemps(dir: string, names: readonly string[]): string[] {
  let entries: string[];
  try {
    entries = nodeFs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const m = TEMP_FILE.exec(entry);
    if (!m || !names.includes(m[1])) continue;
    const pid = Number(m[2]);
    if (pid !== process.pid && alive(pid)) continue;
    try {
      nodeFs.unlinkSync(path.join(dir, entry));
      removed.push(entry);
    } catch { /* removed meanwhile */ }
  }
  return removed;
}
